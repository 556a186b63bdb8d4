"""Each talk flag, through the real CLI and client, reaches the real local server's session.

The local server runs on its own event loop in a thread; ``voicechat talk`` runs in this thread
(through Typer's test runner) with a short silent WAV, so nothing but the session setup and a
few appends go over the loopback. What the server received is then read back: the
``session.update`` the client sent, and the ``session.updated`` the server accepted it with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers.devices import ServerThread
from voicechat.app import assemble as app_module  # where talk looks up connect
from voicechat.audio.wav import write_wav
from voicechat.cli import app
from voicechat.server import LocalServer, ServerOptions, handshake

KEY = "sk-flags-wire-canary-0000"


@contextmanager
def serving(**opts: Any) -> Iterator[LocalServer]:
    """A ``LocalServer`` on its own loop in a daemon thread (fast, seeded, no recogniser)."""
    with ServerThread(ServerOptions(**{"speed": 50.0, "seed": 1, "recognizer": "none", **opts})) as st:
        yield st.server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with serving() as srv:
        yield srv


@pytest.fixture
def quiet_wav(tmp_path: Path) -> Path:
    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros(24000 * 4 // 10, dtype=np.int16), 24000)
    return wav


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config dir and a working directory without .env: only what a test sets counts."""
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT",
                "VOICECHAT_PROFILE", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VOICECHAT_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path


def run_talk(srv: LocalServer, wav: Path, *args: str, env: dict[str, str] | None = None,
             base_url: str | None = None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``voicechat talk`` against ``srv``; the result, the session.update and the session.updated."""
    seen = len(srv.received), len(srv.emitted)
    result = CliRunner().invoke(
        app, ["talk", "--base-url", base_url or srv.http_base_url, "--input-file", str(wav), "--fast", "-q", *args],
        env={"OPENAI_API_KEY": KEY, **(env or {})},
    )
    assert result.exit_code == 0, result.output
    received = list(srv.received)[seen[0]:]
    emitted = list(srv.emitted)[seen[1]:]
    update = next(e for e in received if e["type"] == "session.update")["session"]
    errors = [e for e in emitted if e["type"] == "error"]
    assert not errors, errors  # the server took every value
    updated = next(e for e in emitted if e["type"] == "session.updated")["session"]
    return result, update, updated


def at(session: dict[str, Any], path: str) -> Any:
    value: Any = session
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# (flags, where in the session, what the client sent, what the server now has)
CASES: list[tuple[list[str], str, Any, Any]] = [
    (["--speed", "1.3"], "audio.output.speed", 1.3, 1.3),
    (["--max-output-tokens", "512"], "max_output_tokens", 512, 512),
    (["--max-output-tokens", "inf"], "max_output_tokens", "inf", "inf"),
    (["--vad", "semantic", "--eagerness", "high"], "audio.input.turn_detection.eagerness", "high", "high"),
    (["--idle-timeout-ms", "6000"], "audio.input.turn_detection.idle_timeout_ms", 6000, 6000),
    (["--no-interrupt"], "audio.input.turn_detection.interrupt_response", False, False),
    (["--no-auto-response"], "audio.input.turn_detection.create_response", False, False),
    (["--transcribe-model", "gpt-4o-transcribe"], "audio.input.transcription.model", "gpt-4o-transcribe",
     "gpt-4o-transcribe"),
    (["--language", "de"], "audio.input.transcription.language", "de", "de"),
    (["--noise-reduction", "near"], "audio.input.noise_reduction.type", "near_field", "near_field"),
    (["--noise-reduction", "far"], "audio.input.noise_reduction.type", "far_field", "far_field"),
    (["--noise-reduction", "off"], "audio.input.noise_reduction", None, None),
    (["--no-transcribe"], "audio.input.transcription", None, None),
    (["--instructions", "Be brief."], "instructions", "Be brief.", "Be brief."),
    (["--reasoning", "xhigh"], "reasoning.effort", "xhigh", "xhigh"),
    (["--reasoning", "minimal", "--model", "gpt-realtime-2"], "reasoning.effort", "minimal", "minimal"),
]


@pytest.mark.parametrize("flags, path, sent, effective", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_each_flag_reaches_the_session(server: LocalServer, quiet_wav: Path, home: Path, flags: list[str],
                                       path: str, sent: Any, effective: Any) -> None:
    _, update, updated = run_talk(server, quiet_wav, *flags)
    assert at(update, path) == sent
    assert at(updated, path) == effective


def test_instructions_file(server: LocalServer, quiet_wav: Path, home: Path) -> None:
    prompt = home / "pirate.txt"
    prompt.write_text("Talk like a pirate.\nKeep it short.\n", encoding="utf-8")
    _, update, updated = run_talk(server, quiet_wav, "--instructions-file", str(prompt))
    assert update["instructions"] == updated["instructions"] == "Talk like a pirate.\nKeep it short."


def test_config_file_profile_and_environment_reach_the_session(server: LocalServer, quiet_wav: Path,
                                                              home: Path) -> None:
    cfg = home / "elsewhere.toml"
    cfg.write_text('voice = "cedar"\nspeed = 0.9\n[profile.fast]\nspeed = 1.4\nnoise_reduction = "far"\n'
                   'instructions_file = "p.txt"\n', encoding="utf-8")
    (home / "p.txt").write_text("From the profile's file.", encoding="utf-8")
    _, update, _ = run_talk(server, quiet_wav, "--config", str(cfg))
    assert (at(update, "audio.output.voice"), at(update, "audio.output.speed")) == ("cedar", 0.9)
    _, update, _ = run_talk(server, quiet_wav, "--config", str(cfg), "--profile", "fast")
    assert at(update, "audio.output.speed") == 1.4 and at(update, "audio.input.noise_reduction.type") == "far_field"
    assert update["instructions"] == "From the profile's file."
    # The environment beats the profile; a flag beats the environment.
    _, update, _ = run_talk(server, quiet_wav, "--config", str(cfg), "--profile", "fast",
                            env={"VOICECHAT_SPEED": "1.1", "VOICECHAT_VOICE": "sage"})
    assert (at(update, "audio.output.voice"), at(update, "audio.output.speed")) == ("sage", 1.1)
    _, update, _ = run_talk(server, quiet_wav, "--config", str(cfg), "--speed", "0.5",
                            env={"VOICECHAT_SPEED": "1.1", "VOICECHAT_PROFILE": "fast"})
    assert at(update, "audio.output.speed") == 0.5


def test_default_config_dir_is_read(server: LocalServer, quiet_wav: Path, home: Path) -> None:
    (home / "cfg").mkdir()
    (home / "cfg" / "config.toml").write_text('default_profile = "p"\n[profile.p]\neagerness = "low"\n'
                                              'vad = "semantic"\n', encoding="utf-8")
    _, update, _ = run_talk(server, quiet_wav)
    assert at(update, "audio.input.turn_detection") == {"type": "semantic_vad", "eagerness": "low",
                                                        "create_response": True, "interrupt_response": True}


# ---- Azure over loopback ------------------------------------------------------------------


@pytest.fixture
def handshakes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """Every upgrade request the local server decides on: its path and (lowercase) headers."""
    seen: list[tuple[str, dict[str, str]]] = []
    real = handshake.check

    def spy(path: str, headers: dict[str, str], opts: ServerOptions) -> Any:
        seen.append((path, dict(headers)))
        return real(path, headers, opts)

    monkeypatch.setattr(handshake, "check", spy)
    return seen


def test_azure_path_header_key_and_deployment(quiet_wav: Path, home: Path, handshakes: list) -> None:
    with serving(api_key="azure-key-canary-1234", extra_models=("my-deployment",)) as srv:
        root = f"http://127.0.0.1:{srv.port}"
        # --azure with AZURE_OPENAI_ENDPOINT as the base URL and AZURE_OPENAI_API_KEY as the key.
        result = CliRunner().invoke(
            app, ["talk", "--azure", "--model", "my-deployment", "--input-file", str(quiet_wav), "--fast", "-q"],
            env={"OPENAI_API_KEY": "sk-wrong-openai-key", "AZURE_OPENAI_API_KEY": "azure-key-canary-1234",
                 "AZURE_OPENAI_ENDPOINT": root + "/"},
        )
        assert result.exit_code == 0, result.output
        # The resource endpoint given with /openai/v1 and the key falling back to OPENAI_API_KEY.
        _, update, _ = run_talk(srv, quiet_wav, "--azure", "--model", "my-deployment",
                                env={"OPENAI_API_KEY": "azure-key-canary-1234"}, base_url=root + "/openai/v1")
    assert update["type"] == "realtime"
    assert [p for p, _ in handshakes] == ["/openai/v1/realtime?model=my-deployment"] * 2
    for _, headers in handshakes:
        assert headers["api-key"] == "azure-key-canary-1234" and "authorization" not in headers


def test_openai_compatible_base_url_uses_bearer(server: LocalServer, quiet_wav: Path, home: Path,
                                               handshakes: list) -> None:
    run_talk(server, quiet_wav)
    path, headers = handshakes[-1]
    assert path == "/v1/realtime?model=gpt-realtime-2.1"
    assert headers["authorization"] == f"Bearer {KEY}" and "api-key" not in headers


# ---- invalid values: exit 2, the flag and its range named, no connection -------------------

INVALID = [
    (["--speed", "2"], "--speed", "between 0.25 and 1.5"),
    (["--speed", "0.1"], "--speed", "between 0.25 and 1.5"),
    (["--max-output-tokens", "0"], "--max-output-tokens", 'between 1 and 32768 or "inf"'),
    (["--max-output-tokens", "many"], "--max-output-tokens", 'a whole number or "inf"'),
    (["--idle-timeout-ms", "100"], "--idle-timeout-ms", "between 5000 and 30000"),
    (["--vad", "semantic", "--eagerness", "eager"], "--eagerness", "low, medium, high, auto"),
    (["--eagerness", "low"], "--eagerness", "applies to --vad semantic only"),
    (["--vad", "semantic", "--idle-timeout-ms", "6000"], "--idle-timeout-ms", "applies to --vad server only"),
    (["--noise-reduction", "studio"], "--noise-reduction", "near, far, off"),
    (["--language", "english"], "--language", "two-letter ISO-639-1"),
    (["--vad", "none", "--no-interrupt"], "--no-interrupt", "no turn detection"),
    (["--vad", "none", "--no-auto-response"], "--no-auto-response", "no turn detection"),
    (["--no-transcribe", "--language", "de"], "--language", "transcription is off"),
    (["--no-transcribe", "--transcribe-model", "whisper-1"], "--transcribe-model", "transcription is off"),
    (["--instructions", "x", "--instructions-file", "p.txt"], "--instructions-file", "exclude each other"),
    (["--instructions-file", "missing.txt"], "--instructions-file", "no such file"),
    (["--config", "missing.toml"], "--config", "no such file"),
    (["--profile", "nope"], "--profile", "no profile 'nope'"),
    (["--azure"], "--azure", "Azure resource endpoint"),
    (["--speed", "fast"], "--speed", "valid number"),  # Typer's own check
    (["--idle-timeout-ms", "5.5"], "--idle-timeout-ms", "valid integer"),
]


@pytest.mark.parametrize("flags, name, allowed", INVALID, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_invalid_flag_values_exit_2_before_connecting(quiet_wav: Path, home: Path, monkeypatch: pytest.MonkeyPatch,
                                                      flags: list[str], name: str, allowed: str) -> None:
    async def no_connect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(app_module, "connect", no_connect)
    result = CliRunner().invoke(app, ["talk", "--input-file", str(quiet_wav), *flags],
                                env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 2, result.output
    assert name in result.output and allowed in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "env, config_text, message",
    [
        ({"VOICECHAT_SPEED": "9"}, None, "VOICECHAT_SPEED in the environment must be between 0.25 and 1.5"),
        ({"VOICECHAT_NOISE_REDUCTION": "loud"}, None, "VOICECHAT_NOISE_REDUCTION in the environment must be one of"),
        ({}, "speed = 9\n", "speed in {cfg} must be between 0.25 and 1.5"),
        ({}, 'default_profile = "p"\n[profile.p]\nlanguage = "German"\n', "language in [profile.p] of {cfg} must be a two-letter"),
        ({}, 'default_profile = "q"\n[profile.p]\n', "default_profile in {cfg}: no profile 'q'"),
        ({}, "speed = \n", "{cfg}: not valid TOML"),
    ],
)
def test_invalid_config_and_environment_values_exit_3_naming_key_and_source(
    quiet_wav: Path, home: Path, monkeypatch: pytest.MonkeyPatch, env: dict, config_text: str | None, message: str
) -> None:
    monkeypatch.setattr(app_module, "connect", None)  # calling it would fail the test
    cfg = home / "cfg" / "config.toml"
    if config_text is not None:
        cfg.parent.mkdir()
        cfg.write_text(config_text, encoding="utf-8")
    result = CliRunner().invoke(app, ["talk", "--input-file", str(quiet_wav)], env={"OPENAI_API_KEY": KEY, **env})
    assert result.exit_code == 3, result.output
    assert message.format(cfg=cfg) in result.output, result.output
