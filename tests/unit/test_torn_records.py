"""A transcript with a record cut short (the writer was killed mid-write, the disk filled): new
records are never glued to it, and ``--resume`` skips it, saying so, instead of refusing the
file (issue 12). Generated: real records cut at every position, anywhere in the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicechat.effects import Turn
from voicechat.errors import UsageError
from voicechat.transcript import FileSink, json_line, jsonl_record, read_jsonl

WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


def turn(n: int, text: str) -> Turn:
    return Turn("user" if n % 2 == 0 else "assistant", text, item_id=f"item_{n}", started_at=n + 0.5,
                ended_at=n + 1.25, kind="audio", interrupted=n % 3 == 0)


def line(t: Turn) -> str:
    return json_line(jsonl_record(t))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(texts=st.lists(WORDS, min_size=1, max_size=5), torn_at=st.integers(0, 4), cut=st.floats(0, 1),
       ends_file=st.booleans())
def test_resume_skips_a_record_cut_short_and_keeps_the_rest(tmp_path: Path, texts: list[str], torn_at: int,
                                                             cut: float, ends_file: bool) -> None:
    turns = [turn(n, text) for n, text in enumerate(texts)]
    torn_at = min(torn_at, len(turns) - 1)
    whole = line(turns[torn_at])
    torn = whole[: max(1, min(len(whole) - 1, int(len(whole) * cut)))]
    lines = [line(t) for t in turns]
    lines[torn_at] = torn
    if ends_file:  # the torn record is the last thing in the file (no line break after it)
        lines = lines[: torn_at + 1]
        text = "\n".join(lines)
    else:  # more was appended after it (on a line of its own)
        text = "\n".join(lines) + "\n"
    path = tmp_path / "chat.jsonl"
    path.write_text(text, encoding="utf-8")
    told: list[str] = []
    got = read_jsonl(path, on_torn=told.append)
    kept = [t for i, t in enumerate(turns[: len(lines)]) if i != torn_at]
    assert [(t.role, t.text, t.item_id) for t in got] == [(t.role, t.text, t.item_id) for t in kept]
    assert len(told) == 1 and f"line {torn_at + 1}" in told[0] and "cut short" in told[0]


@pytest.mark.parametrize("bad", ['{"role": "user", "text": "x"} trailing', "not json at all", '["a", "list"]',
                                 '{"role": "robot", "text": "x"}', '{"role": x}'])
def test_a_line_that_is_not_a_record_is_still_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(line(turn(0, "hi")) + "\n" + bad + "\n" + line(turn(1, "there")) + "\n")
    with pytest.raises(UsageError, match="line 2"):
        read_jsonl(path, on_torn=lambda message: None)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(before=st.text(alphabet="abc{}\":, é", max_size=40), fmt=st.sampled_from([".jsonl", ".txt", ".md"]))
def test_an_append_never_glues_a_record_to_an_unfinished_line(tmp_path: Path, before: str, fmt: str) -> None:
    """Whatever the file ends with, every new record starts a line of its own."""
    path = tmp_path / f"chat{fmt}"
    path.write_text(before, encoding="utf-8")
    sink = FileSink(path)
    sink.write(turn(0, "hello"))
    sink.write(turn(1, "again"))
    sink.close()
    text = path.read_text(encoding="utf-8")
    assert text.startswith(before)
    new = text[len(before):]
    assert before == "" or before.endswith("\n") or new.startswith("\n")
    if fmt == ".jsonl":
        ours = [json.loads(x) for x in new.split("\n") if x.strip()]
        assert [r["text"] for r in ours] == ["hello", "again"]


def test_resume_then_append_to_the_same_torn_file_reads_back(tmp_path: Path) -> None:
    """``--resume chat.jsonl --transcript chat.jsonl`` on a torn file: the next resume still
    reads every whole turn (the torn record stays skipped, the new ones follow on their lines)."""
    path = tmp_path / "chat.jsonl"
    path.write_text(line(turn(0, "one")) + "\n" + line(turn(1, "two"))[:25], encoding="utf-8")
    assert [t.text for t in read_jsonl(path, on_torn=lambda m: None)] == ["one"]
    sink = FileSink(path)
    sink.write(turn(2, "three"))
    sink.close()
    told: list[str] = []
    assert [t.text for t in read_jsonl(path, on_torn=told.append)] == ["one", "three"]
    assert len(told) == 1
