"""The API key stays secret, plain ws:// never leaves loopback, and TLS verification stays on.

The canary tests run whole conversations with a unique fake key (text, voice, a tool call, a
picture, every output file, --debug logging, a 401) and then look for it, and its base64
forms, in stdout, stderr and every file written.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers.cli import RATE, assert_no_noise, question_wav, talk_cli
from tests.helpers.server import speech_like
from voicechat import keys, transport
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.cli import app
from voicechat.config import resolve
from voicechat.errors import ExitStatus
from voicechat.eventlog import ELIDED
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import FileSink, StreamSink
from voicechat.urls import Endpoint, realtime_url

SOURCE = Path(__file__).resolve().parents[2] / "voicechat"


def canary() -> str:
    return f"sk-canary-{uuid.uuid4().hex}"


def forms(secret: str) -> list[bytes]:
    """The secret as text, and as base64 at each of the three byte alignments."""
    found = [secret.encode()]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret.encode())
        found.append(encoded[4:-4])  # the part that does not depend on the neighbours
        found.append(base64.urlsafe_b64encode(b"\0" * shift + secret.encode())[4:-4])
    return found


def assert_nowhere(secret: str, *texts: str | bytes, root: Path | None = None) -> int:
    """The secret in none of ``texts`` nor any file under ``root``; returns how many files were read."""
    blobs = [t.encode() if isinstance(t, str) else t for t in texts]
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root is not None else []
    for path in files:
        blobs.append(path.read_bytes())
    for blob in blobs:
        for form in forms(secret):
            assert form not in blob, f"the key leaked ({form!r}) into {blob[:200]!r}"
    return len(files)


# ---- the canary ----------------------------------------------------------------------------------


async def test_canary_in_process_text_voice_tool_picture_and_every_file(tmp_path: Path) -> None:
    key = canary()
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    mic = np.concatenate([np.zeros(RATE // 2, np.int16), speech_like(1.0), np.zeros(RATE * 12, np.int16)])

    async def script() -> AsyncIterator[keys.Action]:
        yield keys.Submit("what is the current time")  # the echo brain calls get_current_time
        await asyncio.sleep(1.0)
        yield keys.Command("image", str(png))
        await asyncio.sleep(0.5)
        yield keys.Command("cost", "")
        yield keys.Command("save", str(tmp_path / "saved.md"))

    debug = io.StringIO()
    handler = logging.StreamHandler(debug)  # what --debug writes to stderr
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with LocalServer(ServerOptions(speed=20.0, seed=8, recognizer="none")) as srv:
            settings = resolve(
                flags={"base_url": srv.http_base_url, "input_file": question_wav(tmp_path), "silence_duration_ms": 300,
                       "transcript": tmp_path / "chat.jsonl", "record": tmp_path / "both.wav",
                       "log_events": tmp_path / "events.jsonl", "output_file": tmp_path / "reply.wav", "debug": True},
                environ={"OPENAI_API_KEY": key})
            stdout, stderr = io.StringIO(), io.StringIO()
            sinks = [StreamSink(stdout), FileSink(tmp_path / "chat.jsonl"), FileSink(tmp_path / "chat.md")]
            await asyncio.wait_for(talk(settings, Output(sinks=sinks, status=stderr),
                                        audio=FileAudio(mic, tmp_path / "reply.wav", speed=4.0), actions=script()), 60)
            sent = [e["type"] for e in srv.received]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    # The conversation really had all of it.
    assert "function_call_output" in str(srv.received) and "input_image" in str(srv.received)
    assert "input_audio_buffer.append" in sent and stdout.getvalue().count("assistant: ") >= 3
    log = debug.getvalue()
    assert f"> Authorization: {ELIDED}" in log, "websockets logged the handshake (redacted)"
    written = assert_nowhere(key, stdout.getvalue(), stderr.getvalue(), log, root=tmp_path)
    assert written >= 7  # transcript x2, saved.md, both.wav, reply.wav, events.jsonl, the WAV input, picture…
    assert key.encode() not in (tmp_path / "events.jsonl").read_bytes()


async def test_canary_through_the_cli_with_debug(tmp_path: Path) -> None:
    key = canary()
    async with LocalServer(ServerOptions(speed=8.0, seed=9, recognizer="none")) as srv:
        run = await talk_cli(srv, tmp_path, "--debug", "--fast", "--input-file", str(question_wav(tmp_path)),
                             "--silence-duration-ms", "300", "--transcript", "chat.md", "--record", "both.wav",
                             "--log-events", "events.jsonl", "--output-file", "reply.wav", key=key)
        got = srv.received
    assert run.status == 0, run.stderr[-2000:]
    assert [line.split(":")[0] for line in run.stdout.splitlines()] == ["you", "assistant"]
    assert "DEBUG:websockets.client:> Authorization: <elided>" in run.stderr
    assert any(e["type"] == "input_audio_buffer.append" for e in got)
    assert assert_nowhere(key, run.stdout, run.stderr, root=tmp_path) >= 5


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
async def test_canary_when_the_key_is_refused(tmp_path: Path, debug: bool) -> None:
    key = canary()
    async with LocalServer(ServerOptions(api_key="sk-the-right-key")) as srv:
        run = await talk_cli(srv, tmp_path, *(["--debug"] if debug else []), "--input-file",
                             str(question_wav(tmp_path)), "--transcript", "chat.jsonl", "--log-events", "events.jsonl",
                             key=key)
    assert run.status == ExitStatus.AUTH, run.stderr
    assert "rejected the API key (HTTP 401)" in run.stderr
    if not debug:
        assert_no_noise(run.stderr)
    events = (tmp_path / "events.jsonl").read_text()
    assert '"dir": "failed"' in events and "HTTP 401" in events
    assert_nowhere(key, run.stdout, run.stderr, root=tmp_path)


# ---- plain ws:// only to loopback ----------------------------------------------------------------


@pytest.fixture
def nothing_contacted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test on any connection attempt or name lookup."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args))
        raise AssertionError(f"contacted the network: {args!r}")

    monkeypatch.setattr(transport, "ws_connect", refuse)
    monkeypatch.setattr("socket.getaddrinfo", refuse)
    monkeypatch.setattr("socket.create_connection", refuse)
    return attempts


@pytest.mark.parametrize("base", ["http://example.com/v1", "ws://10.0.0.5:8765/v1", "http://192.168.1.2/v1",
                                  "ws://[2001:db8::1]/v1", "http://localhost.example.com/v1"])
@pytest.mark.parametrize("where", ["flag", "environment"])
def test_plain_ws_to_a_remote_host_is_refused_before_any_contact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nothing_contacted: list[str], base: str, where: str) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"OPENAI_API_KEY": "sk-plain", "VOICECHAT_CONFIG_DIR": str(tmp_path)}
    args = ["talk", "--input-file", str(question_wav(tmp_path))]
    if where == "flag":
        args += ["--base-url", base]
    else:
        env["OPENAI_BASE_URL"] = base
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert re.search(r"voicechat: error: refusing plain (http|ws):// to \S+: the API key would travel unencrypted",
                     result.output), result.output
    assert "Traceback" not in result.output
    assert nothing_contacted == []


# ---- TLS verification ----------------------------------------------------------------------------


def test_no_code_turns_certificate_checks_off() -> None:
    patterns = re.compile(r"CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context|verify_mode|"
                          r"ssl\s*=\s*False|PYTHONHTTPSVERIFY")
    offenders = [f"{p.relative_to(SOURCE)}:{n}" for p in SOURCE.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if patterns.search(line)]
    assert offenders == []


async def test_wss_connects_with_certificate_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    async def fake_connect(url, **kwargs):
        seen.update(kwargs, url=url)
        raise ConnectionRefusedError  # stop here: nothing is contacted

    monkeypatch.setattr(transport, "ws_connect", fake_connect)
    url = realtime_url("https://api.openai.com/v1", "gpt-realtime")
    with pytest.raises(transport.RefusedError):
        await transport.connect(Endpoint(url, api_key="sk-x"))
    assert seen["url"].startswith("wss://")
    context = seen.get("ssl")
    # None or True: websockets builds ssl.create_default_context() (CERT_REQUIRED, hostname checked).
    if isinstance(context, ssl.SSLContext):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    else:
        assert context in (None, True), context
    default = ssl.create_default_context()
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
