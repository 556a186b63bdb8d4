"""The local realtime-compatible server (GA WebSocket protocol) used by tests and `voicechat serve`.

Layout: ``ws.py`` is the only module that does I/O (websockets + asyncio pacing); the
per-connection ``session.RealtimeSession`` (with ``inputbuf``, ``responses``, ``stream``,
``items``, ``config``) is sans-I/O and takes time as an argument; ``vad.py`` and
``brain.py`` are pure numpy; ``handshake.py`` decides upgrades.
"""

from voicechat.server.brain import (
    Brain,
    EchoBrain,
    FunctionCall,
    Reply,
    ScriptedBrain,
    ScriptedReply,
    Turn,
)
from voicechat.server.options import ServerOptions
from voicechat.server.ws import LocalServer, run_server

__all__ = [
    "Brain",
    "EchoBrain",
    "FunctionCall",
    "LocalServer",
    "Reply",
    "ScriptedBrain",
    "ScriptedReply",
    "ServerOptions",
    "Turn",
    "run_server",
]
