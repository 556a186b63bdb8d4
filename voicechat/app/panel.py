"""When the live panel is published: on the audio's ticks, or by a task of its own when none run.

One wake-up of the loop serves the audio and the panel: each audio tick calls `PanelFeed.tick`,
which publishes once `PANEL_DUE_S` has passed since the last publish. The panel's own task
(`PanelFeed.run`) publishes ten times a second only while no ticks come (before the audio starts,
or if it stops); while they do, it looks in once a second. A wake-up of its own ten times a second
was a third of an idle loop's wake-ups.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PANEL_PERIOD_S = 0.1  # the panel redraws at most 10 times a second (meters still look live; 15 cost a third more CPU)
PANEL_WATCH_S = 1.0  # while the audio ticks (and publishes), how often the panel's own task looks in
PANEL_DUE_S = 0.9 * PANEL_PERIOD_S  # a tick this long after the last publish publishes (timers fire a little early)


class PanelFeed:
    """Paces ``publish`` (a fresh snapshot to the front end) between the audio's ticks and its own task."""

    def __init__(self, publish: Callable[[], None]) -> None:
        self._publish = publish
        self._published = self._ticked = -1e9  # time.monotonic() of the last publish, of the last audio tick

    def publish(self) -> None:
        self._published = time.monotonic()
        self._publish()

    def tick(self) -> None:
        """An audio tick: publish if the period has passed."""
        self._ticked = time.monotonic()
        if self._ticked - self._published >= PANEL_DUE_S:
            self.publish()

    async def run(self, finished: asyncio.Event) -> None:
        """Publish while no audio ticks come, until ``finished``."""
        while not finished.is_set():
            if time.monotonic() - self._published >= PANEL_DUE_S:
                self.publish()
            ticking = time.monotonic() - self._ticked < 2 * PANEL_PERIOD_S
            await asyncio.sleep(PANEL_WATCH_S if ticking else PANEL_PERIOD_S)
