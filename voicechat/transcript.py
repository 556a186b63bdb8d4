"""Transcript sinks: plain lines on stdout, and files as text, Markdown or JSONL.

Each finished turn is written and flushed at once, so nothing said is lost if the process
dies. Server text is escaped before it can reach a terminal, and every secret voicechat holds
is elided from a turn before it is cut short or written (`scrubbed`). A closed pipe ends a
sink quietly (``head -1`` is a normal way to read a conversation).

A transcript file that cannot be written (a full disk, a removed directory) never ends the
conversation: its sink is a `voicechat.outputs.RecordFile`, which names the file once through
the sink's ``report``, keeps the turns it could not write and writes them when it can, or at
the end to a fallback file that it names. Nothing else (stdout, the other files) is affected.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from voicechat.config.validate import transcript_format_problem
from voicechat.effects import ToolCall, Turn
from voicechat.errors import UsageError
from voicechat.escape import escape_control
from voicechat.files import MAX_TRANSCRIPT_BYTES, read_limited
from voicechat.outputs import RecordFile
from voicechat.protocol.events import Usage
from voicechat.redact import SECRETS

ROLE_LABEL = {"user": "you", "assistant": "assistant", "tool": "tool"}
TOOL_ARGS_CHARS = 120  # a tool call's arguments in a transcript line (JSONL keeps them whole)
TOOL_RESULT_CHARS = 200  # and its result


# json.dumps leaves DEL and C1 controls raw (`cat` would obey them), and U+2028/U+2029, which
# readers that split lines the Unicode way (str.splitlines) take for the end of a JSON line.
_C1 = re.compile("[\x7f-\x9f\u2028\u2029]")


def json_line(value: object) -> str:
    """``value`` as one line of JSON (no newline): UTF-8 text, nothing a reader splits or a
    terminal obeys left raw."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))


def scrubbed(turn: Turn) -> Turn:
    """``turn`` with every secret voicechat holds elided from its text, result, note and call (a
    call's line is written from its name and arguments, not from the text)."""
    if not SECRETS:
        return turn
    call = turn.call
    if call is not None:
        call = dataclasses.replace(call, name=SECRETS.scrub(call.name), arguments=SECRETS.scrub(call.arguments))
    return dataclasses.replace(
        turn,
        text=SECRETS.scrub(turn.text),
        note=SECRETS.scrub(turn.note) if turn.note else turn.note,
        result=SECRETS.scrub(turn.result) if turn.result else turn.result,
        call=call,
    )


def turn_text(turn: Turn) -> str:
    """The words of a turn, or a bracketed note when there are none."""
    if turn.kind == "function_call":
        return tool_text(turn)
    text = escape_control(turn.text.replace("\n", " ").strip())
    if turn.kind == "image" and turn.role == "user":
        label = f"[{escape_control(turn.note or 'image')}]"
        return f"{label} {text}" if text else label
    if not text:
        if turn.role == "user" and turn.kind == "audio":
            secs = f"{turn.audio_ms / 1000:.1f} s " if turn.audio_ms else ""
            text = f"[{secs}speech, {turn.note or 'no transcript'}]"
        elif turn.interrupted:
            return "[interrupted before any words]"  # already says it was interrupted
        else:
            text = "[no text]"
    if turn.interrupted and turn.role == "assistant":
        text += " [interrupted]"
    return text


def tool_text(turn: Turn) -> str:
    """A function call on one line: ``name(args) -> result``, both cut short."""
    call = turn.tool_call
    if call is not None:
        name, args = call.name, call.arguments
    else:  # text not of a call's shape (a hand-edited file): shown as it is
        name, _, args = turn.text.partition("(")
    text = f"{name}({_abbreviate(args, TOOL_ARGS_CHARS)})"
    if turn.result is not None:
        text += f" -> {_abbreviate(turn.result, TOOL_RESULT_CHARS)}"
    elif turn.note:
        text += f" [{turn.note}]"
    return escape_control(text)


def _abbreviate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain_line(turn: Turn) -> str:
    """``you: …``, ``assistant: …``, ``tool: name(args) -> result``; an MCP server's call ``mcp: …``."""
    label = "mcp" if line_role(turn).startswith("mcp") else ROLE_LABEL.get(turn.role, turn.role)
    return f"{label}: {turn_text(turn)}"


def line_role(turn: Turn) -> str:
    """What a turn's line is styled as: its role, or ``mcp`` for a call the service made to an MCP
    server (``mcp_failed`` when it failed: the error style)."""
    call = turn.tool_call
    if call is None or not call.server:
        return turn.role
    return "mcp_failed" if turn.note == "failed" else "mcp"


Report = Callable[[str], None]


class Sink(Protocol):
    report: Report | None  # told, in one line, when the sink cannot write (and what it did instead)

    def write(self, turn: Turn) -> None: ...

    def close(self) -> None: ...


class StreamSink:
    """Plain ``you: …`` / ``assistant: …`` lines, flushed per line."""

    def __init__(self, stream: IO[str], report: Report | None = None) -> None:
        self.stream = stream
        self.broken = False
        self.report = report

    def write(self, turn: Turn) -> None:
        if self.broken:
            return
        try:
            self.stream.write(plain_line(scrubbed(turn)) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.broken = True
        except (OSError, ValueError) as exc:  # a full disk behind a redirection, a closed stream
            self.broken = True
            if self.report is not None:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.report(f"stdout: cannot write the transcript lines there any more ({why})")

    def close(self) -> None:
        pass


class FileSink:
    """A transcript file whose format follows its extension: .txt, .md or .jsonl.

    Opening it is the only step that can fail (`UsageError`: it cannot be created, or is a
    FIFO or a device); writing never raises (see the module docstring).
    """

    def __init__(self, path: Path, report: Report | None = None, *, label: str = "--transcript",
                 heading: str | None = None) -> None:
        if (problem := transcript_format_problem(path)) is not None:
            raise UsageError(problem, hint="name it chat.txt, chat.md or chat.jsonl")
        self.path = path
        self.format = path.suffix.lower() or ".txt"
        self.report = report
        # A Markdown file holds one section per conversation: the heading goes before its first turn.
        self._heading = f"## {heading}\n\n" if heading and self.format == ".md" else None
        try:
            self._out = RecordFile(path, label=label, report=self._report, mode=0o666)
        except OSError as exc:
            raise UsageError(f"cannot write transcript {path}: {exc.strerror or exc}") from None
        if self.format == ".md" and self._out.empty:
            self._out.append("# Conversation\n\n")

    def _report(self, message: str) -> None:
        if self.report is not None:
            self.report(message)

    @property
    def problem(self) -> str | None:
        """Why the file cannot be written right now (None while it can)."""
        return self._out.problem

    def write(self, turn: Turn) -> None:
        heading, self._heading = self._heading or "", None
        self._out.append(heading + self.render(scrubbed(turn)))

    def render(self, turn: Turn) -> str:
        if self.format == ".jsonl":
            return json_line(jsonl_record(turn)) + "\n"
        if self.format == ".md":
            who = {"user": "**You**", "assistant": "**Assistant**", "tool": "**Tool**"}.get(turn.role, turn.role)
            return f"{who}: {turn_text(turn)}\n\n"
        return plain_line(turn) + "\n"

    def close(self) -> None:
        self._out.close()


def session_heading(model: str, when: float | None = None) -> str:
    """What a conversation's section of a Markdown transcript is headed with: its start (local
    time) and model, so conversations appended to one file stay apart."""
    import time

    return f"{time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(when))} · {model}"


def jsonl_record(turn: Turn) -> dict[str, object]:
    record: dict[str, object] = {
        "role": turn.role,
        "text": turn.text,
        "item_id": turn.item_id,
        "start": round(turn.started_at, 3),
        "end": round(turn.ended_at, 3),
        "interrupted": turn.interrupted,
        "kind": turn.kind,
    }
    if turn.audio_ms:
        record["audio_ms"] = turn.audio_ms
    if turn.note:
        record["note"] = turn.note
    if turn.result is not None:
        record["result"] = turn.result
    if turn.call is not None and turn.call.server:
        record["mcp_server"] = turn.call.server
    if turn.usage is not None:
        u = turn.usage
        record["usage"] = {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
        }
    return record


# ---- reading a JSONL transcript back (--resume) ----------------------------------------------

RESUME_HINT = "--resume reads a transcript written with --transcript FILE.jsonl"
KINDS = ("audio", "text", "image", "function_call")


def read_jsonl(path: Path, on_torn: Report | None = None) -> list[Turn]:
    """The turns of a JSONL transcript (as `jsonl_record` writes them), in order.

    Blank lines are skipped. A record cut short (its writer was killed, the disk filled; a
    later append starts on a new line after it) is skipped where it is, and ``on_torn`` is told
    so in one line per record; without ``on_torn`` it is refused like the rest. Anything else
    that is not such a record is a `UsageError` naming the file and line, so a wrong file is
    refused before any connection is made.
    """
    try:
        text = read_limited(path, MAX_TRANSCRIPT_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint=RESUME_HINT) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read {path}: {reason}", hint=RESUME_HINT) from None
    turns = []
    lines = text.split("\n")  # JSON lines end at \n only
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            turns.append(turn_from_record(record))
        except (ValueError, TypeError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            if on_torn is not None and _cut_short(line, exc):
                on_torn(f"{path}, line {number}: skipped a record cut short ({len(line.encode())} bytes; a write "
                        "that was interrupted); the other lines are read")
                continue
            raise UsageError(f"{path}, line {number}: not a transcript record: {why}", hint=RESUME_HINT) from None
    return turns


def _cut_short(line: str, exc: Exception) -> bool:
    """Whether ``line`` is the start of a JSON object that ended early: the parser ran out of
    text (an unterminated string, or an error at the very end), not into a wrong character."""
    if not isinstance(exc, json.JSONDecodeError) or not line.lstrip().startswith("{"):
        return False
    if exc.msg.startswith("Unterminated string"):
        return True
    if exc.msg.startswith("Extra data"):  # a whole value, then more: not cut short
        return False
    return _PARTIAL_TOKEN.fullmatch(line[exc.pos :].rstrip()) is not None  # "1.", "fals", "\u00"


_PARTIAL_TOKEN = re.compile(r'[\w.+\-\\"]*')


def turn_from_record(record: object) -> Turn:
    """One `jsonl_record` back as a ``Turn``; ``ValueError`` says what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, found {type(record).__name__}")
    role = record.get("role")
    if role not in ROLE_LABEL:
        raise ValueError(f"'role' must be one of {', '.join(ROLE_LABEL)}, not {role!r}")
    kind = record.get("kind", "text")
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    usage = record.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise ValueError("'usage' must be an object")
        usage = Usage(**{k: _field(usage, k, int, 0) for k in ("input_tokens", "output_tokens", "total_tokens")})
    start = _field(record, "start", float, 0.0)
    server = _field(record, "mcp_server", str, None, optional=True)
    call = ToolCall.parse(_field(record, "text", str, None)) if server else None
    return Turn(
        role=role,
        text=_field(record, "text", str, None),
        item_id=_field(record, "item_id", str, ""),
        started_at=start,
        ended_at=_field(record, "end", float, start),
        interrupted=_field(record, "interrupted", bool, False),
        kind=kind,
        audio_ms=_field(record, "audio_ms", int, 0),
        usage=usage,
        note=_field(record, "note", str, None, optional=True),
        result=_field(record, "result", str, None, optional=True),
        call=ToolCall(call.name, call.arguments, server=server) if call is not None else None,
    )


def _field(record: dict, key: str, kind: type, default: object, *, optional: bool = False):  # type: ignore[no-untyped-def]
    """``record[key]`` checked to be of ``kind`` (ints pass as floats; ``default`` when absent)."""
    if key not in record or (optional and record[key] is None):
        if default is None and not optional:
            raise ValueError(f"missing '{key}'")
        return default
    value = record[key]
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ValueError(f"'{key}' must be {_KIND_NAMES[kind]}, not {json.dumps(value)[:40]}")
    return value


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
