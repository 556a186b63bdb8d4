"""Sans-I/O Realtime protocol (GA interface): typed server events, client event builders, codec.

Shared by the client and the local server. Imports nothing that does I/O. The submodules and
names below load on first use, so that a module needing only ``protocol.constants`` (the
settings table, hence ``voicechat --help``) does not pay for the event types and the codec.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "MalformedEvent": "codec", "decode_client": "codec", "decode_server": "codec", "encode": "codec",
    "SessionConfig": "session_config", "TurnDetection": "session_config",
}  # fmt: skip

__all__ = [
    "MalformedEvent",
    "SessionConfig",
    "TurnDetection",
    "client",
    "decode_client",
    "decode_server",
    "encode",
    "events",
]


def __getattr__(name: str) -> Any:
    if name in ("client", "events"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
