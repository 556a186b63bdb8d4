"""The opening handshake decision, as a pure function of path, headers and options.

Mirrors the real service (reference §1): ``/v1/realtime`` with ``Authorization: Bearer``,
the Azure GA path ``/openai/v1/realtime`` with an ``api-key`` header (or Bearer, or an
``api-key`` query parameter), subprotocol auth ``openai-insecure-api-key.<KEY>``. Refusals
are HTTP responses with the OpenAI JSON error body. An ``OpenAI-Beta`` header is accepted
and then answered with ``beta_api_shape_disabled`` + close 4000 by the WebSocket layer.

Unknown or retired models: the real behaviour is undocumented, so the upgrade is accepted
and the session ends at once with an ``error`` ``model_not_found`` and close 1008.
Sideband (``call_id``) and transcription (``intent=transcription``) sessions are refused
with HTTP 400 as unsupported by this local server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from voicechat.protocol.constants import RETIRED_MODELS
from voicechat.server.options import ServerOptions

OPENAI_PATH = "/v1/realtime"
AZURE_PATH = "/openai/v1/realtime"
KEY_PROTOCOL_PREFIX = "openai-insecure-api-key."

NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username and "
    "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


@dataclass(frozen=True)
class Reject:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Accept:
    model: str
    beta: bool = False
    bad_model: bool = False


def error_body(message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def _mask(key: str) -> str:
    return key[:3] + "*" * max(0, min(len(key) - 7, 20)) + key[-4:] if len(key) > 8 else "***"


def _key(headers: Mapping[str, str], query: dict[str, list[str]], azure: bool) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for proto in headers.get("sec-websocket-protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(KEY_PROTOCOL_PREFIX):
            return proto[len(KEY_PROTOCOL_PREFIX) :]
    if azure:
        return headers.get("api-key") or next(iter(query.get("api-key", [])), None)
    return None


def plausible_model(model: str, opts: ServerOptions) -> bool:
    if model in opts.extra_models:
        return True
    return model.startswith("gpt-realtime") and model not in RETIRED_MODELS


def check(path: str, headers: Mapping[str, str], opts: ServerOptions) -> Reject | Accept:
    """Decide one upgrade request; ``headers`` keys are lowercase."""
    if opts.handshake_status is not None:
        status = HTTPStatus(opts.handshake_status)
        return Reject(status.value, error_body(f"Forced handshake failure: {status.phrase}.", "forced_failure"))
    url = urlsplit(path)
    if url.path not in (OPENAI_PATH, AZURE_PATH):
        return Reject(404, error_body(f"Invalid URL (GET {url.path})"))
    azure = url.path == AZURE_PATH
    query = parse_qs(url.query)
    key = _key(headers, query, azure)
    if not key:
        return Reject(401, error_body(NO_KEY_MESSAGE))
    if opts.api_key is not None and key != opts.api_key:
        message = (f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
        return Reject(401, error_body(message, "invalid_api_key"))
    if "call_id" in query:
        return Reject(400, error_body("Sideband connections (call_id) are not supported by the voicechat "
                                      "local server.", "unsupported", "call_id"))
    if query.get("intent", ["realtime"])[0] != "realtime":
        return Reject(400, error_body("Only realtime sessions are supported by the voicechat local server.",
                                      "unsupported", "intent"))
    models = query.get("model") or query.get("deployment") or []
    if not models or not models[0]:
        return Reject(400, error_body("Missing required parameter: 'model'.", "missing_required_parameter", "model"))
    model = models[0]
    if "openai-beta" in headers:
        return Accept(model, beta=True)
    return Accept(model, bad_model=not plausible_model(model, opts))
