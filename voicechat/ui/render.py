"""Draw a :class:`Snapshot` as one Rich panel.

``render`` is pure: it reads the snapshot and returns a renderable, with no clock, no terminal
query and no output. Rich lays the renderable out when a console prints it; the conversation
is laid out newest first and stops as soon as the screen is full, so the cost of a redraw
depends on the panel's height, not on the length of the conversation.

Every string that came from the server or the keyboard goes into a ``rich.text.Text`` (never
through markup) after ``escape_control``; colour is only ever a style name, so a console with
``NO_COLOR`` or no colour system prints no colour codes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from rich.cells import cell_len, get_character_cell_size
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

from voicechat.escape import escape_control
from voicechat.ui.snapshot import CLOCK_MINUTES_FROM_S, Header, Snapshot, Stats, TurnView

DEFAULT_MAX_TURNS = 100  # more than any terminal shows; the layout stops earlier anyway
METER_CELLS = 24
METER_FLOOR_DB = -60.0  # the empty end of a level meter
LABEL_CELLS = 10  # "assistant" plus a space; wrapped turn text hangs under it
TOOL_FIELD_CHARS = 160  # tool arguments and results are cut to this many characters
MIN_CONVERSATION_ROWS = 1

_LABEL = {"user": "you", "assistant": "assistant", "tool": "tool", "mcp": "mcp", "notice": "voicechat"}
_ROLE_STYLE = {
    "user": "bold cyan",
    "assistant": "bold magenta",
    "tool": "bold yellow",
    "mcp": "bold yellow",
    "mcp_failed": "bold red",  # a failed MCP call: the error style, its line too
}
# A notice of voicechat's own is styled by its level, read from its prefix: errors stand out,
# warnings less, information (a connection, a command's answer) stays quiet.
_NOTICE_STYLE = (("error:", "bold red"), ("warning:", "yellow"))
_INFO_STYLE = "dim"
_CONNECTION_STYLE = {
    "connecting": "yellow",
    "connected": "green",
    "reconnecting": "bold yellow",
    "closed": "red",
}
_ACTIVITY_STYLE = {
    "idle": "dim",
    "listening": "green",
    "user speaking": "bold cyan",
    "committed": "cyan",
    "thinking": "yellow",
    "assistant speaking": "bold magenta",
}


def render(
    snapshot: Snapshot,
    *,
    width: int | None = None,
    height: int | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
) -> RenderableType:
    """The live panel for ``snapshot``.

    ``width`` fixes the panel's width (default: the console's). ``height`` bounds the panel's
    height (default: the console's); the conversation gets whatever the fixed lines leave.
    Only the newest ``max_turns`` turns are even looked at.
    """
    turns = snapshot.turns[-max_turns:] if max_turns > 0 else ()
    return _Frame(snapshot, turns, width=width, height=height)


class _Frame:
    """The panel laid out line by line: a rounded box around one-row lines.

    Every row is built as one ``Text`` cropped or padded to the inner width, and the box is drawn
    here rather than by nesting Rich's ``Panel`` and ``Group``: each level of nesting re-splits
    and re-measures every segment, which was most of a redraw's cost.
    """

    def __init__(self, snapshot: Snapshot, turns: Sequence[TurnView], *, width: int | None,
                 height: int | None) -> None:
        self.snapshot, self.turns, self.width, self.height = snapshot, turns, width, height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        for line in self.lines(console, options):
            yield from line
            yield newline

    def lines(self, console: Console, options: ConsoleOptions) -> list[tuple[Segment, ...]]:
        """The panel's screen lines, each exactly the panel's width (no newlines)."""
        s = self.snapshot
        width = max(12, min(self.width or options.max_width, options.max_width))
        inner = width - 4  # borders and one cell of padding on each side
        rule = Text("─" * inner, style="dim")
        fixed = [
            rule,
            _activity_line(s),
            _meter("mic", s.mic_dbfs, dim=s.muted),
            _meter("out", s.output_dbfs),
            _stats_line(s.stats),
            _tail_line(Text("> ", style="bold"), safe_text(s.input_line), Text("▌"), inner),
        ]
        if s.status:
            fixed.append(_one_line(Text(safe_text(s.status), style="dim")))
        avail = self.height if self.height is not None else options.max_height
        rows = max(MIN_CONVERSATION_ROWS, avail - (2 + 2 + len(fixed)))
        conversation = _conversation(self.turns, console, inner, rows)
        ascii_only = options.ascii_only
        h, v = ("-", "|") if ascii_only else ("─", "│")
        corners = "++++" if ascii_only else "╭╮╰╯"
        title = _title(s.header)
        title.truncate(max(0, width - 6), overflow="ellipsis")
        fill = width - 4 - title.cell_len  # corner, rule, space, title, [space, rule...], corner
        top = Text.assemble(f"{corners[0]}{h} ", title, f" {h}" if fill >= 2 else " " * max(0, fill),
                            h * (fill - 2) if fill > 2 else "", corners[1])
        left, right = Segment(v + " "), Segment(" " + v)
        return [
            tuple(top.render(console)),
            *((left, *row, right) for row in (_row(_header_line(s.header), console, inner), _row(rule, console, inner),
                                              *conversation, *(_row(line, console, inner) for line in fixed))),
            (Segment(corners[2] + h * (width - 2) + corners[3]),),
        ]


def frame_lines(snapshot: Snapshot, console: Console, *, height: int) -> list[tuple[Segment, ...]]:
    """The live panel for ``snapshot`` as screen lines for ``console``, at most ``height`` of them
    (`render` laid out without Rich's line splitting: the live panel writes these itself)."""
    frame = _Frame(snapshot, snapshot.turns[-DEFAULT_MAX_TURNS:], width=None, height=height)
    return frame.lines(console, console.options)


# ---- the conversation ------------------------------------------------------------------------


def _conversation(turns: Sequence[TurnView], console: Console, inner: int, rows: int) -> list[tuple[Segment, ...]]:
    """The newest turns that fit in ``rows`` lines, wrapped under a role label."""
    text_width = max(8, inner - LABEL_CELLS)
    blocks: list[tuple[tuple[Segment, ...], ...]] = []
    used = 0
    for view in reversed(turns[-rows:]):  # every turn takes at least one row
        block = _turn_rows(view, console, text_width, rows - used)
        blocks.append(block)
        used += len(block)
        if used >= rows:
            break
    lines = [line for block in reversed(blocks) for line in block][-rows:]
    if not lines:
        return [_row(Text("speak, or type a message and press enter", style="dim italic"), console, inner)]
    return lines


def _row(line: Text, console: Console, width: int) -> tuple[Segment, ...]:
    """One line's segments, cropped (or ellipsized, as the line asks) and padded to ``width``."""
    line.truncate(width, overflow=line.overflow or "crop", pad=True)
    return tuple(line.render(console))


@lru_cache(maxsize=256)
def _turn_rows(view: TurnView, console: Console, text_width: int, rows: int) -> tuple[tuple[Segment, ...], ...]:
    """A turn's last ``rows`` screen rows. Cached: a finished turn is laid out once, not per frame
    (views are frozen, so an unchanged turn is an equal key)."""
    width = LABEL_CELLS + text_width
    return tuple(_row(line, console, width) for line in _turn_lines(view, console, text_width, rows))


def _turn_lines(view: TurnView, console: Console, text_width: int, rows: int) -> list[Text]:
    body = _turn_body(view, max_chars=rows * text_width)
    wrapped = body.wrap(console, text_width, overflow="fold")
    label = _LABEL.get(view.role, view.role)[: LABEL_CELLS - 1]
    style = _label_style(view.role, view.text)
    lines: list[Text] = []
    for i, part in enumerate(wrapped):
        # The label's style is a span of its own: ``Text + Text`` would make it the whole line's.
        line = Text.assemble((label.ljust(LABEL_CELLS), style) if i == 0 else " " * LABEL_CELLS)
        line.append_text(part)
        lines.append(line)
    return lines[-rows:]


def _label_style(role: str, text: str) -> str:
    if role != "notice":
        return _ROLE_STYLE.get(role, "bold")
    return next((style for prefix, style in _NOTICE_STYLE if text.startswith(prefix)), _INFO_STYLE)


def log_line(line: str, role: str) -> Text:
    """A finished line for the log above the live panel: ``line`` as it is written to a plain
    stdout (``you: …``, ``voicechat: error: …``), with only its label (up to the first colon) in
    the role's colour, or a notice's by its level. ``line`` must already be safe for a terminal."""
    label, colon, rest = line.partition(": ")
    if not colon:
        return Text(line)
    return Text.assemble((label, _label_style(role, rest)), colon, (rest, "red" if role == "mcp_failed" else ""))


def _turn_body(view: TurnView, *, max_chars: int) -> Text:
    """The text of one turn, styled; only its last ``max_chars`` characters when longer."""
    if view.role in ("tool", "mcp") and view.tool_name is not None:
        return _tool_body(view)
    text = safe_text(view.text)
    if len(text) > max_chars:
        text = "…" + text[-max_chars:]
    out = Text(text, style=_INFO_STYLE if view.role == "notice" and _label_style("notice", text) == _INFO_STYLE
               else "")
    if view.role == "assistant" and view.interrupted:
        out.append("…" if text else "[interrupted before any words]", style="dim")
        out.append(" [interrupted]" if text else "", style="bold red")
    elif not text:
        out.append(_wordless(view), style="dim italic")
    elif not view.final:
        out.append(" ▌", style="dim")  # still streaming
    if view.note and text and view.kind == "image":
        out = Text.assemble((f"[{safe_text(view.note)}] ", "dim italic"), out)
    elif view.note and text:
        out.append(f" ({safe_text(view.note)})", style="dim")
    return out


def _wordless(view: TurnView) -> str:
    if view.role == "user" and view.kind == "image":
        return f"[{safe_text(view.note or 'image')}]"
    if view.role == "user" and view.kind == "audio":
        if not view.final:
            return "[transcribing…]"
        secs = f"{view.audio_ms / 1000:.1f} s " if view.audio_ms else ""
        return f"[{secs}speech, {safe_text(view.note or 'no transcript')}]"
    return "…" if not view.final else "[no text]"


def _tool_body(view: TurnView) -> Text:
    out = Text(safe_text(view.tool_name or ""), style="bold")
    out.append("(")
    out.append(_cut(safe_text(view.tool_args or "")), style="dim")
    out.append(")")
    if view.tool_result is not None:
        out.append(" → ")
        out.append(_cut(safe_text(view.tool_result)), style="red" if view.note == "failed" else "")
    elif view.final and view.note:
        out.append(f" ({safe_text(view.note)})", style="dim")
    else:
        out.append(" …", style="dim")  # still running
    return out


# ---- the fixed lines -------------------------------------------------------------------------


def _header_line(header: Header) -> Text:
    parts: list[Text] = []
    for value, prefix in (
        (header.profile, "profile "),
        (header.model, ""),
        (header.voice, "voice "),
        (header.reasoning, "reasoning "),
        (header.audio_format, ""),
        (header.turn_mode, ""),
        (header.echo, "echo "),
    ):
        if value:
            parts.append(Text(prefix + safe_text(value)))
    return _one_line(Text(" · ", style="dim").join(parts))


def _title(header: Header) -> Text:
    """The top border: the connection and the session's time left, which must stay visible."""
    title = Text.assemble(
        ("voicechat", "bold"),
        (" · ", "dim"),
        (safe_text(header.connection), _CONNECTION_STYLE.get(header.connection, "")),
    )
    if header.seconds_left is not None:
        title.append(" · ", style="dim")
        title.append(f"{_clock(header.seconds_left)} left")
    return title


def _activity_line(s: Snapshot) -> Text:
    line = Text.assemble(
        (f"{safe_text(s.activity):<21}", _ACTIVITY_STYLE.get(s.activity, "")),
        "you ",
        _dot(s.user_speaking, "cyan"),
        "   assistant ",
        _dot(s.assistant_speaking, "magenta"),
    )
    if s.muted:
        line.append("   [muted]", style="bold red")
    if s.ptt_talking:
        line.append("   [talking]", style="bold green")
    return _one_line(line)


def _dot(on: bool, style: str) -> tuple[str, str]:
    return ("●", f"bold {style}") if on else ("○", "dim")


def _meter(label: str, dbfs: float | None, *, dim: bool = False) -> Text:
    if dbfs is None or math.isnan(dbfs):
        filled, reading = 0, "     — dBFS"
    elif dbfs == -math.inf:
        filled, reading = 0, "    -∞ dBFS"
    else:
        frac = min(1.0, max(0.0, (dbfs - METER_FLOOR_DB) / -METER_FLOOR_DB))
        filled, reading = round(frac * METER_CELLS), f"{dbfs:6.1f} dBFS"
    if dim:
        style = "dim"
    elif dbfs is not None and dbfs >= -3.0:
        style = "red"
    elif dbfs is not None and dbfs >= -12.0:
        style = "yellow"
    else:
        style = "green"
    return _one_line(
        Text.assemble(
            (f"{label:<4}", "bold"),
            ("█" * filled, style),
            ("░" * (METER_CELLS - filled), "dim"),
            " ",
            reading,
        )
    )


def _stats_line(stats: Stats) -> Text:
    latency = "—" if stats.latency_ms is None else f"{stats.latency_ms:.0f} ms"
    parts = [
        Text(f"latency {latency}"),
        Text(f"underruns {stats.underruns}", style="bold red" if stats.underruns else ""),
        Text(f"tokens {stats.tokens_in:,} in / {stats.tokens_out:,} out"),
        Text("cost n/a" if stats.cost_usd is None
             else _dollars(stats.cost_usd) + (" estimated" if stats.cost_estimated else "")),
    ]
    return _one_line(Text(" · ", style="dim").join(parts))


def _tail_line(prefix: Text, text: str, suffix: Text, width: int) -> Text:
    """One line that keeps its end in view (the cursor) when too long for the width."""
    room = width - prefix.cell_len - suffix.cell_len
    if cell_len(text) > room:
        text = "…" + _tail_cells(text, room - 1)
    return _one_line(Text.assemble(prefix, text, suffix))


# ---- helpers ---------------------------------------------------------------------------------


def _one_line(text: Text) -> Text:
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def safe_text(text: str) -> str:
    """Server or keyboard text made safe for one terminal line: no line breaks, no controls."""
    return escape_control(text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


def _cut(text: str) -> str:
    return text if len(text) <= TOOL_FIELD_CHARS else text[: TOOL_FIELD_CHARS - 1] + "…"


def _tail_cells(text: str, cells: int) -> str:
    used = 0
    start = len(text)
    while start > 0 and used + get_character_cell_size(text[start - 1]) <= cells:
        start -= 1
        used += get_character_cell_size(text[start])
    return text[start:]


def _clock(seconds: float) -> str:
    """Time left: whole minutes while there is plenty (a clock ticking every second would redraw
    an idle panel every second), minutes and seconds for the last ten."""
    if seconds > CLOCK_MINUTES_FROM_S:
        return f"{math.ceil(seconds / 60)} min"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _dollars(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 10 else f"${usd:.4f}"
