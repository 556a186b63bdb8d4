"""`voicechat talk` with stdout and stderr that are pipes or files, never a terminal.

Each test runs the real command in a subprocess against a loopback server (the built-in
``--backend local`` one, or a scripted ``LocalServer`` in this process) and looks at the bytes
it wrote: plain transcript lines on stdout, flushed one by one; the plain ``voicechat: …``
status log on stderr; nothing on stderr with ``--quiet``; a JSONL transcript that parses line by
line; a reader that goes away (``| head -1``) ends the run quietly; and server text with control
characters never reaches the output raw.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import clean_env, talk_cli
from voicechat.audio.wav import load_wav_at, write_wav
from voicechat.server import LocalServer, ScriptedBrain, ServerOptions

QUESTION = Path(__file__).resolve().parents[2] / "voicechat" / "data" / "question.wav"
VOICECHAT = [sys.executable, "-m", "voicechat", "talk"]
LOCAL = ["--backend", "local", "--fast"]
TIMEOUT = 90  # seconds; generous, the test machine is small and shared
ESCAPES = re.compile(rb"\x1b|\x9b")  # ESC, or a C1 CSI (as a raw byte)
TRANSCRIPT_LINE = re.compile(r"(you|assistant): \S.*")
# Bytes that must never reach a terminal raw: C0 controls except tab and newline, and DEL.
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
NOISE = ("Traceback", "Broken pipe", "BrokenPipeError", "Exception ignored", "internal error")


@contextmanager
def popen(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen]:
    """``voicechat talk`` in ``tmp_path`` (so no ``.env`` is found), stdin closed, stdout and
    stderr piped; killed on the way out if it is still running.

    The pipes are unbuffered on this side: ``communicate()`` reads the file descriptors
    directly, so a line a buffered ``readline()`` had already taken in beside the first (two
    lines written together, a slow reader) was lost to the test, not by voicechat."""
    proc = subprocess.Popen([*VOICECHAT, *args], cwd=tmp_path, env=clean_env(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*VOICECHAT, *args], cwd=tmp_path, env=clean_env(tmp_path), stdin=subprocess.DEVNULL,
        capture_output=True, timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def two_questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged question twice: two turns, with time between their lines.

    The gap leaves room for the first reply to arrive and play out (at ``--fast``'s 10x clock,
    against a server that streams at 4x and waits up to 400 ms for a transcript), so the second
    question never talks over it.
    """
    question = load_wav_at(QUESTION, 24000)
    gap = np.zeros(20 * 24000, dtype=np.int16)
    path = tmp_path_factory.mktemp("audio") / "two.wav"
    write_wav(path, np.concatenate([question, gap, question]), 24000)
    return path


def assert_quiet(stderr: str) -> None:
    for word in NOISE:
        assert word not in stderr, stderr


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the last record is cut short"
    return [json.loads(line) for line in text.splitlines()]


# ---- a reader that goes away -----------------------------------------------------------------


def test_head_1_ends_quietly(tmp_path: Path) -> None:
    """``voicechat talk … | head -1``: one line out, both ends of the pipeline succeed, no noise."""
    script = (
        f'"$@" 2>"{tmp_path}/err" | head -1 > "{tmp_path}/first"; '
        f'echo "${{PIPESTATUS[@]}}" > "{tmp_path}/status"'
    )
    subprocess.run(
        ["bash", "-c", script, "voicechat", *VOICECHAT, *LOCAL, "--input-file", str(QUESTION),
         "--transcript", str(tmp_path / "chat.jsonl")],
        cwd=tmp_path, env=clean_env(tmp_path), stdin=subprocess.DEVNULL, timeout=TIMEOUT, check=True,
    )
    first = (tmp_path / "first").read_text()
    assert re.fullmatch(r"you: \S.*\n", first), first
    assert (tmp_path / "status").read_text().split() == ["0", "0"]
    assert_quiet((tmp_path / "err").read_text())
    # The conversation went on after the reader left: the reply reached the transcript file.
    assert [r["role"] for r in read_jsonl(tmp_path / "chat.jsonl")] == ["user", "assistant"]


def test_stdout_closed_after_the_first_line_is_not_an_error(tmp_path: Path, two_questions: Path) -> None:
    """Three more lines are written after the reader closed the pipe: EPIPE, silently, status 0."""
    with popen(tmp_path, *LOCAL, "--input-file", str(two_questions), "--transcript", str(tmp_path / "chat.jsonl")) as proc:
        first = proc.stdout.readline()
        closed_at = time.time()
        proc.stdout.close()
        _, err = proc.communicate(timeout=TIMEOUT)
    assert first.startswith(b"you: "), first
    assert proc.returncode == 0, err
    assert_quiet(err.decode())
    records = read_jsonl(tmp_path / "chat.jsonl")
    assert [r["role"] for r in records] == ["user", "assistant"] * 2
    # The last turn ended after the pipe was closed, so at least its line met a closed pipe.
    assert records[-1]["end"] > closed_at


def test_stderr_closed_early_is_not_an_error(tmp_path: Path) -> None:
    """The status log's reader goes away after one line: the transcript still comes, status 0."""
    with popen(tmp_path, *LOCAL, "--input-file", str(QUESTION)) as proc:
        first = proc.stderr.readline()
        proc.stderr.close()
        out, _ = proc.communicate(timeout=TIMEOUT)
    assert first.startswith(b"voicechat: "), first
    assert proc.returncode == 0
    assert [line.split(":")[0] for line in out.decode().splitlines()] == ["you", "assistant"]


# ---- what goes where -----------------------------------------------------------------------


def test_piped_stdout_gets_plain_lines_flushed_one_by_one(tmp_path: Path, two_questions: Path) -> None:
    """Each turn is on stdout as soon as it is done; stderr (a pipe) gets the plain status log."""
    with popen(tmp_path, *LOCAL, "--input-file", str(two_questions)) as proc:
        first = proc.stdout.readline()
        running = proc.poll() is None  # a block-buffered stdout would show nothing before exit
        rest, err = proc.communicate(timeout=TIMEOUT)
    assert running, "the first transcript line only arrived when voicechat ended"
    assert proc.returncode == 0, err
    out = first + rest
    assert not ESCAPES.search(out), out
    lines = out.decode().splitlines()
    assert len(lines) == 4 and all(TRANSCRIPT_LINE.fullmatch(line) for line in lines), lines
    assert [line.split(":")[0] for line in lines] == ["you", "assistant"] * 2

    assert not ESCAPES.search(err), err
    log = err.decode().splitlines()
    assert log and all(line.startswith("voicechat: ") for line in log), log
    said = [line.removeprefix("voicechat: ") for line in log]
    assert said[0] == "connecting"
    assert said[1].startswith("server ws://127.0.0.1:") and said[1].endswith(", model gpt-realtime-2.1"), said
    assert sum("connecting" in s for s in said) == 1, said  # it said "connecting" twice
    assert "connected" in said and "assistant speaking" in said, said
    assert said[-1] == "closed", said
    assert_quiet(err.decode())


def test_quiet_leaves_stderr_empty(tmp_path: Path) -> None:
    proc = run(tmp_path, *LOCAL, "--quiet", "--input-file", str(QUESTION))
    assert proc.returncode == 0
    assert proc.stderr == b""
    assert [line.split(":")[0] for line in proc.stdout.decode().splitlines()] == ["you", "assistant"]


def test_jsonl_transcript_parses_line_by_line(tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"role": "user", "text": "from an earlier run"}\n', encoding="utf-8")
    proc = run(tmp_path, *LOCAL, "--input-file", str(QUESTION), "--transcript", str(chat))
    assert proc.returncode == 0, proc.stderr
    earlier, *records = read_jsonl(chat)
    assert earlier["text"] == "from an earlier run", "the file is appended to, not replaced"
    assert [r["role"] for r in records] == ["user", "assistant"]
    user, reply = records
    for record in records:
        assert isinstance(record["text"], str) and record["text"], record
        assert isinstance(record["item_id"], str) and record["item_id"], record
        assert isinstance(record["start"], float) and isinstance(record["end"], float), record
        assert 0 < record["start"] <= record["end"] <= time.time(), record
        assert record["interrupted"] is False, record
        assert record["kind"] == "audio", record
    assert user["item_id"] != reply["item_id"]
    assert user["audio_ms"] > 1000 and "usage" not in user, user
    usage = reply["usage"]
    assert set(usage) == {"input_tokens", "output_tokens", "total_tokens"}, usage
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert user["start"] <= reply["start"], "turns out of order"
    # stdout has the same turns, in the same order, as plain lines.
    assert proc.stdout.decode().splitlines() == [f"you: {user['text']}", f"assistant: {reply['text']}"]


# ---- server text with control characters ---------------------------------------------------

HOSTILE_REPLY = "evil \x1b[31mred\x1b[0m bell\x07 csi\x9b2J title\x1b]0;pwned\x07 cr\rdel\x7f end"
HOSTILE_HEARD = "heard \x1b[2Jclear\x08"


async def talk_to(server: LocalServer, tmp_path: Path, *args: str) -> tuple[int, bytes, bytes]:
    run = await talk_cli(server, tmp_path, "--fast", *args)
    return run.status, run.stdout.encode(), run.stderr.encode()


async def test_server_control_characters_are_escaped_on_stdout(tmp_path: Path) -> None:
    options = ServerOptions(
        brain=ScriptedBrain([HOSTILE_REPLY]), recognizer=lambda pcm: HOSTILE_HEARD,
        transcript_timing="before", speed=20.0, seed=3,
    )
    chat = tmp_path / "chat.jsonl"
    async with LocalServer(options, host="127.0.0.1", port=0) as server:
        status, out, err = await talk_to(server, tmp_path, "--input-file", str(QUESTION), "--transcript", str(chat))
    assert status == 0, err
    assert not RAW_CONTROL.search(out), out
    text = out.decode()
    assert not re.search("[\x80-\x9f]", text), text  # no C1 controls either
    assert text.splitlines() == [
        r"you: heard \x1b[2Jclear\x08",
        r"assistant: evil \x1b[31mred\x1b[0m bell\x07 csi\x9b2J title\x1b]0;pwned\x07 cr\x0ddel\x7f end",
    ]
    assert not RAW_CONTROL.search(err) and not ESCAPES.search(err), err
    # The JSONL file keeps the words exactly as the server sent them (JSON escapes them).
    assert [r["text"] for r in read_jsonl(chat)] == [HOSTILE_HEARD, HOSTILE_REPLY]


async def test_server_error_text_is_escaped_on_stderr(tmp_path: Path) -> None:
    """A server error that ends the session is reported with its control characters escaped."""
    error = {
        "type": "error", "event_id": "event_hostile",
        "error": {"type": "invalid_request_error", "code": "hostile", "param": None, "event_id": None,
                  "message": "bad \x1b]0;pwned\x07 thing\x1b[2J"},
    }
    options = ServerOptions(inject_frames=(json.dumps(error),), recognizer="none")
    async with LocalServer(options, host="127.0.0.1", port=0) as server:
        status, _, err = await talk_to(server, tmp_path, "--input-file", str(QUESTION))
    assert status == 11, err  # the session was rejected
    assert b"bad " in err and b"thing" in err, err
    assert not RAW_CONTROL.search(err), err
