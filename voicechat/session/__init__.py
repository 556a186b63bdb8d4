"""The sans-I/O session core: server events and user intents in, effects out.

``Session`` (``core.py``) is the facade; the package's other modules are its parts, each with
one concern and its own ``reset()`` for a new connection. The names tests and the app use are
re-exported here, so ``from voicechat.session import Session`` keeps working.
"""

from voicechat.session.core import Session
from voicechat.session.entries import seed_item
from voicechat.session.errorpolicy import SESSION_UPDATE_ID
from voicechat.session.lifetime import EXPIRY_WARNING_S, RECYCLE_MARGIN_S, expires_at
from voicechat.session.mic import APPEND_BYTES, APPEND_MS, MIN_COMMIT_BYTES
from voicechat.session.speaker import LOCAL_ONSET_WAIT_S
from voicechat.session.state import Activity, Phase
from voicechat.session.transcript import MAX_SEED_TURNS, RESUMED_PREFIX, SEED_PREFIX

__all__ = [
    "APPEND_BYTES",
    "APPEND_MS",
    "EXPIRY_WARNING_S",
    "LOCAL_ONSET_WAIT_S",
    "MAX_SEED_TURNS",
    "MIN_COMMIT_BYTES",
    "RECYCLE_MARGIN_S",
    "RESUMED_PREFIX",
    "SEED_PREFIX",
    "SESSION_UPDATE_ID",
    "Activity",
    "Phase",
    "Session",
    "expires_at",
    "seed_item",
]
