"""Output files that cannot be written: a full disk (a real 64 KB tmpfs) and a removed directory.

Whatever happens to ``--transcript``, ``--record`` or ``--output-file``, the conversation goes
on, stdout and the other files keep being written, each failing file is named (once when it
fails, once more to say where its data went), no record is torn, and nothing is lost: the
turns and audio it could not take are written when it can take them again, or end up in a
fallback file next to it, in the working directory or in the temporary directory.

The tmpfs tests need root and a kernel that lets this process mount one; elsewhere they are
skipped, saying why.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.cli import assert_no_noise, talk_cli
from tests.helpers.server import speech_like
from voicechat.app import Output, talk
from voicechat.audio.outfile import AudioOutput
from voicechat.audio.wav import write_wav
from voicechat.config import resolve
from voicechat.effects import Turn
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import FileSink, StreamSink

RATE = 24_000
HEARD = "hello from the output tests"


def options(**overrides: Any) -> ServerOptions:
    base = {"recognizer": lambda pcm: HEARD, "transcript_timing": "before", "speed": 8.0, "seed": 3}
    return ServerOptions(**{**base, **overrides})


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 64 KB tmpfs, unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"this machine does not let the tests mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; the filler file's path."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def earlier_record(size: int) -> str:
    """One JSONL transcript line of exactly ``size`` bytes (a conversation already there)."""
    record = {"role": "user", "text": "", "item_id": "item_old", "start": 0.0, "end": 0.0, "interrupted": False,
              "kind": "text"}
    record["text"] = "x" * (size - len(json.dumps(record)) - 1)
    line = json.dumps(record) + "\n"
    assert len(line) == size
    return line


def turn(n: int) -> Turn:
    return Turn(role="user" if n % 2 else "assistant", text=f"turn {n} " + "words " * 20, item_id=f"item_{n}",
                started_at=float(n), ended_at=float(n) + 0.5, kind="text")


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n"), "a torn last record"
    return [json.loads(line) for line in text.splitlines()]


def fallbacks(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


# ---- the transcript on a full disk ------------------------------------------------------------


def test_a_full_disk_leaves_no_torn_record_and_the_held_turns_go_out_once_there_is_room(
        tiny_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    chat = tiny_disk / "chat.jsonl"
    old = earlier_record(4000)  # its page has 96 bytes left: the next record fits only in part
    chat.write_text(old)
    filler = fill(tiny_disk)
    said: list[str] = []
    sink = FileSink(chat, said.append)
    sink.write(turn(1))
    assert chat.read_text() == old, "the part that fitted was cut back: no torn record"
    assert said == [f"--transcript {chat}: cannot write it (No space left on device); the conversation goes on, "
                    "and what is not written is kept"]
    sink.write(turn(2))
    assert chat.read_text() == old and len(said) == 1, "named once"
    filler.unlink()  # room again: the next turn takes the held ones with it, in order
    sink.write(turn(3))
    assert said[1:] == [f"--transcript {chat}: writing again (3 held back written)"]
    sink.close()
    assert [r["item_id"] for r in lines(chat)] == ["item_old", "item_1", "item_2", "item_3"]
    assert fallbacks(tmp_path, "chat.unsaved-*") == [] and len(said) == 2


def test_turns_the_full_disk_never_took_end_up_in_a_fallback_file_that_is_named(
        tiny_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    chat = tiny_disk / "chat.md"
    fill(tiny_disk)
    said: list[str] = []
    sink = FileSink(chat, said.append)  # its "# Conversation" heading does not fit either
    for n in (1, 2):
        sink.write(turn(n))
    sink.close()
    [kept] = fallbacks(tmp_path, "chat.unsaved-*.md")
    assert said[-1] == f"--transcript {chat}: what could not be written there (3 entries) is in {kept}"
    assert kept.read_text().startswith("# Conversation\n\n**You**: turn 1 words")
    assert "**Assistant**: turn 2" in kept.read_text() and chat.read_text() == ""
    assert kept.stat().st_mode & 0o077 == 0, "readable only by its owner"


# ---- the real command on a full disk ------------------------------------------------------------


async def test_talk_on_a_full_disk_keeps_talking_and_keeps_every_output(tiny_disk: Path, tmp_path: Path) -> None:
    """Transcript, recording and reply audio on a full 64 KB tmpfs, in one real conversation."""
    said = np.concatenate([np.zeros(RATE // 5, np.int16), speech_like(1.2), np.zeros(RATE // 3, np.int16)])
    wav = tmp_path / "q.wav"
    write_wav(wav, said, RATE)
    chat, record, reply = tiny_disk / "chat.jsonl", tiny_disk / "rec.wav", tiny_disk / "reply.wav"
    old = earlier_record(4000)
    chat.write_text(old)
    fill(tiny_disk)
    async with LocalServer(options()) as srv:
        run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(wav), "--silence-duration-ms", "300",
                             "--transcript", str(chat), "--record", str(record), "--output-file", str(reply))
    assert run.status == 0, run.stderr
    assert_no_noise(run.stderr)
    shown = run.stdout.splitlines()
    assert len(shown) == 2 and shown[0] == f"you: {HEARD}" and shown[1].startswith("assistant: "), run.stdout
    for path in (chat, record, reply):
        named = [line for line in run.stderr.splitlines() if str(path) in line]
        assert 1 <= len(named) <= 2 and all(line.startswith("voicechat: warning: ") for line in named), run.stderr
    # The transcript: what was there is whole, every turn is in the fallback, in order.
    assert chat.read_text() == old
    [kept] = fallbacks(tmp_path, "chat.unsaved-*.jsonl")
    assert [r["role"] for r in lines(kept)] == ["user", "assistant"] and f"is in {kept}" in run.stderr
    # The recording: the file on the full disk is a true WAV, the fallback holds the rest, and
    # together they are the whole conversation: the left channel is the input, sample for sample.
    [rest] = fallbacks(tmp_path, "rec.unsaved-*.wav")
    both = np.concatenate([frames(record, 2), frames(rest, 2)])
    assert np.array_equal(both[: said.size, 0], said)
    [reply_rest] = fallbacks(tmp_path, "reply.unsaved-*.wav")
    assert len(frames(reply, 1)) + len(frames(reply_rest, 1)) >= RATE  # the echoed 1.2 s reply, as played


def frames(path: Path, channels: int) -> np.ndarray:
    """The frames of a WAV whose header must be true to its size (an empty file: none)."""
    if path.stat().st_size == 0:
        return np.zeros((0, channels), np.int16)
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == channels and w.getsampwidth() == 2 and w.getframerate() == RATE
        n = w.getnframes()
        assert path.stat().st_size == 44 + n * 2 * channels, "the header says what the file holds"
        return np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, channels)


# ---- a directory removed mid-run ----------------------------------------------------------------


class RemoveAfterFirstTurn:
    """A sink that removes a directory (and everything in it) once the first turn is written."""

    report = None

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, turn: Turn) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)

    def close(self) -> None:
        pass


async def test_a_directory_removed_mid_run_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    said = np.concatenate([np.zeros(RATE // 5, np.int16), speech_like(1.0), np.zeros(RATE * 2, np.int16),
                           speech_like(0.8, seed=2), np.zeros(RATE // 2, np.int16)])
    wav = tmp_path / "q.wav"
    write_wav(wav, said, RATE)
    gone = tmp_path / "gone"
    gone.mkdir()
    chat, record, reply = gone / "chat.jsonl", gone / "rec.wav", gone / "reply.wav"
    async with LocalServer(options()) as srv:
        settings = resolve(flags={"base_url": srv.http_base_url, "input_file": wav, "fast": True,
                                  "silence_duration_ms": 300, "record": record, "output_file": reply},
                           environ={"OPENAI_API_KEY": "sk-outputs"})
        stdout, stderr = io.StringIO(), io.StringIO()
        out = Output(sinks=[StreamSink(stdout), FileSink(chat), RemoveAfterFirstTurn(gone)], status=stderr)
        await talk(settings, out)
    assert not gone.exists()
    shown = stdout.getvalue().splitlines()
    assert [line.split(":")[0] for line in shown] == ["you", "assistant", "you", "assistant"], shown
    [kept] = fallbacks(tmp_path, "chat.unsaved-*.jsonl")
    assert [r["role"] for r in lines(kept)] == ["user", "assistant", "user", "assistant"], "every turn, in order"
    assert f"--transcript {chat}: cannot write it (it was removed, or its directory was)" in stderr.getvalue()
    assert f"--transcript {chat}: what could not be written there (what the file held and " in stderr.getvalue()
    [recording] = fallbacks(tmp_path, "rec.unsaved-*.wav")
    assert np.array_equal(frames(recording, 2)[: said.size, 0], said), "the whole recording, read back"
    [reply_audio] = fallbacks(tmp_path, "reply.unsaved-*.wav")
    assert len(frames(reply_audio, 1)) >= RATE  # both replies, about 1.8 s
    for path in (record, reply):
        assert f"{path}: it was removed, or its directory was; all of its audio goes on in " in stderr.getvalue()


# ---- the audio writer on its own -----------------------------------------------------------------


def test_an_audio_file_that_fails_at_its_last_flush_keeps_its_end_in_a_fallback(
        tiny_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Less than the writer's buffer, then a full disk: the failure comes at close; nothing lost."""
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    out = AudioOutput(tiny_disk / "a.wav", RATE, label="--output-file", report=said.append)
    fill(tiny_disk)
    audio = speech_like(0.1)
    out.write(audio)  # buffered by the writer: nothing fails yet
    out.close()
    [rest] = fallbacks(tmp_path, "a.unsaved-*.wav")
    assert np.array_equal(np.concatenate([frames(tiny_disk / "a.wav", 1), frames(rest, 1)])[:, 0], audio)
    assert len(said) == 1 and said[0].endswith(f"the rest goes to {rest}"), said


async def test_the_event_log_on_a_full_disk_stops_whole_and_says_so_once(tiny_disk: Path, tmp_path: Path) -> None:
    """``--log-events`` (a debugging aid) on a full disk: the conversation goes on, the log is
    left as whole JSON lines (a line half written is cut back), and one warning names it."""
    said = np.concatenate([np.zeros(RATE // 5, np.int16), speech_like(1.2), np.zeros(RATE // 3, np.int16)])
    wav = tmp_path / "q.wav"
    write_wav(wav, said, RATE)
    log_file = tiny_disk / "events.jsonl"
    filler = fill(tiny_disk)
    filler.write_bytes(filler.read_bytes()[:-12000])  # room (whole 4 KB pages) for a few lines, not for all
    async with LocalServer(options()) as srv:
        run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(wav), "--silence-duration-ms", "300",
                             "--log-events", str(log_file))
    assert run.status == 0, run.stderr
    shown = run.stdout.splitlines()
    assert len(shown) == 2 and shown[0] == f"you: {HEARD}", run.stdout
    named = [line for line in run.stderr.splitlines() if str(log_file) in line]
    assert len(named) == 1 and named[0].startswith(f"voicechat: warning: --log-events {log_file}: "), run.stderr
    assert "No space left on device" in named[0], named
    text = log_file.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert text.endswith("\n") and records and records[0]["dir"] == "start", "whole lines only"
