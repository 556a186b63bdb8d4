"""The reconnect policy: delays from a seeded source, no sleeping; which failures are retried."""

from __future__ import annotations

import random
from statistics import fmean

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from voicechat.backoff import (
    DEFAULT,
    Backoff,
    retryable,
    retryable_close,
    retryable_error_event,
    retryable_status,
)
from voicechat.closes import closed_error_code, status_error
from voicechat.errors import (
    AuthError,
    BetaShapeError,
    ConfigError,
    ConnectError,
    DnsError,
    Interrupted,
    NotFoundError,
    ProtocolError,
    RefusedError,
    SessionError,
    UsageError,
)
from voicechat.protocol import events as ev
from voicechat.urls import Endpoint


class Edge:
    """A source that always answers one end of the range asked for."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_defaults_are_a_short_bounded_wait() -> None:
    assert (DEFAULT.base, DEFAULT.cap, DEFAULT.tries, DEFAULT.jitter) == (0.5, 8.0, 6, "full")
    assert [DEFAULT.ceiling(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert DEFAULT.longest_total == 0.5 + 1 + 2 + 4 + 8 + 8


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_count_is_the_number_of_tries(jitter: str) -> None:
    for tries in (0, 1, 6, 10):
        policy = Backoff(tries=tries, jitter=jitter)  # type: ignore[arg-type]
        assert len(list(policy.delays(random.Random(1)))) == tries


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_same_seed_same_delays(jitter: str) -> None:
    policy = Backoff(jitter=jitter)  # type: ignore[arg-type]
    a = list(policy.delays(random.Random(42)))
    b = list(policy.delays(random.Random(42)))
    c = list(policy.delays(random.Random(43)))
    assert a == b and a != c


def test_the_generator_uses_only_the_source_it_is_given() -> None:
    random.seed(7)
    before = random.getstate()
    list(Backoff(tries=20).delays(random.Random(0)))
    list(Backoff(tries=20, jitter="decorrelated").delays(random.Random(0)))
    assert random.getstate() == before


def test_full_jitter_edges_are_zero_and_the_capped_ceiling() -> None:
    policy = Backoff(base=0.5, cap=8.0, tries=8)
    assert list(policy.delays(Edge(high=False))) == [0.0] * 8
    assert list(policy.delays(Edge(high=True))) == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_decorrelated_edges_are_the_base_and_triple_the_last_wait() -> None:
    policy = Backoff(base=0.5, cap=10.0, tries=6, jitter="decorrelated")
    assert list(policy.delays(Edge(high=False))) == [0.5] * 6
    assert list(policy.delays(Edge(high=True))) == [1.5, 4.5, 10.0, 10.0, 10.0, 10.0]
    assert policy.longest_total == 1.5 + 4.5 + 10 * 4


def test_a_stray_source_stays_within_the_bounds() -> None:
    class Wild:
        def uniform(self, a: float, b: float) -> float:
            return -5.0 if a == 0 else 1e9

    assert list(Backoff(tries=3).delays(Wild())) == [0.0, 0.0, 0.0]
    assert list(Backoff(tries=3, jitter="decorrelated").delays(Wild())) == [8.0, 8.0, 8.0]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    base=st.floats(0.01, 2.0),
    factor=st.floats(1.0, 50.0),
    tries=st.integers(0, 80),
    jitter=st.sampled_from(["full", "decorrelated"]),
    seed=st.integers(0, 2**32),
)
def test_every_delay_is_within_bounds(base: float, factor: float, tries: int, jitter: str, seed: int) -> None:
    policy = Backoff(base=base, cap=base * factor, tries=tries, jitter=jitter)  # type: ignore[arg-type]
    delays = list(policy.delays(random.Random(seed)))
    assert len(delays) == tries
    for n, d in enumerate(delays):
        assert 0.0 <= d <= policy.cap
        if jitter == "full":
            assert d <= policy.ceiling(n)
        else:
            assert d >= base
    assert sum(delays) <= policy.longest_total + 1e-9


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_expected_delay_grows_until_the_cap(jitter: str) -> None:
    policy = Backoff(base=0.5, cap=8.0, tries=8, jitter=jitter)  # type: ignore[arg-type]
    rng = random.Random(2024)
    runs = [list(policy.delays(rng)) for _ in range(4000)]
    means = [fmean(run[n] for run in runs) for n in range(policy.tries)]
    # Clearly growing while well below the cap, and never shrinking after (sampling noise aside).
    growing = [n for n in range(policy.tries - 1) if means[n] < policy.cap / 2]
    assert len(growing) >= 3
    for n in growing:
        assert means[n + 1] > means[n] * 1.15, (n, means)
    for n in range(policy.tries - 1):
        assert means[n + 1] >= means[n] * 0.97, (n, means)
    assert max(means) <= policy.cap
    if jitter == "full":  # full jitter averages half the ceiling
        for n, m in enumerate(means):
            assert m == pytest.approx(policy.ceiling(n) / 2, rel=0.06)


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0}, {"base": -1}, {"base": 2, "cap": 1}, {"tries": -1}, {"jitter": "equal"}, {"base": float("nan")}],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


# ---- classification -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, retry",
    [
        (None, True),  # no close frame: the link dropped
        (1006, True),  # abnormal closure, as reported by some stacks
        (1001, True),  # going away: the 60-minute limit, or a server restart
        (1011, True),  # internal error / keepalive ping timeout
        (1012, True),
        (1013, True),
        (1014, True),
        (1005, True),
        (1000, False),  # a deliberate hang-up
        (1002, False),
        (1003, False),
        (1007, False),
        (1008, False),  # policy violation (unknown model, bad key on some proxies)
        (1009, False),  # message too big: our own cap, it would happen again
        (1015, False),
        (3000, False),
        (3003, False),
        (4000, False),  # the beta interface refused
        (4001, False),
        (4999, False),
    ],
)
def test_close_codes(code: int | None, retry: bool) -> None:
    assert retryable_close(code) is retry
    rcvd = None if code is None else Close(code, "")
    assert retryable(ConnectionClosed(rcvd, None)) is retry


@pytest.mark.parametrize(
    "status, retry",
    [(401, False), (403, False), (404, False), (400, False), (426, False),
     (408, True), (429, True), (500, True), (502, True), (503, True), (504, True)],
)
def test_upgrade_statuses(status: int, retry: bool) -> None:
    assert retryable_status(status) is retry
    assert retryable(InvalidStatus(Response(status, "x", Headers()))) is retry


@pytest.mark.parametrize(
    "error_type, code, retry",
    [
        ("server_error", None, True),
        ("server_error", "internal_error", True),
        ("invalid_request_error", "session_expired", True),
        ("invalid_request_error", "beta_api_shape_disabled", False),
        ("invalid_request_error", "model_not_found", False),
        ("invalid_request_error", "invalid_api_key", False),
        ("invalid_request_error", "conversation_already_has_active_response", False),
        ("invalid_request_error", "response_cancel_not_active", False),
        ("invalid_request_error", "input_audio_buffer_commit_empty", False),
        ("invalid_request_error", "unknown_parameter", False),
        ("invalid_request_error", None, False),
    ],
)
def test_error_events(error_type: str, code: str | None, retry: bool) -> None:
    assert retryable_error_event(error_type, code) is retry
    assert retryable(ev.ErrorEvent("e", error_type, code, "m")) is retry


ENDPOINT = Endpoint("wss://api.example.com/v1/realtime?model=m", "sk-test")


@pytest.mark.parametrize(
    "error, retry",
    [
        (status_error(401, ENDPOINT), False),
        (status_error(403, ENDPOINT), False),
        (status_error(404, ENDPOINT), False),
        (closed_error_code(4000, ""), False),
        (closed_error_code(1008, "model_not_found"), False),
        (BetaShapeError("x"), False),
        (AuthError("x"), False),
        (NotFoundError("x"), False),
        (UsageError("x"), False),
        (ConfigError("x"), False),
        (Interrupted(), False),
        (SessionError("x"), False),
        (ProtocolError("x"), False),
        (ValueError("x"), False),
        (ConnectError("the connection to the server dropped (no close frame)"), True),
        (closed_error_code(1011, "keepalive ping timeout"), True),
        (status_error(503, ENDPOINT), True),
        (DnsError("x"), True),
        (RefusedError("x"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
    ],
)
def test_error_types(error: BaseException, retry: bool) -> None:
    assert retryable(error) is retry
