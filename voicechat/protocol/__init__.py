"""Sans-I/O Realtime protocol (GA interface): typed server events, client event builders, codec.

Shared by the client and the local server. Imports nothing that does I/O.
"""

from voicechat.protocol import client, events
from voicechat.protocol.codec import MalformedEvent, decode_client, decode_server, encode
from voicechat.protocol.session_config import SessionConfig, TurnDetection

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
