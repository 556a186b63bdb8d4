"""The error objects the real service sends, as one exception type plus message builders.

Handlers raise ``ApiError``; the session turns it into an ``error`` event that echoes the
client's ``event_id``. Message texts copy the real service where it is known
(reference §6.2) and OpenAI's general validation style elsewhere.
"""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """One error event's ``error`` object."""

    def __init__(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        *,
        type: str = INVALID_REQUEST,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.type = type

    def body(self, client_event_id: str | None) -> dict[str, Any]:
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": client_event_id,
        }


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def unknown_parameter(param: str) -> ApiError:
    return ApiError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing_parameter(param: str) -> ApiError:
    return ApiError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def invalid_value(param: str, value: Any, supported: tuple[str, ...] | None = None) -> ApiError:
    message = f"Invalid value: '{_show(value)}'."
    if supported:
        message += " Supported values are: " + ", ".join(f"'{s}'" for s in supported) + "."
    return ApiError("invalid_value", message, param)


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a decimal",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    want = _TYPE_WORDS.get(expected, expected)
    return ApiError(
        "invalid_type",
        f"Invalid type for '{param}': expected {want}, but got {_json_kind(value)} instead.",
        param,
    )


def out_of_range(param: str, value: float, lo: float | None, hi: float | None, integer: bool) -> ApiError:
    """OpenAI's range errors: ``decimal_above_max_value`` and friends."""
    kind = "integer" if integer else "decimal"
    if hi is not None and value > hi:
        return ApiError(
            f"{kind}_above_max_value",
            f"Invalid '{param}': {kind} above maximum value. "
            f"Expected a value <= {_num(hi)}, but got {_num(value)} instead.",
            param,
        )
    return ApiError(
        f"{kind}_below_min_value",
        f"Invalid '{param}': {kind} below minimum value. "
        f"Expected a value >= {_num(lo if lo is not None else 0)}, but got {_num(value)} instead.",
        param,
    )


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def string_too_long(param: str, limit: int, length: int) -> ApiError:
    return ApiError(
        "string_above_max_length",
        f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
        f"but got a string with length {length} instead.",
        param,
    )


def invalid_event(message: str) -> ApiError:
    return ApiError("invalid_event", message)


def commit_empty(buffered_ms: float) -> ApiError:
    return ApiError(
        "input_audio_buffer_commit_empty",
        "Error committing input audio buffer: buffer too small. Expected at least 100ms of "
        f"audio, but buffer only has {buffered_ms:.2f}ms of audio.",
    )


def active_response(response_id: str) -> ApiError:
    return ApiError(
        "conversation_already_has_active_response",
        f"Conversation already has an active response in progress: {response_id}. "
        "Wait until the response is finished before creating a new one.",
    )


def cancel_not_active() -> ApiError:
    return ApiError("response_cancel_not_active", "Cancellation failed: no active response found")


def cannot_update_voice() -> ApiError:
    return ApiError(
        "cannot_update_voice",
        "Cannot update a conversation's voice if assistant audio is present.",
        "session.audio.output.voice",
    )


def item_not_found(item_id: str, param: str = "item_id") -> ApiError:
    """Local choice: the real text is undocumented."""
    return ApiError("item_not_found", f"Item with item_id not found: {item_id}", param)


def truncate_not_audio() -> ApiError:
    return ApiError("unsupported_content_type", "Only model output audio messages can be truncated")


def truncate_too_long(have_ms: int, want_ms: int) -> ApiError:
    return ApiError(
        "invalid_value",
        f"Audio content of {have_ms}ms is already shorter than {want_ms}ms",
        "audio_end_ms",
    )


def session_expired() -> ApiError:
    return ApiError("session_expired", "Your session hit the maximum duration of 60 minutes.")


SESSION_EXPIRED_REASON = "Your session hit the maximum duration of 60 minutes."


def beta_disabled() -> ApiError:
    return ApiError(
        "beta_api_shape_disabled",
        "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
    )


BETA_CLOSE_REASON = "invalid_request_error.beta_api_shape_disabled"


def model_not_found(model: str) -> ApiError:
    return ApiError(
        "model_not_found",
        f"The model '{model}' does not exist or you do not have access to it.",
    )
