"""Protocol facts: names, limits and defaults of the Realtime API (GA interface)."""

from __future__ import annotations

import re

WIRE_RATE = 24_000
"""PCM16 mono sample rate on the wire (``audio/pcm``)."""

BYTES_PER_MS = 48
APPEND_MS = 40
"""Microphone audio goes out in appends of this length. Each append costs a base64 encode, a JSON
dump and a WebSocket frame; 40 ms halves that against 20 ms device blocks while adding at most
one block (20 ms) before the server hears a sample. The capture pipeline cuts the microphone into
pieces of this length, once (``voicechat.audio.capture``)."""
MIN_COMMIT_MS = 100
"""The server rejects a commit with less audio than this since the previous commit."""

MAX_APPEND_BYTES = 15 * 1024 * 1024
MAX_CLIENT_ID_LEN = 32
SESSION_MAX_SECONDS = 3600

DEFAULT_MODEL = "gpt-realtime-2.1"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_VOICE = "marin"
DEFAULT_TRANSCRIBE_MODEL = "gpt-4o-mini-transcribe"

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
TRANSCRIBE_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
    "gpt-transcribe",
    "gpt-live-transcribe",
)
EAGERNESS = ("low", "medium", "high", "auto")
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")
REASONING_MODELS = ("gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini")
"""The models that take ``reasoning.effort`` (their dated snapshots too)."""
NON_REASONING_MODELS = ("gpt-realtime", "gpt-realtime-1.5", "gpt-realtime-mini")
"""Models known not to reason (their dated snapshots too): ``reasoning`` is refused with them."""


def known_not_to_reason(model: str) -> bool:
    """True for a model (or a dated snapshot of one) known to take no ``reasoning.effort``; an
    unknown name (an Azure deployment, a newer model) is given the benefit of the doubt."""
    if model.startswith("gpt-realtime-2") and not model.startswith("gpt-realtime-2025"):
        return False
    if model in RETIRED_MODELS:
        return True
    return any(model == name or re.fullmatch(re.escape(name) + r"-\d{4}-\d{2}-\d{2}", model)
               for name in NON_REASONING_MODELS)
NOISE_REDUCTION = ("near_field", "far_field")

# Models retired from the Realtime API; connecting with one of them is a user error worth naming.
RETIRED_MODELS = {
    "gpt-4o-realtime-preview": "gpt-realtime-1.5",
    "gpt-4o-realtime-preview-2024-10-01": "gpt-realtime-1.5",
    "gpt-4o-realtime-preview-2024-12-17": "gpt-realtime-1.5",
    "gpt-4o-realtime-preview-2025-06-03": "gpt-realtime-1.5",
    "gpt-4o-mini-realtime-preview": "gpt-realtime-mini",
    "gpt-4o-mini-realtime-preview-2024-12-17": "gpt-realtime-mini",
    "gpt-realtime-mini-2025-10-06": "gpt-realtime-mini",
}

# Error codes that are races of an honest client, not faults: shown at debug level only.
BENIGN_ERROR_CODES = frozenset(
    {"response_cancel_not_active", "conversation_already_has_active_response"}
)
