"""Warnings about server frames that are no event, rate-limited so a broken server cannot flood.

The first ``MALFORMED_BURST`` are warned about one by one; after that at most one warning every
``MALFORMED_EVERY_S`` says how many were held back since the last; at the end of the
conversation one line says how many were never shown. Time comes from the caller's clock.
"""

from __future__ import annotations

from collections.abc import Callable

from voicechat.protocol import codec

MALFORMED_BURST = 10  # malformed server frames warned about one by one, before the rate limit
MALFORMED_EVERY_S = 10.0  # then at most one warning this often, counting the frames held back


class MalformedFrames:
    """Counts malformed frames and says so, at a bounded rate."""

    def __init__(self, warn: Callable[[str], None], clock: Callable[[], float]) -> None:
        self._warn = warn
        self._clock = clock  # monotonic seconds
        self.count = 0  # frames that were no event
        self.held = 0  # of them, not warned about yet
        self._shown_at = 0.0

    def __call__(self, error: codec.MalformedEvent) -> None:
        self.count += 1
        now = self._clock()
        if self.count > MALFORMED_BURST and now - self._shown_at < MALFORMED_EVERY_S:
            self.held += 1
            return
        held, self.held, self._shown_at = self.held, 0, now
        more = f" ({held:,} more since the last warning)" if held else ""
        if self.count == MALFORMED_BURST:
            more += f"; further ones are reported at most every {MALFORMED_EVERY_S:g} s"
        self._warn(f"ignored a malformed server frame: {error.message}{more}")

    def summary(self) -> str | None:
        """The last word, when some frames were never warned about."""
        if not self.held:
            return None
        return f"ignored {self.held:,} more malformed server frames ({self.count:,} in all)"
