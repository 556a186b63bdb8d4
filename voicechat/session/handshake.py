"""The handshake of one connection: ``session.created``, our ``session.update``, ``session.updated``.

Nothing is sent but the ``session.update`` until the server confirms the settings; only then is
the session ready (and the earlier turns re-seeded). The handshake also keeps what the server
last said about its session and whether an error said a new connection may succeed
(``retry_hint``): both belong to one connection and are forgotten with it.
"""

from __future__ import annotations

from typing import Any

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol.session_config import SessionConfig
from voicechat.session.errorpolicy import SESSION_UPDATE_ID
from voicechat.session.state import Phase


class Handshake:
    """The connection's phase and the server's session as last reported."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.phase = Phase.CONNECTING
        self.server_session: dict[str, Any] = {}
        self.retry_hint: str | None = None  # an error event said a new connection may succeed

    def reset(self) -> None:
        """The connection is gone: wait for the next one's ``session.created``."""
        self.server_session = {}
        self.retry_hint = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    def update_event(self) -> dict[str, Any]:
        """The ``session.update`` that configures a new connection."""
        return cmd.session_update(self.config, event_id=SESSION_UPDATE_ID)

    def created(self, server_session: dict[str, Any]) -> list[fx.Effect]:
        self.server_session = server_session
        if self.phase is not Phase.CONNECTING:
            return []
        self.phase = Phase.CONFIGURING
        return [fx.Send(self.update_event())]

    def updated(self, server_session: dict[str, Any]) -> bool:
        """``session.updated``: True when it completes the handshake."""
        self.server_session = server_session
        return self.phase is Phase.CONFIGURING

    def configured(self, server_session: dict[str, Any]) -> None:
        self.server_session = server_session
        self.phase = Phase.READY
