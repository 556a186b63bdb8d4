"""The real client against the real local server over loopback, audio from WAV files."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import VOICECHAT, talk_cli
from tests.helpers.server import speech_like
from voicechat.app import Output, talk
from voicechat.audio.wav import load_wav_at, read_wav, write_wav
from voicechat.config import resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import FileSink, StreamSink

QUESTION = Path(__file__).resolve().parents[2] / "voicechat" / "data" / "question.wav"


def silence(seconds: float, rate: int = 24000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def settings_for(base_url: str, tmp_path: Path, audio: np.ndarray, **flags):
    wav = tmp_path / "in.wav"
    write_wav(wav, audio, 24000)
    return resolve(
        flags={"base_url": base_url, "input_file": wav, "output_file": tmp_path / "out.wav", "fast": True,
               "transcript": tmp_path / "chat.jsonl", **flags},
        environ={"OPENAI_API_KEY": "sk-test-loopback"},
    )


async def run_talk(settings) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    sinks = [StreamSink(stdout), FileSink(settings.transcript)]
    await talk(settings, Output(sinks=sinks, status=stderr))
    return stdout.getvalue()


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


async def test_a_voice_turn_end_to_end(tmp_path: Path) -> None:
    audio = np.concatenate([silence(0.3), speech_like(1.5), silence(0.2)])
    async with LocalServer(ServerOptions(speed=8.0, seed=1), host="127.0.0.1", port=0) as srv:
        settings = settings_for(srv.http_base_url, tmp_path, audio, voice="cedar", silence_duration_ms=400)
        out = await run_talk(settings)
    got = lines(out)
    assert [line.split(":")[0] for line in got] == ["you", "assistant"], out
    # The session settings reached the wire exactly.
    update = next(e for e in srv.received if e["type"] == "session.update")
    assert update["session"]["audio"]["output"]["voice"] == "cedar"
    assert update["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 400
    # The reply (the echo brain returns the user's own audio) was played into the output file.
    reply, rate = read_wav(tmp_path / "out.wav")
    assert rate == 24000 and reply.size > 24000 * 1.2
    assert np.abs(reply.astype(np.int32)).max() > 1000
    # JSONL transcript: one object per finished turn, in order.
    records = [json.loads(x) for x in (tmp_path / "chat.jsonl").read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant"]
    assert records[1]["usage"]["total_tokens"] > 0 and not records[1]["interrupted"]


async def test_barge_in_truncates_at_what_was_played(tmp_path: Path) -> None:
    # Turn 1, a short pause (the reply starts playing), then turn 2 talks over the reply.
    audio = np.concatenate([silence(0.2), speech_like(2.0), silence(0.9), speech_like(1.0), silence(0.2)])
    # No recogniser: pocketsphinx holds the GIL (~0.4 s a turn, more under load) while the echo
    # brain waits for its transcript, so on a busy machine reply 1 had not started playing when
    # turn 2 began, and there was nothing to truncate. This test is about the cut, not the words.
    opts = ServerOptions(speed=8.0, seed=2, recognizer="none")
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        # Real-time clock: at 10x a loaded machine can let the reply race past the second turn.
        settings = settings_for(srv.http_base_url, tmp_path, audio, silence_duration_ms=400, fast=False)
        out = await run_talk(settings)
    truncates = [e for e in srv.received if e["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1, [e["type"] for e in srv.received if e["type"] != "input_audio_buffer.append"]
    cut_ms = truncates[0]["audio_end_ms"]
    # The server cancelled the response by itself: the client must not send response.cancel.
    assert not [e for e in srv.received if e["type"] == "response.cancel"]
    # What the speaker got of reply 1 = everything in the output file minus reply 2, which
    # played in full (its length: the audio deltas the server sent for that item).
    played = read_wav(tmp_path / "out.wav")[0].size
    per_item: dict[str, int] = {}
    for e in srv.emitted:
        if e["type"] == "response.output_audio.delta":
            per_item[e["item_id"]] = per_item.get(e["item_id"], 0) + len(base64.b64decode(e["delta"])) // 2
    assert truncates[0]["item_id"] in per_item and len(per_item) == 2
    reply2 = next(n for item, n in per_item.items() if item != truncates[0]["item_id"])
    heard_ms_of_reply1 = (played - reply2) / 24
    assert 0 < cut_ms < 2000
    assert abs(heard_ms_of_reply1 - cut_ms) <= 20, (heard_ms_of_reply1, cut_ms)  # one block
    assert "[interrupted" in out  # "[interrupted]", or "[interrupted before any words]"
    truncated = [e for e in srv.emitted if e["type"] == "conversation.item.truncated"]
    assert truncated and truncated[0]["audio_end_ms"] == cut_ms


async def test_late_transcripts_and_two_items_per_response_keep_order(tmp_path: Path) -> None:
    audio = np.concatenate([silence(0.2), speech_like(1.2), silence(0.2)])
    opts = ServerOptions(speed=8.0, seed=3, items_per_response=2, transcript_timing="after")
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        settings = settings_for(srv.http_base_url, tmp_path, audio, silence_duration_ms=400)
        out = await run_talk(settings)
    roles = [line.split(":")[0] for line in lines(out)]
    assert roles[0] == "you" and roles[1:] == ["assistant", "assistant"], out


async def test_unknown_and_malformed_frames_do_not_stop_the_conversation(tmp_path: Path) -> None:
    audio = np.concatenate([silence(0.2), speech_like(1.0), silence(0.2)])
    frames = ('{"type":"response.brand_new_event","event_id":"event_x"}', "not json at all", b"\x00\x01")
    async with LocalServer(ServerOptions(speed=8.0, inject_frames=frames), host="127.0.0.1", port=0) as srv:
        settings = settings_for(srv.http_base_url, tmp_path, audio, silence_duration_ms=400)
        out = await run_talk(settings)
    assert [line.split(":")[0] for line in lines(out)] == ["you", "assistant"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    full_env.update(env or {})
    return subprocess.run([*VOICECHAT, *args], capture_output=True, text=True, timeout=timeout, env=full_env,
                          stdin=subprocess.DEVNULL)


def test_cli_talk_local_backend_prints_both_sides_and_writes_a_reply(tmp_path: Path) -> None:
    reply = tmp_path / "reply.wav"
    proc = run_cli("talk", "--backend", "local", "--input-file", str(QUESTION), "--output-file", str(reply),
                   "--fast", "--transcript", str(tmp_path / "chat.md"))
    assert proc.returncode == 0, proc.stderr
    roles = {line.split(":")[0] for line in lines(proc.stdout)}
    assert roles == {"you", "assistant"}, proc.stdout
    samples, rate = read_wav(reply)
    assert rate == 24000 and np.abs(samples.astype(np.int32)).max() > 1000
    assert (tmp_path / "chat.md").read_text().startswith("# Conversation")
    question = load_wav_at(QUESTION, 24000)
    assert samples.size >= question.size * 0.5  # the echo brain returned the spoken turn(s)


@pytest.mark.parametrize(
    "args, env, status, message",
    [
        (["talk", "--input-file", str(QUESTION)], {}, 8, "no API key"),
        (["talk", "--voice", "robot", "--backend", "local", "--input-file", str(QUESTION)], {}, 2, "--voice"),
        (["talk", "--vad-threshold", "1.5", "--backend", "local", "--input-file", str(QUESTION)], {}, 2, "between 0 and 1"),
        (["talk", "--base-url", "http://example.com/v1", "--input-file", str(QUESTION)],
         {"OPENAI_API_KEY": "sk-x"}, 2, "unencrypted"),
        (["talk", "--backend", "local", "--input-file", "/nonexistent.wav"], {}, 2, "no such file"),
    ],
)
def test_cli_bad_input_is_one_line_and_its_own_status(args, env, status, message) -> None:
    proc = run_cli(*args, env=env)
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("code, status, message, hint", [
    (401, 8, "rejected the API key (HTTP 401)", "check OPENAI_API_KEY (or the key in .env)"),
    (403, 8, "no access to the Realtime API at 127.0.0.1 (HTTP 403)", "check the key's project, organisation"),
    (404, 9, "no realtime endpoint at 127.0.0.1:", "check --base-url and --model"),
    (500, 5, "answered HTTP 500 to the WebSocket handshake", "a problem on the server's side: try again"),
])
async def test_handshake_statuses_map_to_errors(tmp_path: Path, code: int, status: int, message: str,
                                                hint: str | None) -> None:
    async with LocalServer(ServerOptions(handshake_status=code), host="127.0.0.1", port=0) as srv:
        wav = tmp_path / "q.wav"
        write_wav(wav, speech_like(0.5), 24000)
        run = await talk_cli(srv, tmp_path, "--input-file", str(wav), key="sk-test")
    assert run.status == status and message in run.stderr and "Traceback" not in run.stderr, run
    error = [line for line in run.stderr.splitlines() if line.startswith("voicechat: error: ")]
    assert len(error) == 1 and message in error[0], run.stderr
    assert (f"  hint: {hint}" in run.stderr) if hint else ("hint:" not in run.stderr), run.stderr


async def test_retired_model_is_named(tmp_path: Path) -> None:
    async with LocalServer(ServerOptions(), host="127.0.0.1", port=0) as srv:
        wav = tmp_path / "q.wav"
        write_wav(wav, speech_like(0.5), 24000)
        run = await talk_cli(srv, tmp_path, "--model", "gpt-4o-realtime-preview", "--input-file", str(wav),
                             key="sk-test")
    assert run.status == 9 and "gpt-4o-realtime-preview" in run.stderr, run.stderr


def test_refused_connection_exit_status(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        proc = run_cli("talk", "--base-url", f"http://127.0.0.1:{port}/v1", "--input-file", str(QUESTION),
                       env={"OPENAI_API_KEY": "sk-x"})
    assert proc.returncode == 7 and "refused" in proc.stderr
