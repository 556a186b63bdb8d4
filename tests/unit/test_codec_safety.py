"""The codec boundary makes every server value safe for every writer (hypothesis).

Generated whole turns (the frames an honest server sends, tests/helpers/hostile.py), with any
of their values swapped for something hostile: a string with lone UTF-16 surrogates (as the
``\\ud83d`` escapes a server sends), a number of any size or none at all (``NaN``,
``Infinity``, 400 digits, negative), nesting of any depth. Each frame goes through the codec,
the event log, the session, and every writer: stdout lines, the .txt/.md/.jsonl transcripts,
the panel, status notices. Nothing may raise, every value the codec lets through must be
writable as UTF-8 and within ±2**53, and every file stays valid UTF-8 (each JSONL line valid).

Examples: ``VOICECHAT_FUZZ_EXAMPLES // 10`` turns (1,000 by default), derandomized as in
tests/unit/test_fuzz.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from tests.helpers.fuzzing import EXAMPLES as FUZZ_EXAMPLES
from tests.helpers.fuzzing import fuzz_settings, paths
from tests.helpers.hostile import canned_turn
from voicechat import effects as fx
from voicechat.app import Output, cost_line
from voicechat.audio.player import Player
from voicechat.budget import Budget
from voicechat.config import Settings
from voicechat.eventlog import EventLog
from voicechat.protocol import codec
from voicechat.protocol import events as ev
from voicechat.protocol.session_config import SessionConfig
from voicechat.session import Session
from voicechat.transcript import FileSink, StreamSink
from voicechat.ui.render import render
from voicechat.ui.view import View

EXAMPLES = max(50, FUZZ_EXAMPLES // 10)
HOLE = "\x00HOSTILE{}\x00"  # where a raw JSON token goes after encoding

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
hostile_text = st.lists(st.one_of(surrogates, st.characters(), st.sampled_from(["\U0001f600", "\n", "\x1b[2J"])),
                        max_size=8).map("".join)
number_tokens = st.one_of(
    st.integers(-(10**400), 10**400).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity") if math.isinf(f) else repr(f)),
    st.sampled_from(["1e999", "-1e999", "-0", "4.9e-324", "1.7976931348623157e308", "-5", "9" * 4400]),
)


def _nested(depth: int, inner: Any) -> Any:
    value = inner
    for n in range(depth):
        value = [value] if n % 2 else {"a": value}
    return value


hostile_values = st.one_of(
    hostile_text,
    st.just(HOLE),  # a raw number token
    st.dictionaries(hostile_text, hostile_text | st.just(HOLE), max_size=3),
    st.builds(_nested, st.integers(1, 300), hostile_text | st.just(HOLE)),
)


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


TURN = [json.loads(frame) for frame in canned_turn(deltas=3)]


@st.composite
def hostile_turns(draw: st.DrawFn) -> list[str]:
    """The frames of a whole turn, a few of their values (or keys) swapped for hostile ones."""
    events = json.loads(json.dumps(TURN))
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 6))):
        event = rng.choice(events)
        path = rng.choice(paths(event))
        if path == ("type",):
            continue
        if rng.random() < 0.15 and isinstance(path[-1], str):  # a hostile key instead
            parent = event
            for key in path[:-1]:
                parent = parent[key]
            parent[draw(hostile_text)] = parent.pop(path[-1])
            continue
        _set(event, path, draw(hostile_values))
    frames = []
    for event in events:
        text = json.dumps(event)  # ASCII: lone surrogates become \ud83d escapes, as on the wire
        holes = text.count(json.dumps(HOLE))
        tokens = draw(st.lists(number_tokens, min_size=holes, max_size=holes))
        pieces = text.split(json.dumps(HOLE))
        frames.append(pieces[0] + "".join(token + piece for token, piece in zip(tokens, pieces[1:], strict=True)))
    return frames


def _check_safe(value: Any, seen: Counter[str], depth: int = 0) -> None:
    """Every string writable as UTF-8, every number finite and within ±2**53, nesting bounded."""
    assert depth <= codec.MAX_DEPTH + 8
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, bool) or value is None or isinstance(value, bytes):
        pass
    elif isinstance(value, int | float):
        assert math.isfinite(value) and abs(value) <= codec.MAX_NUMBER, value
        seen["numbers"] += 1
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_safe(key, seen, depth + 1)
            _check_safe(item, seen, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_safe(item, seen, depth + 1)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _check_safe(getattr(value, f.name), seen, depth + 1)
    else:
        raise AssertionError(f"unexpected value {value!r}")


def test_hostile_values_in_any_field_reach_every_writer_safely(tmp_path: Path) -> None:
    seen = Counter[str]()
    files = [tmp_path / f"chat{ext}" for ext in (".txt", ".md", ".jsonl")]
    log = EventLog(tmp_path / "events.jsonl")
    model = Settings(model="gpt-realtime")
    console = Console(file=io.StringIO(), width=90, height=30, force_terminal=True, color_system="truecolor")

    @fuzz_settings(EXAMPLES)
    @given(hostile_turns())
    def turn(frames: list[str]) -> None:
        seen["turns"] += 1
        stdout, stderr = io.StringIO(), io.StringIO()
        sinks = [StreamSink(stdout), *(FileSink(path) for path in files)]
        out = Output(sinks=list(sinks), status=stderr)
        session = Session(SessionConfig(transcribe_model="whisper-1"))
        session.handle(ev.SessionCreated("e", {}), 0.0)
        session.handle(ev.SessionUpdated("e", {}), 0.0)
        view = View(model, "off")
        player = Player(24_000)
        budget = Budget("gpt-realtime", 1.0, None, started=0.0)
        now = 1.0

        def carry_out(effects: list[fx.Effect]) -> None:
            for effect in effects:
                if isinstance(effect, fx.TurnFinished):
                    for sink in sinks:
                        sink.write(effect.turn)
                elif isinstance(effect, fx.Notice):
                    out.notice(effect.level, effect.message)
                elif isinstance(effect, fx.Ready):
                    _check_safe(effect.server_session, seen)

        for frame in frames:
            now += 0.01
            try:
                obj = codec.decode_message(frame.encode("utf-8"), binary=False)
            except codec.MalformedEvent as exc:
                seen["malformed"] += 1
                exc.message.encode("utf-8")
                log.received(frame, malformed=exc.message)
                out.notice("warning", f"ignored a malformed server frame: {exc.message}")
                continue
            log.received(obj)
            _check_safe(obj, seen)
            try:
                event = codec.parse_server(obj)
            except codec.MalformedEvent as exc:
                seen["malformed"] += 1
                out.notice("warning", exc.message)
                continue
            _check_safe(event, seen)
            seen["events"] += 1
            if isinstance(event, ev.ResponseDone):
                budget.add(event.response.usage)
                out.notice("info", cost_line("gpt-realtime", session.usage))
            carry_out(session.handle(event, now))
            carry_out(session.playback_drained())
            carry_out(budget.check(now))
            expires = session.server_session.get("expires_at")  # as the app gives it to the panel
            if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
                view.expires_at = float(expires)
            console.print(render(view.snapshot(session, player, None)))
        carry_out(session.close(now + 10.0))
        console.print(render(view.snapshot(session, player, None)))
        for sink in sinks:
            sink.close()
        (stdout.getvalue() + stderr.getvalue()).encode("utf-8")

    turn()
    log.close()
    assert seen["turns"] >= EXAMPLES, seen
    assert seen["malformed"] and seen["events"] and seen["numbers"], seen
    for path in (*files, tmp_path / "events.jsonl"):
        text = path.read_bytes().decode("utf-8")  # valid UTF-8 throughout
        if path.suffix == ".jsonl":
            for line in text.splitlines():
                json.loads(line)


@pytest.mark.parametrize("text, expected", [
    (r'"\ud83d"', "\ufffd"),
    (r'"a\ud83d\ude00b"', "a\U0001f600b"),
    (r'"\ude00\ud83d"', "\ufffd\ufffd"),
    (r'{"\udc80": "\udfff"}', {"\ufffd": "\ufffd"}),
    (r'["\\ud83d"]', ["\\ud83d"]),  # an escaped backslash, not a surrogate
    ("1e999", None),
    ("-Infinity", None),
    ("NaN", None),
    ("9" * 300, None),
    (str(2**53), 2**53),
    (str(-(2**53) - 1), None),
    ("[1.5, -0.0]", [1.5, -0.0]),
])
def test_parse_json_replaces_lone_surrogates_and_reads_numbers_out_of_range_as_null(text: str, expected: Any) -> None:
    assert codec.parse_json(text) == expected


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH + 1, 999, 100_000])
def test_parse_json_refuses_nesting_past_the_bound(depth: int) -> None:
    for opening, closing in (("[", "]"), ('{"a":', "}")):
        text = opening * depth + "1" + closing * depth
        with pytest.raises(codec.MalformedEvent, match=f"nested more than {codec.MAX_DEPTH} levels deep"):
            codec.parse_json(text)
    assert codec.parse_json("[" * codec.MAX_DEPTH + "]" * codec.MAX_DEPTH) is not None


def test_text_frames_must_be_utf8_and_binary_frames_stay_binary() -> None:
    with pytest.raises(codec.MalformedEvent, match=r"not valid UTF-8 \(byte 3 of 7\)"):
        codec.decode_message(b'"ab\xffcd"', binary=False)
    with pytest.raises(codec.MalformedEvent, match=r"not valid UTF-8"):
        codec.decode_message(b'{"type": "\xed\xa0\x80"}', binary=False)  # a surrogate encoded in UTF-8
    with pytest.raises(codec.MalformedEvent, match="unexpected binary frame"):
        codec.decode_message(b'{"type": "error"}', binary=True)
    assert codec.decode_message('{"type": "caf\u00e9"}'.encode(), binary=False) == {"type": "caf\u00e9"}
