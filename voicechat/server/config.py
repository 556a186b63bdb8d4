"""The session configuration a local session holds, and strict ``session.update`` handling.

``default_session`` is what ``session.created`` carries (reference §2.2). ``apply_update``
validates a whole ``session`` object first and only then merges it into a deep copy, so an
invalid update changes nothing (§2.1). Merge rules: ``audio``/``input``/``output`` are
containers (only the keys sent change); ``turn_detection`` merges into the current object
when its ``type`` is unchanged and otherwise starts from that type's defaults; other objects
(formats, transcription, tracing, truncation, prompt) replace the old value.
"""

from __future__ import annotations

import copy
from typing import Any

from voicechat.protocol.constants import (
    DEFAULT_TRANSCRIBE_MODEL,
    DEFAULT_VOICE,
    EAGERNESS,
    NOISE_REDUCTION,
    TRANSCRIBE_MODELS,
    VOICES,
    WIRE_RATE,
)
from voicechat.protocol.session_config import IDLE_TIMEOUT_RANGE_MS, MAX_OUTPUT_TOKENS, SPEED_RANGE
from voicechat.server import apierrors as E
from voicechat.server import schema as S

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, friendly voice assistant. Keep answers short. "
    "(voicechat local server: replies come from a local brain, not a model.)"
)
# The SDK's transcription model literal also lists the ASR-only model.
ACCEPTED_TRANSCRIBE_MODELS = (*TRANSCRIBE_MODELS, "gpt-realtime-whisper")
PCM = {"type": "audio/pcm", "rate": WIRE_RATE}


def server_vad_defaults() -> dict[str, Any]:
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def semantic_vad_defaults() -> dict[str, Any]:
    return {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}


def default_session(session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The full effective config of a new session, as ``session.created`` shows it."""
    session: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": dict(PCM),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": server_vad_defaults(),
            },
            "output": {"format": dict(PCM), "voice": DEFAULT_VOICE, "speed": 1.0},
        },
        "include": None,
    }
    if model.startswith("gpt-realtime-2"):
        session["reasoning"] = {"effort": "low"}
    return session


# ---- validators ---------------------------------------------------------------------------


def voice(value: Any, path: str) -> Any:
    if isinstance(value, str):
        if value not in VOICES:
            raise E.invalid_value(path, value, VOICES)
        return value
    checked = S.obj({"id": S.string()}, required=("id",))(value, path)
    if not checked["id"].startswith("voice_"):
        raise E.invalid_value(S.join(path, "id"), checked["id"])
    return checked


def audio_format(value: Any, path: str) -> dict[str, Any]:
    fmt = S.tagged(
        "type",
        {
            "audio/pcm": S.obj({"type": S.anything, "rate": S.anything}),
            "audio/pcmu": S.obj({"type": S.anything}),
            "audio/pcma": S.obj({"type": S.anything}),
        },
    )(value, path)
    if fmt["type"] == "audio/pcm":
        rate = fmt.get("rate", WIRE_RATE)
        if rate != WIRE_RATE:
            raise E.invalid_value(S.join(path, "rate"), rate, (str(WIRE_RATE),))
        fmt["rate"] = WIRE_RATE
    return fmt


def max_tokens(value: Any, path: str) -> Any:
    if value == "inf":
        return value
    if isinstance(value, str):
        raise E.invalid_value(path, value, ("inf",))
    return S.integer(1, MAX_OUTPUT_TOKENS)(value, path)


_SERVER_VAD = S.obj(
    {
        "type": S.anything,
        "threshold": S.number(0.0, 1.0),
        "prefix_padding_ms": S.integer(0, 10_000),
        "silence_duration_ms": S.integer(0, 10_000),
        "idle_timeout_ms": S.nullable(S.integer(*IDLE_TIMEOUT_RANGE_MS)),
        "create_response": S.boolean,
        "interrupt_response": S.boolean,
    }
)
_SEMANTIC_VAD = S.obj(
    {
        "type": S.anything,
        "eagerness": S.enum(*EAGERNESS),
        "create_response": S.boolean,
        "interrupt_response": S.boolean,
    }
)
TURN_DETECTION = S.nullable(S.tagged("type", {"server_vad": _SERVER_VAD, "semantic_vad": _SEMANTIC_VAD}))
_DELAY = S.enum("minimal", "low", "medium", "high", "xhigh")
TRANSCRIPTION = S.nullable(
    S.obj(
        {
            "model": S.enum(*ACCEPTED_TRANSCRIBE_MODELS),
            "language": S.nullable(S.string()),
            "languages": S.array(S.string()),
            "prompt": S.nullable(S.string()),
            "keywords": S.array(S.string()),
            "delay": _DELAY,
        }
    )
)
NOISE = S.nullable(
    S.obj({"type": S.enum(*NOISE_REDUCTION), "strength": S.number(0.0, 1.0)}, required=("type",))
)
_FUNCTION_TOOL = S.obj(
    {"type": S.anything, "name": S.string(64), "description": S.string(), "parameters": S.free_object},
    required=("name",),
)
_MCP_TOOL = S.obj(
    {
        "type": S.anything,
        "server_label": S.string(),
        "server_url": S.string(),
        "connector_id": S.string(),
        "tunnel_id": S.string(),
        "server_description": S.string(),
        "allowed_tools": S.anything,
        "require_approval": S.anything,
        "headers": S.nullable(S.free_object),
        "authorization": S.string(),
        "defer_loading": S.boolean,
    },
    required=("server_label",),
)
TOOLS = S.array(S.tagged("type", {"function": _FUNCTION_TOOL, "mcp": _MCP_TOOL}), max_items=128)
TOOL_CHOICE = S.one_of_strings_or(
    ("auto", "none", "required"),
    S.tagged(
        "type",
        {
            "function": S.obj({"type": S.anything, "name": S.string()}, required=("name",)),
            "mcp": S.obj(
                {"type": S.anything, "server_label": S.string(), "name": S.nullable(S.string())},
                required=("server_label",),
            ),
        },
    ),
)
_TRACING = S.nullable(
    S.one_of_strings_or(
        ("auto",),
        S.obj({"workflow_name": S.string(), "group_id": S.string(), "metadata": S.anything}),
    )
)
_TRUNCATION = S.one_of_strings_or(
    ("auto", "disabled"),
    S.tagged(
        "type",
        {
            "retention_ratio": S.obj(
                {
                    "type": S.anything,
                    "retention_ratio": S.number(0.0, 1.0),
                    "token_limits": S.obj({"post_instructions": S.integer(0)}),
                },
                required=("retention_ratio",),
            )
        },
    ),
)
PROMPT = S.nullable(
    S.obj({"id": S.string(), "version": S.nullable(S.string()), "variables": S.nullable(S.free_object)}, required=("id",))
)
REASONING = S.obj({"effort": S.enum("minimal", "low", "medium", "high", "xhigh")})
MODALITIES_PATH_VALUES = (["audio"], ["text"])


def modalities(value: Any, path: str) -> list[str]:
    items = S.array(S.enum("audio", "text"))(value, path)
    if items not in MODALITIES_PATH_VALUES:
        raise E.ApiError(
            "invalid_value",
            f"Invalid modalities: {items!r}. Supported combinations are: ['text'] and ['audio'].",
            path,
        )
    return items


_SESSION = S.obj(
    {
        "type": S.anything,
        "model": S.string(),
        "instructions": S.string(),
        "output_modalities": modalities,
        "audio": S.obj(
            {
                "input": S.obj(
                    {
                        "format": audio_format,
                        "transcription": TRANSCRIPTION,
                        "noise_reduction": NOISE,
                        "turn_detection": TURN_DETECTION,
                    }
                ),
                "output": S.obj({"format": audio_format, "voice": voice, "speed": S.number(*SPEED_RANGE)}),
            }
        ),
        "tools": TOOLS,
        "tool_choice": TOOL_CHOICE,
        "max_output_tokens": max_tokens,
        "tracing": _TRACING,
        "truncation": _TRUNCATION,
        "prompt": PROMPT,
        "include": S.nullable(S.array(S.enum("item.input_audio_transcription.logprobs"))),
        "reasoning": REASONING,
        "parallel_tool_calls": S.boolean,
    },
    required=("type",),
)


# ---- update -------------------------------------------------------------------------------


def apply_update(current: dict[str, Any], update: Any, *, voice_locked: bool) -> dict[str, Any]:
    """Validate ``update`` (the ``session`` object) and return the new effective config."""
    if update is None:
        raise E.missing_parameter("session")
    checked = _SESSION(update, "session")
    if checked["type"] != "realtime":
        raise E.invalid_value("session.type", checked["type"], ("realtime",))
    if "model" in checked and checked["model"] != current["model"]:
        raise E.ApiError(
            "invalid_value",
            "The session model cannot be changed after the session has started.",
            "session.model",
        )
    audio_in = checked.get("audio", {}).get("input", {})
    audio_out = checked.get("audio", {}).get("output", {})
    if "voice" in audio_out and voice_locked and audio_out["voice"] != current["audio"]["output"]["voice"]:
        raise E.cannot_update_voice()
    if "tracing" in checked and current["tracing"] is not None and checked["tracing"] != current["tracing"]:
        raise E.ApiError(
            "invalid_value", "Tracing cannot be modified once it has been enabled.", "session.tracing"
        )
    new = copy.deepcopy(current)
    for key, value in checked.items():
        if key not in ("type", "model", "audio"):
            new[key] = value
    _merge_input(new["audio"]["input"], audio_in)
    new["audio"]["output"].update(audio_out)
    return new


def _merge_input(current: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if key == "turn_detection":
            current[key] = _merge_turn_detection(current.get(key), value)
        elif key == "noise_reduction" and value is not None:
            old = current.get(key) or {}
            value.setdefault("strength", old.get("strength", 1.0))
            current[key] = value
        elif key == "transcription" and value is not None:
            value.setdefault("model", DEFAULT_TRANSCRIBE_MODEL)
            current[key] = value
        else:
            current[key] = value


def _merge_turn_detection(current: dict[str, Any] | None, value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if current is not None and current["type"] == value["type"]:
        merged = dict(current)
    elif value["type"] == "server_vad":
        merged = server_vad_defaults()
    else:
        merged = semantic_vad_defaults()
    merged.update(value)
    return merged
