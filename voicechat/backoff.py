"""The reconnect policy: how long to wait between tries, and which failures deserve one.

Pure: ``Backoff.delays`` is a generator of delays in seconds that never sleeps, reads no clock
and keeps no global random state (the caller passes a ``random.Random``, or anything with a
``uniform(a, b)`` method). The caller sleeps each delay, tries again, and gives up when the
generator ends. The ``retryable_*`` helpers say whether a failure is worth another try: a
dropped connection, a server error or an expired session is; a rejected key, an unknown model,
the beta interface or a normal close never is, because trying again would meet it again.

Close codes of the realtime service (reference §6.3; no official table exists): 1000 normal
hang-up, 1001 going away (seen at the 60-minute session limit), 1009 message too big (a client
library's own cap), 1011 internal error or keepalive timeout, 4000 beta interface refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from voicechat.errors import (
    AudioError,
    AuthError,
    ConfigError,
    ConnectError,
    Interrupted,
    NotFoundError,
    ProtocolError,
    SessionError,
    UsageError,
)
from voicechat.protocol import events as ev

Jitter = Literal["full", "decorrelated"]


class Uniform(Protocol):
    """What the policy needs of a random source (``random.Random`` has it)."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, capped, over a bounded number of tries.

    * ``full``: try *n* (from 0) waits ``uniform(0, min(cap, base * 2**n))`` (AWS "full jitter").
    * ``decorrelated``: each wait is ``min(cap, uniform(base, 3 * previous))``, starting from
      ``base`` (AWS "decorrelated jitter"): never below ``base``, growing about 2x per try.

    Either way the expected wait grows with each try until the cap, and no wait exceeds it.
    """

    base: float = 0.5
    cap: float = 8.0
    tries: int = 6
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"backoff base must be positive, not {self.base}")
        if not self.cap >= self.base:
            raise ValueError(f"backoff cap {self.cap} must be at least the base {self.base}")
        if self.tries < 0:
            raise ValueError(f"backoff tries must not be negative, not {self.tries}")
        if self.jitter not in ("full", "decorrelated"):
            raise ValueError(f"unknown backoff jitter {self.jitter!r} (full or decorrelated)")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before try ``attempt`` (0-based): ``min(cap, base * 2**attempt)``."""
        if attempt >= 64:  # 2**64 * base is past any cap; avoids float overflow for silly counts
            return self.cap
        return min(self.cap, self.base * 2**attempt)

    def delays(self, rng: Uniform) -> Iterator[float]:
        """Yield ``tries`` waits in seconds, one before each reconnect attempt."""
        previous = self.base
        for attempt in range(self.tries):
            if self.jitter == "full":
                delay = rng.uniform(0.0, self.ceiling(attempt))
            else:
                delay = rng.uniform(self.base, 3 * previous)
            delay = min(self.cap, max(0.0, delay))  # a source that strays out of range stays bounded
            previous = max(self.base, delay)
            yield delay

    @property
    def longest_total(self) -> float:
        """The most all waits can add up to (for "gave up after N s" messages)."""
        if self.jitter == "full":
            return sum(self.ceiling(n) for n in range(self.tries))
        total, previous = 0.0, self.base
        for _ in range(self.tries):
            previous = min(self.cap, 3 * previous)
            total += previous
        return total


DEFAULT = Backoff()

# ---- which failures deserve another try ------------------------------------------------------

# No close frame (1006 on the wire, ``None`` from websockets), going away, no status, internal
# error / keepalive timeout, service restart, try again later, bad gateway.
RETRYABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1014})

# Error event codes after which a new session may succeed; any event of type ``server_error`` too.
RETRYABLE_ERROR_CODES = frozenset({"session_expired"})


def retryable_close(code: int | None) -> bool:
    """Whether a WebSocket close with ``code`` (``None``: no close frame) deserves a reconnect.

    1000 is a deliberate hang-up; 1002/1003/1007/1008/1009/1010/1015 and the 3000 and 4000
    ranges (4000: beta interface refused; others: application policy) would happen again.
    """
    return code is None or code in RETRYABLE_CLOSE_CODES


def retryable_status(status: int) -> bool:
    """Whether an HTTP status answering the WebSocket upgrade deserves another try.

    401/403 (key), 404 (endpoint or model) and other 4xx are the user's to fix; 408, 429 and
    5xx are the server's moment.
    """
    return status in (408, 429) or 500 <= status <= 599


def retryable_error_event(error_type: str, code: str | None) -> bool:
    """Whether a server ``error`` event calls for a new connection.

    ``server_error`` is transient and ``session_expired`` ends a session that a new one
    replaces; every other error either leaves the session open (nothing to reconnect for) or
    names a cause a new session would meet again (beta interface, unknown model, bad key).
    """
    return error_type == "server_error" or code in RETRYABLE_ERROR_CODES


_NEVER = (AuthError, NotFoundError, UsageError, ConfigError, AudioError, Interrupted)


def retryable(failure: object) -> bool:
    """Whether ``failure`` deserves a reconnect, from the most precise facts it carries.

    Accepts an ``ErrorEvent``; a ``websockets`` ``ConnectionClosed`` (recognised by its
    ``rcvd`` close frame) or ``InvalidStatus`` (by its ``response.status_code``), without
    importing websockets; an error from ``voicechat.errors``; or a raw network ``OSError`` or
    ``TimeoutError``. The error types are coarser than the wire facts: a ``ConnectError`` is
    retried whatever close code or status made it, and a ``SessionError`` or ``ProtocolError``
    never is (an expired session would not recur, rejected settings would), so where the close
    code, status or error event is at hand, pass that instead.
    """
    if isinstance(failure, ev.ErrorEvent):
        return retryable_error_event(failure.type, failure.code)
    if hasattr(failure, "rcvd"):  # websockets.exceptions.ConnectionClosed
        frame = getattr(failure, "rcvd", None)
        code = getattr(frame, "code", None) if frame is not None else None
        return retryable_close(code if isinstance(code, int) else None)
    status = getattr(getattr(failure, "response", None), "status_code", None)
    if isinstance(status, int):  # websockets.exceptions.InvalidStatus
        return retryable_status(status)
    if isinstance(failure, (*_NEVER, SessionError, ProtocolError)):
        return False
    if isinstance(failure, ConnectError):  # dropped, refused, DNS, timeout, 5xx at the upgrade
        return True
    return isinstance(failure, OSError | TimeoutError)
