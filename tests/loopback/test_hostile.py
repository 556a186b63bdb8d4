"""Hostile servers of our own (tests/helpers/hostile.py), met by the real client over loopback.

Hangs: a first connection whose session is never set up (nothing sent, ``session.updated``
never sent, either one trickled a byte at a time while pings are answered) ends within the
setup deadline with one line and the connect-failure status, as a reconnect does.

Crashes: whatever text a server sends (lone UTF-16 surrogates anywhere, an emoji split across
deltas followed by a drop, frames that are not UTF-8, numbers of any size, nesting of any
depth) the conversation goes on, every writer (stdout, transcript files, the event log, the
panel) keeps writing, and the turn being written is kept.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.helpers.canary import Outputs, assert_no_leak, canary
from tests.helpers.cli import assert_no_noise, quiet_wav, talk_cli
from tests.helpers.hostile import HostileServer, Peer, canned_turn, session_event, turn_script
from voicechat.app import MALFORMED_BURST, SETUP_TIMEOUT_S, Output, Reliability, talk
from voicechat.backoff import Backoff
from voicechat.config import resolve
from voicechat.errors import ConnectError, ExitStatus, VoicechatError
from voicechat.transcript import FileSink, StreamSink
from voicechat.ui.render import render

QUICK = Reliability(setup_timeout_s=1.5, backoff=Backoff(base=0.05, cap=0.1, tries=3))


class RenderingFront:
    """A front end that draws every snapshot it is given, as the live panel would."""

    is_started = True

    def __init__(self) -> None:
        self.console = Console(file=io.StringIO(), width=100, height=40, force_terminal=True, color_system="truecolor")
        self.drawn = 0

    def __enter__(self) -> RenderingFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.is_started = False

    def update(self, snapshot: Any) -> None:
        self.console.print(render(snapshot))
        self.drawn += 1


async def converse(tmp_path: Path, srv: HostileServer, *, panel: bool = False, reliability: Reliability = QUICK,
                   **flags: Any) -> tuple[str, str, VoicechatError | None, Output]:
    """One in-process ``talk`` from a WAV file against ``srv``: stdout, stderr, the error, the output."""
    settings = resolve(
        flags={"base_url": srv.http_base_url, "input_file": quiet_wav(tmp_path), "fast": True,
               "silence_duration_ms": 300, **flags},
        environ={"OPENAI_API_KEY": (key := canary("key"))},
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    sinks: list[Any] = [StreamSink(stdout)]
    if settings.transcript is not None:
        sinks.append(FileSink(settings.transcript))
    out = Output(sinks=sinks, status=stderr, front=RenderingFront() if panel else None)
    error = None
    try:
        await talk(settings, out, reliability=reliability)
    except VoicechatError as exc:
        error = exc
    # Every hostile run is a canary sweep: the key is in no output, in no encoding.
    shown = out.front.console.file.getvalue() if isinstance(out.front, RenderingFront) else ""
    assert_no_leak({"key": key}, Outputs({"stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
                                          "panel": shown, "error": str(error or "")}, root=tmp_path))
    return stdout.getvalue(), stderr.getvalue(), error, out


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ==== hangs: the first session setup ==========================================================

SESSION_CREATED = json.dumps(session_event("session.created")).encode()


async def never_created(peer: Peer) -> None:
    await peer.drain()  # pings are answered, nothing is said


async def never_updated(peer: Peer) -> None:
    await peer.send(session_event("session.created"))
    await peer.drain()


async def created_trickled(peer: Peer) -> None:
    await peer.trickle(SESSION_CREATED, every_s=0.2)
    await peer.drain()


async def updated_trickled(peer: Peer) -> None:
    await peer.send(session_event("session.created"))
    update = await peer.until("session.update")
    await peer.trickle(json.dumps(session_event("session.updated", update["session"])).encode(), every_s=0.2)
    await peer.drain()


@pytest.mark.parametrize("script, missing", [
    (never_created, "session.created"),
    (never_updated, "session.updated"),
    (created_trickled, "session.created"),
    (updated_trickled, "session.updated"),
], ids=["nothing sent", "no session.updated", "session.created trickled", "session.updated trickled"])
async def test_a_first_session_never_set_up_ends_at_the_deadline(tmp_path: Path, script, missing: str) -> None:
    chat = tmp_path / "chat.jsonl"
    async with HostileServer(script) as srv:
        stdout, stderr, error, _ = await converse(tmp_path, srv, transcript=chat)
    assert isinstance(error, ConnectError) and error.status == ExitStatus.CONNECT, (error, stderr)
    assert error.message == ("the server accepted the connection but did not set up the session within 1.5 s "
                             f"(no {missing})")
    assert error.hint == "check --base-url: is it a realtime server?"
    assert srv.connections == 1, "a first connection that was never set up is not retried"
    assert stdout == "" and chat.read_text() == ""


async def test_the_cli_gives_up_on_a_session_never_set_up_with_the_connect_status(tmp_path: Path) -> None:
    """The real deadline (15 s), a file run, the real command: one line, exit 5, no traceback."""
    async with HostileServer(updated_trickled) as srv:
        run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(quiet_wav(tmp_path)))
    assert run.status == ExitStatus.CONNECT, run.stderr
    assert_no_noise(run.stderr)
    lines = run.stderr.splitlines()
    assert lines[-2:] == [
        f"voicechat: error: the server accepted the connection but did not set up the session within "
        f"{SETUP_TIMEOUT_S:g} s (no session.updated)",
        "  hint: check --base-url: is it a realtime server?",
    ], run.stderr
    assert run.seconds >= SETUP_TIMEOUT_S - 1


# ==== crashes: text a writer cannot write ====================================================

# Lone surrogates as they come over the wire: JSON escapes (valid JSON, no valid UTF-8 for them).
LONE = {
    "high": r'"\ud83d"',
    "low": r'"\ude00 after"',
    "both wrong way round": r'"before \ude00\ud83d after"',
    "in a key": r'"\udc80"',
}


@pytest.mark.parametrize("where", ["user transcript", "reply deltas", "reply done", "error message",
                                   "unknown event", "session"])
async def test_lone_surrogates_anywhere_reach_every_writer_as_replacement_characters(
        tmp_path: Path, where: str) -> None:
    raw = {"USER": r'"you \ud800 said"', "D1": r'"hi \ud83d"', "D2": r'"\ude00 there"',
           "DONE": r'"hi \ud83d\ude00 there \udfff"'}
    reply: tuple[str, ...] = ("hi ", "there")
    user = "you said"
    said = None
    extra: list[str] = []
    if where == "user transcript":
        user = "@USER@"
    elif where == "reply deltas":
        reply, said = ("@D1@", "@D2@"), ""  # the done events say nothing: the deltas are the reply
    elif where == "reply done":
        reply = ("@DONE@",)
    elif where == "error message":
        extra = [r'{"type": "error", "error": {"type": "invalid_request_error", "code": "x\udfff",'
                 r' "message": "bad \ud800 thing", "param": null, "event_id": null}}']
    elif where == "unknown event":
        extra = [r'{"type": "response.\ud800new", "\udc80": ["\ud83d", {"\ud800": "\udfff"}]}']
    frames = extra + canned_turn(user, reply, raw=raw, said=said)
    if where == "session":  # a session.updated with surrogates in its instructions, mid-conversation
        frames.insert(0, r'{"type": "session.updated", "session": {"instructions": "\ud800", "\udc80": 1}}')
    chat, notes, events = tmp_path / "chat.jsonl", tmp_path / "chat.md", tmp_path / "events.jsonl"
    async with HostileServer(turn_script(frames)) as srv:
        run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(quiet_wav(tmp_path)),
                             "--transcript", str(chat), "--log-events", str(events))
        notes_run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(quiet_wav(tmp_path)),
                                   "--transcript", str(notes))
    for r in (run, notes_run):
        assert r.status == 0, r.stderr
        assert_no_noise(r.stderr)
    said = run.stdout.splitlines()
    assert [line.split(":")[0] for line in said] == ["you", "assistant"], run.stdout
    turns = records(chat)
    assert [t["role"] for t in turns] == ["user", "assistant"] and not turns[1]["interrupted"]
    if where == "user transcript":
        assert turns[0]["text"] == "you \ufffd said" and said[0] == "you: you \ufffd said"
    if where == "reply deltas":
        assert turns[1]["text"] == "hi \ufffd\ufffd there"
    if where == "reply done":
        assert turns[1]["text"] == "hi \U0001f600 there \ufffd", "a valid pair stays the emoji it is"
    if where == "error message":
        assert "voicechat: error: server error [x\ufffd]: bad \ufffd thing" in run.stderr
    assert "\ufffd" in (run.stdout + run.stderr + events.read_text(encoding="utf-8")) or where == "session"
    for line in events.read_text(encoding="utf-8").splitlines():
        json.loads(line)  # every line whole and valid
    assert re.match(r"# Conversation\n\n## .+ · gpt-realtime-[^\n]+\n\n\*\*You\*\*: ", notes.read_text(encoding="utf-8"))


async def test_an_emoji_split_across_deltas_then_a_drop_keeps_the_turn(tmp_path: Path) -> None:
    """Half an emoji in each of two deltas, then no close frame: the reply cut short is written,
    interrupted, and the conversation goes on over a new connection."""
    frames = canned_turn("tell me", ("look: ", "@HI@", "@LO@"), raw={"HI": r'"\ud83d"', "LO": r'"\ude00"'},
                         done=False, text_first=True)
    chat = tmp_path / "chat.jsonl"
    async with HostileServer(turn_script(frames, then="drop", drop_after_s=1.0)) as srv:
        run = await talk_cli(srv, tmp_path, "--fast", "--input-file", str(quiet_wav(tmp_path)),
                             "--transcript", str(chat))
    assert run.status == 0, run.stderr
    assert_no_noise(run.stderr)
    assert "dropped (no close frame); reconnecting" in run.stderr and srv.connections == 2
    turns = records(chat)
    assert [(t["role"], t["interrupted"]) for t in turns] == [("user", False), ("assistant", True)]
    # The words ahead of the audio heard (all of them, once any audio was), each half a U+FFFD.
    assert turns[1]["text"] in ("look: \ufffd\ufffd", ""), turns[1]
    said = f"{turns[1]['text']} [interrupted]" if turns[1]["text"] else "[interrupted before any words]"
    assert run.stdout.splitlines()[1] == f"assistant: {said}"


# ==== crashes: frames that are not UTF-8 ======================================================

BAD_UTF8 = [
    b'{"type": "response.output_audio_transcript.delta", "delta": "\xff\xfe"}',
    b'{"type": "error", "error": {"message": "\xed\xa0\x80 an encoded surrogate"}}',
    b"\xc3\x28 not even json",
    b'{"type": "x", "cut": "\xe2\x82"}',
]


async def test_frames_that_are_not_utf8_are_malformed_frames_with_rate_limited_warnings(tmp_path: Path) -> None:
    """Mid-reply, 60 text frames that are not UTF-8: each is one skipped frame (not a dropped
    connection, not 10 s of silence), warned about at most `MALFORMED_BURST` times one by one,
    with every one of them counted."""
    count = 60
    turn = canned_turn()
    frames: list[str | bytes] = [*turn[:12], *(BAD_UTF8 * 15)[:count], *turn[12:]]
    chat = tmp_path / "chat.jsonl"
    async with HostileServer(turn_script(frames)) as srv:
        _, stderr, error, _ = await converse(tmp_path, srv, transcript=chat)
    assert error is None, (error, stderr)
    assert [(t["role"], t["interrupted"]) for t in records(chat)] == [("user", False), ("assistant", False)]
    assert srv.connections == 1 and srv.closes == [1000], "no reconnect: the connection never failed"
    warned = [line for line in stderr.splitlines() if "malformed server frame" in line]
    assert MALFORMED_BURST <= len(warned) < count, stderr
    assert all(line.startswith("voicechat: warning: ") for line in warned)
    assert "text frame is not valid UTF-8 (byte " in warned[0]
    held = sum(int(n.replace(",", "")) for n in re.findall(r"\(([\d,]+) more since the last warning\)", stderr))
    summary = re.findall(r"ignored ([\d,]+) more malformed server frames \(([\d,]+) in all\)", stderr)
    held += sum(int(n.replace(",", "")) for n, _ in summary)
    shown = sum("ignored a malformed server frame" in line for line in warned)
    assert shown + held == count, stderr
    if summary:
        assert summary[0][1] == str(count)


async def test_invalid_utf8_goes_to_the_event_log_as_a_malformed_frame(tmp_path: Path) -> None:
    frames: list[str | bytes] = [*canned_turn()[:3], b'{"type": "x", "text": "caf\xe9"}', *canned_turn()[3:]]
    events = tmp_path / "events.jsonl"
    async with HostileServer(turn_script(frames)) as srv:
        _, stderr, error, _ = await converse(tmp_path, srv, log_events=events)
    assert error is None, stderr
    logged = records(events)
    bad = [r for r in logged if "malformed" in r]
    assert len(bad) == 1 and bad[0]["text"] == '{"type": "x", "text": "caf\ufffd"}', bad
    assert bad[0]["malformed"] == "text frame is not valid UTF-8 (byte 26 of 29)"


# ==== crashes: numbers of any size ============================================================

NUMBERS = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "9" * 400, "-" + "9" * 400, str(2**63), "-5",
           "1.7976931348623157e308", "4.9e-324"]


@pytest.mark.parametrize("token", NUMBERS)
async def test_numbers_of_any_size_in_every_numeric_field_keep_talk_and_the_panel_alive(
        tmp_path: Path, token: str) -> None:
    """The token in every number field of the turn at once (times, indexes, token counts, the
    session's expiry, rate limits): the panel draws every snapshot, both turns are written."""
    raw = {"N": token}
    turn = canned_turn(raw=raw)
    number_fields = re.compile(r'"(audio_start_ms|audio_end_ms|total_tokens|input_tokens|output_tokens)": \d+')
    turn = [number_fields.sub(r'"\1": @', frame).replace("@", token) for frame in turn]
    frames = [
        json.dumps(session_event("session.updated", {"expires_at": "@N@", "max_output_tokens": "@N@"}))
        .replace('"@N@"', token),
        f'{{"type": "rate_limits.updated", "rate_limits": [{{"name": "tokens", "limit": {token}, '
        f'"remaining": {token}, "reset_seconds": {token}}}]}}',
        *turn,
        f'{{"type": "conversation.item.truncated", "item_id": "item_a1", "content_index": {token}, '
        f'"audio_end_ms": {token}}}',
    ]

    async def script(peer: Peer) -> None:  # the handshake's own numbers are hostile too
        await peer.send(json.dumps(session_event("session.created")).replace('"expires_at": 0', f'"expires_at": {token}'))
        update = await peer.until("session.update")
        await peer.send(json.dumps(session_event("session.updated", update["session"]))
                        .replace('"expires_at": 0', f'"expires_at": {token}'))
        await peer.until("input_audio_buffer.append")
        for frame in frames:
            await peer.send(frame)
        await peer.drain()

    chat = tmp_path / "chat.jsonl"
    async with HostileServer(script) as srv:
        stdout, stderr, error, out = await converse(tmp_path, srv, panel=True, transcript=chat,
                                                    log_events=tmp_path / "events.jsonl")
    assert error is None, (error, stderr)
    assert out.front.drawn > 0
    turns = records(chat)
    assert [t["role"] for t in turns] == ["user", "assistant"], turns
    assert turns[1]["text"] == "hi back" and stdout.splitlines() == ["you: hello there", "assistant: hi back"]
    for turn in turns:
        assert all(abs(v) <= 2**53 for v in _numbers(turn)), turn
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        assert all(abs(v) <= 2**53 for v in _numbers(json.loads(line)))


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


# ==== crashes: nesting ============================================================================


@pytest.mark.parametrize("depth", [65, 900, 5_000, 200_000])
async def test_deep_nesting_with_log_events_is_a_malformed_frame(tmp_path: Path, depth: int) -> None:
    """Nested just past the bound, past Python's recursion limit in a walk but not in the parser
    (900), and far past both: one malformed frame each; the event log stays valid JSON lines."""
    nested = [
        '{"type": "response.unknown", "a": ' + "[" * depth + "]" * depth + "}",
        '{"type": "error", "error": {"message": "m", "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}}",
        "[" * depth,
    ]
    turn = canned_turn()
    frames: list[str | bytes] = [*turn[:12], *nested, *turn[12:]]
    events = tmp_path / "events.jsonl"
    chat = tmp_path / "chat.jsonl"
    async with HostileServer(turn_script(frames)) as srv:
        _, stderr, error, _ = await converse(tmp_path, srv, transcript=chat, log_events=events)
    assert error is None, (error, stderr)
    assert [(t["role"], t["interrupted"]) for t in records(chat)] == [("user", False), ("assistant", False)]
    warned = [line for line in stderr.splitlines() if "ignored a malformed server frame" in line]
    assert len(warned) == 3 and all("nested more than 64 levels deep" in line for line in warned[:2]), stderr
    logged = records(events)  # every line valid JSON, none of them deep
    assert sum("malformed" in r for r in logged) == 3
