"""``--record``: the microphone and the assistant in one two-channel WAV, on one timeline."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.server import speech_like
from voicechat.app import Output, talk
from voicechat.audio.wav import write_wav
from voicechat.config import resolve
from voicechat.errors import UsageError
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink

RATE = 24_000


def active_span(x: np.ndarray, block: int = 480) -> tuple[float, float]:
    """First and last 20 ms block above -50 dBFS, in seconds."""
    n = x.size // block
    rms = np.sqrt((x[: n * block].astype(np.float64).reshape(n, block) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 32768 * 10 ** (-50 / 20))
    return loud[0] * block / RATE, (loud[-1] + 1) * block / RATE


async def test_record_keeps_both_sides_time_aligned(tmp_path: Path) -> None:
    said = np.concatenate([np.zeros(RATE // 2, np.int16), speech_like(1.5), np.zeros(RATE // 5, np.int16)])
    wav = tmp_path / "in.wav"
    write_wav(wav, said, RATE)
    # No recogniser: the echo brain would wait (up to 400 ms of wall time) for pocketsphinx,
    # which holds the GIL while it decodes and so stalls this process's loop; the file device's
    # clock then catches up and the stall lands in the recording as reply latency (1.5-2.1 s
    # under load instead of 0.72 s). This test is about the timeline, not the transcript.
    opts = ServerOptions(speed=8.0, seed=5, recognizer="none")
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        settings = resolve(flags={"base_url": srv.http_base_url, "input_file": wav, "transcribe_model": "",
                                  "record": tmp_path / "chat.wav", "silence_duration_ms": 400},
                           environ={"OPENAI_API_KEY": "sk-test-loopback"})
        await talk(settings, Output(sinks=[StreamSink(io.StringIO())], status=io.StringIO()))
    audio, rate = stereo(tmp_path / "chat.wav")
    assert rate == RATE and audio.ndim == 2 and audio.shape[1] == 2
    mic, assistant = audio[:, 0], audio[:, 1]
    # The left channel is the microphone exactly, from the first block on.
    assert np.array_equal(mic[: said.size], said)
    user_start, user_end = active_span(mic)
    reply_start, reply_end = active_span(assistant)
    assert abs(user_start - 0.5) < 0.03 and abs(user_end - 2.0) < 0.03
    # The echo brain replies with the user's audio once the server's 400 ms of silence has passed.
    assert user_end + 0.35 < reply_start < user_end + 1.5
    assert abs((reply_end - reply_start) - (user_end - user_start)) < 0.1


def stereo(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        return data, w.getframerate()


def test_record_must_be_a_wav_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="WAV"):
        resolve(flags={"record": tmp_path / "chat.mp3"}, environ={})


async def test_record_under_fast_leaves_out_the_wall_clock_waits(tmp_path: Path) -> None:
    """``talk --fast --record`` (the CLI): the waits for the server ran on the wall clock while the
    file's clock ran 10x, so each 0.1 s of latency became 1 s of silence in the recording (a 5.7 s
    question and 5.6 s reply made 46 s). Now the reply follows the question's end at once."""
    from tests.helpers.cli import assert_no_noise, clean_env, question_wav, run_voicechat

    question = question_wav(tmp_path, seconds=1.5, tail_s=0.3)
    record = tmp_path / "both.wav"
    async with LocalServer(ServerOptions(speed=8.0, seed=6), host="127.0.0.1", port=0) as srv:
        run = await run_voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file", str(question),
                                  "--fast", "--record", str(record), env=clean_env(tmp_path))
    assert run.status == 0, run.stderr
    assert_no_noise(run.stderr)
    with wave.open(str(record)) as w:
        rate = w.getframerate()
        both = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert rate == RATE
    _, mic_end = active_span(both[:, 0])
    reply_start, reply_end = active_span(both[:, 1])
    assert mic_end <= reply_start, (mic_end, reply_start)
    assert reply_start - mic_end < 1.0, (mic_end, reply_start)  # no magnified latency
    assert both.shape[0] / RATE < reply_end + 0.5, (both.shape[0] / RATE, reply_end)  # nor a long quiet tail
