"""Fixtures shared by every tier.

The suite is in three tiers, by what a test opens:

* ``tests/unit``: nothing (pure code; at most an in-process CLI runner or a subprocess that
  only imports);
* ``tests/loopback``: the real client against the local server on 127.0.0.1, ``voicechat`` as a
  subprocess, a pseudo-terminal;
* ``tests/device``: PortAudio through a headless PulseAudio, or tmux.

Each test is marked with its tier (``-m unit``, ``-m "not device"``). Here: the clean environment
every test runs in, the time unit, and the one headless PulseAudio the device tier shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.devices import TIMEUNIT
from tests.helpers.devices import headless_pulse

TIERS = ("unit", "loopback", "device")

# What would change what voicechat does if the caller's shell had it set.
_CALLER_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT",
               "NO_COLOR", "FORCE_COLOR")
# VOICECHAT_* variables that configure the test run itself, not voicechat.
_TEST_KNOBS = ("VOICECHAT_TEST_", "VOICECHAT_FUZZ_")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        tier = next((t for t in TIERS if t in parts), None)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No credentials, endpoint, colour or ``VOICECHAT_*`` setting of the caller's shell, and an
    empty config directory (no test reads the real ``~/.config/voicechat``)."""
    for name in _CALLER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("VOICECHAT_") and not name.startswith(_TEST_KNOBS):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOICECHAT_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


@pytest.fixture(scope="session")
def timeunit() -> float:
    """Multiplier for every timeout (``VOICECHAT_TEST_TIMEUNIT``, default 1)."""
    return TIMEUNIT


@pytest.fixture(scope="session")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The headless PulseAudio of the whole run (started on first use, stopped at the end):
    the client environment that points PortAudio and ``pactl`` at it. Skips when the Debian
    packages are missing."""
    yield from headless_pulse(tmp_path_factory)
