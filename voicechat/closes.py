"""What a server's refusal means to the user: a handshake status or a close code as an error.

Pure: each maps a number (and the endpoint or the close reason) to the `voicechat.errors`
error with the exit status and hint a user can act on. `voicechat.transport` raises them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from voicechat.backoff import retryable_close
from voicechat.errors import AuthError, BetaShapeError, ConnectError, NotFoundError, SessionError
from voicechat.urls import Endpoint, netloc


def closed_error_code(code: int, reason: str) -> ConnectError | SessionError:
    why = f": {reason}" if reason else ""
    if code == 4000:
        return BetaShapeError(
            f"the server refused the beta interface (close 4000{why})",
            hint="voicechat speaks the GA interface; check the server or proxy in between",
        )
    if code == 1001:
        return SessionError(f"the server ended the session (1001{why})")
    if code == 1008 and "model_not_found" in reason:
        return NotFoundError(f"the server does not know this model (1008{why})", hint="check --model")
    if code == 1008:
        return SessionError(f"the server closed the connection as a policy violation (1008{why})")
    if not retryable_close(code):
        # A deliberate close that would happen again (an application code 3000-4999, a protocol
        # complaint): the server ended the session (exit 11), not "could not connect" (5).
        return SessionError(f"the server ended the session (close {code}{why})")
    return ConnectError(f"the server closed the connection ({code}{why})")


def status_error(status: int, endpoint: Endpoint) -> ConnectError:
    host = endpoint.host
    if status == 401:
        return AuthError(
            f"the server at {host} rejected the API key (HTTP 401)",
            hint="check AZURE_OPENAI_API_KEY (or OPENAI_API_KEY, or the key in .env)"
            if endpoint.azure
            else "check OPENAI_API_KEY (or the key in .env)",
        )
    if status == 403:
        return AuthError(
            f"the API key has no access to the Realtime API at {host} (HTTP 403)",
            hint="check the key's project, organisation and model permissions",
        )
    if status == 404:
        return NotFoundError(
            f"no realtime endpoint at {netloc(endpoint.url)}{urlsplit(endpoint.url).path} (HTTP 404)",
            hint="check --base-url and --model",
        )
    hint = None
    if status == 429:
        hint = "rate limited: wait a moment, or check the account's quota"
    elif status >= 500:
        hint = "a problem on the server's side: try again in a moment"
    return ConnectError(f"the server at {host} answered HTTP {status} to the WebSocket handshake", hint=hint)
