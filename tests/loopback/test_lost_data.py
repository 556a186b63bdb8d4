"""Issue 12, lost data: nothing said is lost, and the exit status says what happened.

* SIGHUP (the terminal closed) ends talk as SIGTERM does, in every phase: 129, the transcript
  written, the socket closed with 1000.
* A deliberate close by the server (an application code 3000-4999 other than 4000, 1008) is
  "the server ended the session" (11), not "could not connect" (5).
* A ``--fast`` file run whose reconnects all fail exits with the connection's status, not 0.
* ``--record``/``--output-file`` WAV headers are true as they go: after ``kill -9`` the header
  says how much audio the file holds (within the second between two updates).
"""

from __future__ import annotations

import asyncio
import signal
import struct
from pathlib import Path

import pytest

from tests.helpers.cli import clean_env, question_wav, run_voicechat, wait_closes
from tests.helpers.hostile import HostileServer, Peer, canned_turn
from tests.loopback.test_signals import (
    HEARD,
    REPLY,
    Talk,
    assert_interrupted,
    long_reply_server,
    mic,
    records,
    talk_until_speaking,
)
from voicechat.app import Output, Reliability, ending, talk
from voicechat.audio.wav import read_wav
from voicechat.backoff import Backoff
from voicechat.config import resolve
from voicechat.errors import ConnectError, ExitStatus, VoicechatError
from voicechat.server import LocalServer, ScriptedBrain, ScriptedReply, ServerOptions
from voicechat.transcript import FileSink

# ---- SIGHUP: as SIGTERM, with its own status --------------------------------------------------


async def test_sighup_while_the_assistant_speaks(tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    async with long_reply_server() as srv:
        talk_ = await talk_until_speaking(srv, tmp_path, chat)
        await asyncio.sleep(0.5)
        talk_.kill(signal.SIGHUP)
        status, out, err = await talk_.finish()
        closes = await wait_closes(srv)
    assert_interrupted(status, err, signal.SIGHUP, ExitStatus.SIGHUP)
    assert closes == [(1000, "")], "the socket was closed with 1000"
    said = records(chat)
    assert [r["role"] for r in said] == ["user", "assistant"], said
    assert said[0]["text"] == HEARD
    assert said[1]["interrupted"] and REPLY.startswith(said[1]["text"]), said
    assert out.splitlines()[0] == f"you: {HEARD}"


async def test_sighup_before_the_session_is_set_up(tmp_path: Path) -> None:
    async def silent(peer: Peer) -> None:
        await peer.drain()

    async with HostileServer(silent) as srv:
        talk_ = await Talk.start(tmp_path, "--base-url", srv.http_base_url, "--input-file", str(mic(tmp_path)),
                                 "--transcript", str(tmp_path / "chat.jsonl"))
        await talk_.wait_line("voicechat: server ")
        await asyncio.sleep(0.2)
        talk_.kill(signal.SIGHUP)
        status, out, err = await talk_.finish()
    assert_interrupted(status, err, signal.SIGHUP, ExitStatus.SIGHUP)
    assert out == ""


# ---- a deliberate close by the server: exit 11 -------------------------------------------------


@pytest.mark.parametrize("code", [4001, 4321, 4999, 3000, 1008])
async def test_a_deliberate_close_after_a_turn_is_the_session_ended(tmp_path: Path, code: int) -> None:
    """One whole turn, then the server closes with ``code``: the turn is written, and talk ends
    with 11 ("the server ended the session"), not retried and not 5."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        for frame in canned_turn("hello there", ("hi ", "back")):
            await peer.send(frame)
        await asyncio.sleep(0.5)
        await peer.ws.close(code, "go away")

    chat = tmp_path / "chat.jsonl"
    async with HostileServer(script) as srv:
        env = clean_env(tmp_path, OPENAI_API_KEY="sk-close-codes")
        run = await run_voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file",
                                  str(question_wav(tmp_path, tail_s=20)), "--transcript", str(chat), env=env)
    assert run.status == ExitStatus.SESSION, run.stderr
    assert srv.connections == 1, "a deliberate close is not retried"
    last = run.stderr.rstrip().splitlines()[-1]
    assert last.startswith("voicechat: error: ") and str(code) in last, run.stderr
    assert [r["role"] for r in records(chat)] == ["user", "assistant"]


# ---- --fast: every reconnect failed is not a success ---------------------------------------------


@pytest.mark.parametrize("drop_after_s", [0.0, 0.3, 1.0])
async def test_a_fast_file_run_whose_reconnects_fail_exits_with_their_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drop_after_s: float) -> None:
    """The server goes away (and refuses new connections) while a ``--fast`` file run is under
    way. Its audio clock spends the tail's bound in a fraction of the reconnect backoff: that
    used to end the run "normally" (0) though every try had failed."""
    monkeypatch.setattr(ending, "MAX_TAIL_MS", 2_000)  # 0.2 s at 10x: well inside the backoff below
    brain = ScriptedBrain([ScriptedReply("fine", audio_ms=300)])
    opts = ServerOptions(speed=4.0, seed=5, recognizer=lambda pcm: "hello", brain=brain)
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        settings = resolve(
            flags={"base_url": srv.http_base_url, "input_file": question_wav(tmp_path, tail_s=30), "fast": True,
                   "transcript": tmp_path / "chat.jsonl", "silence_duration_ms": 300},
            environ={"OPENAI_API_KEY": "sk-test-fast"})

        async def stop_the_server() -> None:
            while not any(e["type"] == "session.updated" for e in srv.emitted):
                await asyncio.sleep(0.01)
            await asyncio.sleep(drop_after_s)
            await srv.close()

        stopper = asyncio.create_task(stop_the_server())
        error: VoicechatError | None = None
        try:
            await asyncio.wait_for(talk(settings, Output(sinks=[FileSink(settings.transcript)]),
                                        reliability=Reliability(backoff=Backoff(base=0.3, cap=0.5, tries=3))), 60)
        except VoicechatError as exc:
            error = exc
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
    assert isinstance(error, ConnectError), error
    assert error.status in (ExitStatus.CONNECT, ExitStatus.REFUSED)
    assert "could not reconnect" in error.message


# ---- WAV headers stay true: kill -9 ---------------------------------------------------------------


def header_sizes(path: Path) -> tuple[int, int, int]:
    """(RIFF size, data size, bytes of audio the file holds after the 44-byte header)."""
    raw = path.read_bytes()
    riff = struct.unpack_from("<I", raw, 4)[0]
    data = struct.unpack_from("<I", raw, 40)[0]
    return riff, data, len(raw) - 44


async def test_record_header_is_true_after_kill_9(tmp_path: Path) -> None:
    """``--record`` (24 kHz stereo, 96,000 bytes a second) killed outright mid-reply: the header
    counts all but at most the last second (plus what was buffered), never "no audio"."""
    rec = tmp_path / "rec.wav"
    async with long_reply_server() as srv:
        talk_ = await Talk.start(tmp_path, "--base-url", srv.http_base_url, "--input-file", str(mic(tmp_path)),
                                 "--silence-duration-ms", "300", "--record", str(rec))
        await talk_.wait_line("voicechat: assistant speaking")
        await asyncio.sleep(2.5)
        talk_.kill(signal.SIGKILL)
        await talk_.finish()
    riff, data, held = header_sizes(rec)
    second = 24_000 * 4
    assert held >= 2 * second, held
    assert held - second - 16_384 <= data <= held and riff == data + 36, (riff, data, held)
    samples, rate = read_wav(rec)
    assert rate == 24_000 and len(samples) == data // 4
