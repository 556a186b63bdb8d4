"""A session core past its handshake, for unit tests that drive it with events."""

from __future__ import annotations

from voicechat.protocol import SessionConfig
from voicechat.protocol import events as ev
from voicechat.session import Session

NO_TRANSCRIPTION = SessionConfig(transcribe_model=None)


def ready_session(config: SessionConfig = NO_TRANSCRIPTION) -> Session:
    """A `Session` that has had ``session.created`` and ``session.updated``."""
    s = Session(config)
    s.handle(ev.SessionCreated("e", {"id": "sess_1"}), 0.0)
    s.handle(ev.SessionUpdated("e", {"id": "sess_1"}), 0.1)
    assert s.ready
    return s
