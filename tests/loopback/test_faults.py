"""Faults, each met by the real client against the real local server over loopback.

Server-side faults come from `ServerOptions` (closes mid-reply, injected frames, slow deltas,
forced handshake statuses); network and device faults are simulated in the client (a resolver
that fails, a closed port, a microphone that goes away). Every case checks what the user sees
(a clear message, the right exit status, no traceback) and that nothing already said is lost.

The close cases are written to hold once reconnects exist too: they check the message names the
close, the transcript keeps what was said, and there is no traceback; the exit status is the
close's own or 0 (a conversation that reconnected and finished).
"""

from __future__ import annotations

import io
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.canary import Outputs, assert_no_leak, canary
from tests.helpers.cli import assert_no_noise, question_wav, talk_cli, wait_closes
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import load_wav_at
from voicechat.cli import app
from voicechat.config import resolve
from voicechat.errors import AudioError, ExitStatus, VoicechatError
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import FileSink, StreamSink

HEARD = "hello from the fault tests"  # what the server's recogniser hears in every user turn


def options(**overrides) -> ServerOptions:
    """A quick server whose user transcript is known and lands before the reply starts."""
    base = {"recognizer": lambda pcm: HEARD, "transcript_timing": "before", "speed": 8.0, "seed": 11}
    return ServerOptions(**{**base, **overrides})


@dataclass
class Outcome:
    stdout: str
    stderr: str
    error: VoicechatError | None
    records: list[dict]
    server: LocalServer
    closes: list


async def converse(tmp_path: Path, opts: ServerOptions, wav: Path | None = None, audio=None, **flags) -> Outcome:
    """One in-process ``talk`` from a WAV file against a server with ``opts``."""
    chat = tmp_path / "chat.jsonl"
    async with LocalServer(opts) as srv:
        settings = resolve(
            flags={"base_url": srv.http_base_url, "input_file": wav or question_wav(tmp_path), "fast": True,
                   "transcript": chat, "silence_duration_ms": 300, **flags},
            environ={"OPENAI_API_KEY": (key := canary("key"))},
        )
        stdout, stderr = io.StringIO(), io.StringIO()
        error = None
        try:
            await talk(settings, Output(sinks=[StreamSink(stdout), FileSink(chat)], status=stderr), audio=audio)
        except VoicechatError as exc:
            error = exc
        closes = await wait_closes(srv)
    # Every fault run is a canary sweep: the key is in no output, in no encoding.
    assert_no_leak({"key": key}, Outputs({"stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
                                          "error": str(error or "")}, root=tmp_path))
    records = [json.loads(line) for line in chat.read_text().splitlines()] if chat.exists() else []
    return Outcome(stdout.getvalue(), stderr.getvalue(), error, records, srv, closes)


def roles(outcome: Outcome) -> list[str]:
    return [r["role"] for r in outcome.records]


# ---- the server closes mid-reply ---------------------------------------------------------------


@pytest.mark.parametrize("code, reason, status", [
    (1001, "Your session hit the maximum duration of 60 minutes.", ExitStatus.SESSION),
    (1011, "keepalive ping timeout; no close frame received", ExitStatus.CONNECT),
    (4000, "invalid_request_error.beta_api_shape_disabled", ExitStatus.PROTOCOL),
])
async def test_a_close_mid_reply_is_explained_and_keeps_what_was_said(
        tmp_path: Path, code: int, reason: str, status: int) -> None:
    chat = tmp_path / "chat.jsonl"
    opts = options(drop_after_deltas=3, close_code_after_deltas=(code, reason), fault_connections=(1,))
    async with LocalServer(opts) as srv:
        run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(question_wav(tmp_path)),
                             "--silence-duration-ms", "300", "--transcript", str(chat))
    assert_no_noise(run.stderr)
    assert run.status in (status, 0), run.stderr
    if run.status:
        last = run.stderr.rstrip().splitlines()
        error = next(line for line in last if line.startswith("voicechat: error: "))
        assert str(code) in error and reason in error, run.stderr
        assert last[-1].startswith("voicechat: error: ") or last[-1].startswith("  hint: "), last
    else:
        assert str(code) in run.stderr, run.stderr  # a reconnect says why it happened
    records = [json.loads(line) for line in chat.read_text().splitlines()]
    assert records[0]["role"] == "user" and records[0]["text"] == HEARD, records
    assert f"you: {HEARD}" in run.stdout.splitlines()
    # What was heard of the reply is kept, marked interrupted (or the whole reply, after a reconnect).
    assert records[1]["role"] == "assistant" and records[1]["text"], records


async def test_a_dropped_connection_no_close_frame(tmp_path: Path) -> None:
    out = await converse(tmp_path, options(drop_after_deltas=3, fault_connections=(1,)))
    if out.error is not None:
        assert out.error.status == ExitStatus.CONNECT
        assert "dropped (no close frame)" in out.error.message
    assert roles(out)[:2] == ["user", "assistant"] and out.records[0]["text"] == HEARD


# ---- frames the client cannot use ----------------------------------------------------------------

BAD_FRAMES = {
    "not JSON": "{this is not json",
    "plain text": "hello, client",
    "JSON array": "[1, 2, 3]",
    "no type": '{"event_id": "event_x", "delta": "AAAA"}',
    "binary": b"\x00\x01\x02binary",
    "audio delta without ids": '{"type": "response.output_audio.delta", "event_id": "event_y", "delta": "AAAA"}',
    "audio delta not base64": ('{"type": "response.output_audio.delta", "event_id": "event_z", "response_id": "r",'
                               ' "item_id": "i", "output_index": 0, "content_index": 0, "delta": "@@not base64@@"}'),
    "error without its object": '{"type": "error", "event_id": "event_e"}',
    "item without id": '{"type": "conversation.item.added", "event_id": "event_i", "item": {"type": "message"}}',
    "wrong field type": '{"type": "input_audio_buffer.speech_started", "event_id": "event_s", "item_id": 42}',
}
IGNORED_FRAMES = {
    "unknown type": '{"type": "response.brand_new_event", "event_id": "event_n", "anything": [1, {"a": null}]}',
    "unknown MCP event": '{"type": "mcp_list_tools.in_progress", "event_id": "event_m", "item_id": "x"}',
    "extra fields": ('{"type": "rate_limits.updated", "event_id": "event_r", "obfuscation": "xyz", "rate_limits":'
                     ' [{"name": "requests", "limit": 5, "remaining": 4, "reset_seconds": 1}]}'),
}


@pytest.mark.parametrize("after", [None, "response.output_audio.delta"], ids=["at start", "mid-reply"])
async def test_bad_frames_are_warned_about_and_the_conversation_goes_on(tmp_path: Path, after: str | None) -> None:
    frames = (*BAD_FRAMES.values(), *IGNORED_FRAMES.values())
    out = await converse(tmp_path, options(inject_frames=frames, inject_after=after))
    assert out.error is None, out.error
    assert roles(out) == ["user", "assistant"] and not out.records[1]["interrupted"], out.records
    warned = [line for line in out.stderr.splitlines() if "ignored a malformed server frame" in line]
    assert len(warned) == len(BAD_FRAMES), out.stderr
    assert all(line.startswith("voicechat: warning: ") for line in warned)
    assert any("binary frame" in line for line in warned) and any("not JSON" in line for line in warned)
    for name in ("brand_new_event", "mcp_list_tools", "obfuscation"):
        assert name not in out.stderr, out.stderr
    assert out.closes == [(1000, "")]


async def test_a_5_mb_event_is_handled(tmp_path: Path) -> None:
    """Servers send multi-MB events (an item retrieved with its audio): no size cap (§5, §7.10)."""
    audio = "A" * (5 * 1024 * 1024)
    big = json.dumps({"type": "conversation.item.retrieved", "event_id": "event_big",
                      "item": {"id": "item_big", "type": "message", "role": "user", "status": "completed",
                               "content": [{"type": "input_audio", "audio": audio, "transcript": None}]}})
    assert len(big) > 5_000_000
    out = await converse(tmp_path, options(inject_frames=(big,), inject_after="response.output_audio.delta"))
    assert out.error is None, out.error
    assert roles(out) == ["user", "assistant"] and not out.records[1]["interrupted"]
    assert "warning" not in out.stderr, out.stderr
    assert out.closes == [(1000, "")]


# ---- error events ------------------------------------------------------------------------------

# Every code of the protocol reference (§6.2), what the user sees, and whether the conversation
# goes on. "debug": a race of an honest client, not shown; "warning"/"error": shown, goes on;
# "reconnect": shown, and the conversation goes on in a new session; an exit status: the
# conversation ends with that status and the message.
ERROR_CASES = [
    ("conversation_already_has_active_response", "invalid_request_error",
     "Conversation already has an active response in progress: resp_x. Wait until the response is finished "
     "before creating a new one.", "debug"),
    ("response_cancel_not_active", "invalid_request_error", "Cancellation failed: no active response found",
     "debug"),
    (None, "invalid_request_error", "Audio content of 9250ms is already shorter than 57340ms", "debug"),
    ("input_audio_buffer_commit_empty", "invalid_request_error",
     "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only "
     "has 0.00ms of audio.", "warning"),
    ("unsupported_content_type", "invalid_request_error", "Only model output audio messages can be truncated",
     "error"),
    ("cannot_update_voice", "invalid_request_error",
     "Cannot update a conversation's voice if assistant audio is present.", "error"),
    ("missing_required_parameter", "invalid_request_error", "Missing required parameter: 'session.type'.", "error"),
    ("unknown_parameter", "invalid_request_error", "Unknown parameter: 'session.modalities'.", "error"),
    ("invalid_value", "invalid_request_error", "Invalid value: 'bogus'. Supported values are: 'a', 'b'.", "error"),
    ("invalid_event", "invalid_request_error", "The 'type' field is missing.", "error"),
    ("string_above_max_length", "invalid_request_error",
     "Invalid 'item.id': string too long. Expected a string with maximum length 32, but got 40 instead.", "error"),
    (None, "server_error", "The server had an error while processing your request. Sorry about that!", "error"),
    ("session_expired", "invalid_request_error", "Your session hit the maximum duration of 60 minutes.",
     "reconnect"),
    ("beta_api_shape_disabled", "invalid_request_error",
     "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.", ExitStatus.PROTOCOL),
]


def error_frame(code: str | None, etype: str, message: str) -> str:
    return json.dumps({"type": "error", "event_id": "event_err",
                       "error": {"type": etype, "code": code, "message": message, "param": None, "event_id": None}})


@pytest.mark.parametrize("code, etype, message, shown", ERROR_CASES, ids=[c[0] or c[1] for c in ERROR_CASES])
async def test_every_known_error_code_mid_reply(tmp_path: Path, code, etype, message, shown) -> None:
    opts = options(inject_frames=(error_frame(code, etype, message),), inject_after="response.output_audio.delta")
    out = await converse(tmp_path, opts)
    assert out.records[0]["role"] == "user" and out.records[0]["text"] == HEARD, "what was said is kept"
    if isinstance(shown, int):
        assert out.error is not None and out.error.status == shown, out.error
        assert message in out.error.message
        return
    assert out.error is None, out.error
    if shown == "reconnect":
        assert f"voicechat: warning: the server ended the session: {message}; reconnecting" in out.stderr, out.stderr
        assert out.closes == [(1000, ""), (1000, "")], "the old session and then the new one closed normally"
        return
    assert roles(out) == ["user", "assistant"] and not out.records[1]["interrupted"], out.records
    if shown == "debug":
        assert out.stderr.count("\n") == 1 and "voicechat: server ws://" in out.stderr, out.stderr  # nothing else said
    elif shown == "warning":
        assert "voicechat: warning: nothing was said" in out.stderr, out.stderr
    else:
        assert f"voicechat: error: server error{f' [{code}]' if code else ''}: {message}" in out.stderr, out.stderr
    assert out.closes == [(1000, "")]


async def test_a_benign_race_during_setup_is_not_a_rejected_session(tmp_path: Path) -> None:
    frame = error_frame("response_cancel_not_active", "invalid_request_error", "Cancellation failed")
    out = await converse(tmp_path, options(inject_frames=(frame,)))  # before session.updated
    assert out.error is None and roles(out) == ["user", "assistant"]


async def test_an_error_during_setup_ends_with_the_reason(tmp_path: Path) -> None:
    frame = error_frame("invalid_value", "invalid_request_error", "Invalid value: 'x'.")
    out = await converse(tmp_path, options(inject_frames=(frame,)))
    assert out.error is not None and out.error.status == ExitStatus.SESSION
    assert out.error.message == "the server rejected the session settings: Invalid value: 'x'."


async def test_control_characters_in_an_error_event_reach_stderr_escaped(tmp_path: Path) -> None:
    hostile = "bad \x1b[2J\x1b]0;title\x07 thing\r\x9b1m"
    frame = error_frame("unknown_parameter", "invalid_request_error", hostile)
    out = await converse(tmp_path, options(inject_frames=(frame,), inject_after="response.output_audio.delta"))
    assert out.error is None
    line = next(x for x in out.stderr.splitlines() if "server error" in x)
    assert line == r"voicechat: error: server error [unknown_parameter]: bad \x1b[2J\x1b]0;title\x07 thing\x0d\x9b1m"


# ---- a slow server -------------------------------------------------------------------------------


async def test_a_slow_server_still_completes_the_conversation(tmp_path: Path) -> None:
    """Every audio delta 150 ms late (slower than the reply plays): underruns, but the whole reply."""
    out = await converse(tmp_path, options(delta_delay_ms=150, delta_ms=(40, 80), speed=1.0))
    assert out.error is None, out.error
    assert roles(out) == ["user", "assistant"] and not out.records[1]["interrupted"]
    assert out.records[1]["audio_ms"] >= 1200


# ---- failures before the conversation ------------------------------------------------------------


def invoke(args: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["talk", *args], env=env)


def test_dns_failure_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver fails (nothing is contacted): exit 6 with the host named and a hint."""
    asked: list[str] = []

    def no_dns(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.chdir(tmp_path)
    result = invoke(["--base-url", "https://realtime.invalid/v1", "--input-file", str(question_wav(tmp_path))],
                    env={"OPENAI_API_KEY": "sk-dns", "VOICECHAT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == ExitStatus.DNS, result.output
    assert "voicechat: error: cannot resolve host 'realtime.invalid'" in result.output
    assert "hint: check --base-url and your network/DNS" in result.output
    assert "Traceback" not in result.output
    assert asked and set(asked) == {"realtime.invalid"}


def test_connection_refused_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = s.getsockname()[1]
        result = invoke(["--base-url", f"http://127.0.0.1:{port}/v1", "--input-file", str(question_wav(tmp_path))],
                        env={"OPENAI_API_KEY": "sk-refused", "VOICECHAT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == ExitStatus.REFUSED, result.output
    assert f"voicechat: error: connection refused by 127.0.0.1:{port}" in result.output
    assert "hint: is the server running?" in result.output and "Traceback" not in result.output


# ---- the audio device goes away ------------------------------------------------------------------


class UnpluggedSpeaker(FileAudio):
    """A file "device" that fails as `DeviceAudio.run` does when PortAudio ends a stream."""

    def __init__(self, *args, fail_after_played: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_after_played = fail_after_played

    async def run(self, buffer, on_mic, on_block) -> None:
        def block() -> bool:
            if self.played_frames >= self.fail_after_played:
                raise AudioError("the output audio device stopped (unplugged?)", hint="the transcript so far is kept")
            return on_block()

        await super().run(buffer, on_mic, block)


async def test_the_speaker_unplugged_mid_reply(tmp_path: Path) -> None:
    wav = question_wav(tmp_path)
    speaker = UnpluggedSpeaker(load_wav_at(wav, 24000), tmp_path / "out.wav", speed=10.0,
                               fail_after_played=24000 // 2)  # half a second into the reply
    out = await converse(tmp_path, options(), wav=wav, audio=speaker)
    assert isinstance(out.error, AudioError) and out.error.status == ExitStatus.AUDIO
    assert str(out.error) == "the output audio device stopped (unplugged?) (the transcript so far is kept)"
    assert roles(out) == ["user", "assistant"] and out.records[0]["text"] == HEARD
    assert out.records[1]["interrupted"], "the reply was cut where the speaker went away"
    assert out.closes == [(1000, "")], "the socket is still closed properly"
