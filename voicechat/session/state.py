"""Where one conversation stands, as two small enums the whole session package shares.

``Phase`` is the connection's handshake (the facade moves it); ``Activity`` is what the panel
shows, derived from the parts each time it is asked, never stored. Both live here, apart from
the parts, so a part can read them without importing the facade that composes it.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    CONNECTING = "connecting"  # waiting for session.created
    CONFIGURING = "configuring"  # session.update sent, waiting for session.updated
    READY = "ready"
    CLOSED = "closed"


class Activity(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    USER_SPEAKING = "user speaking"
    COMMITTED = "committed"
    THINKING = "thinking"
    ASSISTANT_SPEAKING = "assistant speaking"


class EventIds:
    """Our own ``event_id`` values (``vc_1``, ``vc_2``, …): error events name the one they refuse.

    One counter for the whole conversation, handed to the parts as a callable, so an id is never
    used twice across connections.
    """

    PREFIX = "vc_"

    def __init__(self) -> None:
        self._seq = 0

    def __call__(self) -> str:
        self._seq += 1
        return f"{self.PREFIX}{self._seq}"
