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

from collections.abc import Sequence
from functools import lru_cache

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

from voicechat.ui.lines import border, fixed, row, safe_text
from voicechat.ui.snapshot import Snapshot, TurnView

DEFAULT_MAX_TURNS = 100  # more than any terminal shows; the layout stops earlier anyway
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
        rule = fixed("rule", None, console, inner)
        shown = [("activity", (s.activity, s.user_speaking, s.assistant_speaking, s.muted, s.ptt_talking)),
                 ("mic", (s.mic_dbfs, s.muted)), ("out", s.output_dbfs), ("stats", s.stats), ("input", s.input_line)]
        if s.status:
            shown.append(("status", s.status))
        lines = [rule, *(fixed(kind, value, console, inner) for kind, value in shown)]
        avail = self.height if self.height is not None else options.max_height
        rows = max(MIN_CONVERSATION_ROWS, avail - (2 + 2 + len(lines)))
        conversation = _conversation(self.turns, console, inner, rows)
        top, bottom, left, right = border(s.header, console, width, options.ascii_only)
        middle = (fixed("header", s.header, console, inner), rule, *conversation, *lines)
        return [top, *((left, *line, right) for line in middle), bottom]


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
        return [row(Text("speak, or type a message and press enter", style="dim italic"), console, inner)]
    return lines


@lru_cache(maxsize=256)
def _turn_rows(view: TurnView, console: Console, text_width: int, rows: int) -> tuple[tuple[Segment, ...], ...]:
    """A turn's last ``rows`` screen rows. Cached: a finished turn is laid out once, not per frame
    (views are frozen, so an unchanged turn is an equal key)."""
    width = LABEL_CELLS + text_width
    return tuple(row(line, console, width) for line in _turn_lines(view, console, text_width, rows))


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


# ---- helpers ---------------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= TOOL_FIELD_CHARS else text[: TOOL_FIELD_CHARS - 1] + "…"
