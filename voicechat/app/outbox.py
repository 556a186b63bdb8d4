"""The ordered, bounded queue of client events between the conversation and the sender task.

Policy, decided by the effect's type (never by its ``type`` string): microphone appends
(``SendAudio``) beyond ``AUDIO_BACKLOG`` are dropped — the oldest audio is stale anyway — and
counted in ``dropped_audio``; every other event (``Send``) is never dropped, and a backlog beyond
``CONTROL_BACKLOG`` means the server stopped reading, which ends the conversation. Order is
kept across both kinds: a commit never overtakes the audio it commits.
"""

from __future__ import annotations

import asyncio
from collections import deque

from voicechat import effects as fx
from voicechat.errors import SessionError

AUDIO_BACKLOG = 250  # appends (~10 s of 40 ms appends) queued before the newest are dropped
CONTROL_BACKLOG = 2000  # control events queued before the connection is deemed stuck


class Outbox:
    """Client events for the sender task, in order; audio bounded, control never dropped."""

    def __init__(self) -> None:
        self._events: deque[fx.Send] = deque()
        self._audio = 0
        self._ready = asyncio.Event()
        self.dropped_audio = 0

    def clear(self) -> None:
        """Forget everything queued: it was meant for a connection that is gone."""
        self._events.clear()
        self._audio = 0

    def put(self, send: fx.Send) -> bool:
        """Queue one event; False when it was an append dropped for the backlog."""
        if isinstance(send, fx.SendAudio):
            if self._audio >= AUDIO_BACKLOG:
                self.dropped_audio += 1
                return False
            self._audio += 1
        elif len(self._events) >= CONTROL_BACKLOG:
            raise SessionError("the server stopped reading our events", hint="check the connection")
        self._events.append(send)
        self._ready.set()
        return True

    async def get(self) -> fx.Send:
        """The next event to send (waits for one)."""
        while not self._events:
            self._ready.clear()
            await self._ready.wait()
        send = self._events.popleft()
        if isinstance(send, fx.SendAudio):
            self._audio -= 1
        return send
