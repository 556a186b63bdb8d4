"""The live panel's fixed lines (borders, header, activity, meters, stats, input), each laid out
once per value it shows.

The values come from frozen snapshots, so a line is cached by them the way a finished turn is
(``render._turn_rows``): while a reply streams, a redraw lays out only the lines whose values
changed (a meter, the stats), not the dozen Rich ``Text`` objects of the whole frame, which were
most of a redraw's layout. Also the helpers both modules use: one terminal line of server or
keyboard text (`safe_text`), cropped and padded to a width (`row`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any

from rich.cells import cell_len, get_character_cell_size
from rich.console import Console
from rich.segment import Segment
from rich.text import Text

from voicechat.escape import escape_control
from voicechat.ui.snapshot import CLOCK_MINUTES_FROM_S, Header, Stats

METER_CELLS = 24
METER_FLOOR_DB = -60.0  # the empty end of a level meter

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


_FIXED: dict[str, Callable[[Any, int], Text]] = {  # a line's builder, from the value it shows
    "header": lambda header, _: header_line(header),
    "rule": lambda _, inner: Text("─" * inner, style="dim"),
    "activity": lambda v, _: _activity_line(*v),
    "mic": lambda v, _: _meter("mic", v[0], dim=v[1]),
    "out": lambda db, _: _meter("out", db),
    "stats": lambda stats, _: _stats_line(stats),
    "input": lambda line, inner: _tail_line(Text("> ", style="bold"), safe_text(line), Text("▌"), inner),
    "status": lambda status, _: one_line(Text(safe_text(status), style="dim")),
}


@lru_cache(maxsize=128)
def fixed(kind: str, value: Hashable, console: Console, inner: int) -> tuple[Segment, ...]:
    """The fixed line ``kind`` showing ``value``, padded to ``inner`` cells."""
    return row(_FIXED[kind](value, inner), console, inner)


@lru_cache(maxsize=16)
def border(header: Header, console: Console, width: int,
           ascii_only: bool) -> tuple[tuple[Segment, ...], tuple[Segment, ...], Segment, Segment]:
    """The top border with its title, the bottom border, and the two sides of a line."""
    h, v = ("-", "|") if ascii_only else ("─", "│")
    corners = "++++" if ascii_only else "╭╮╰╯"
    title = _title(header)
    title.truncate(max(0, width - 6), overflow="ellipsis")
    fill = width - 4 - title.cell_len  # corner, rule, space, title, [space, rule...], corner
    top = Text.assemble(f"{corners[0]}{h} ", title, f" {h}" if fill >= 2 else " " * max(0, fill),
                        h * (fill - 2) if fill > 2 else "", corners[1])
    bottom = (Segment(corners[2] + h * (width - 2) + corners[3]),)
    return tuple(top.render(console)), bottom, Segment(v + " "), Segment(" " + v)


def header_line(header: Header) -> Text:
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
    return one_line(Text(" · ", style="dim").join(parts))


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


def _activity_line(activity: str, user: bool, assistant: bool, muted: bool, ptt: bool) -> Text:
    line = Text.assemble(
        (f"{safe_text(activity):<21}", _ACTIVITY_STYLE.get(activity, "")),
        "you ",
        _dot(user, "cyan"),
        "   assistant ",
        _dot(assistant, "magenta"),
    )
    if muted:
        line.append("   [muted]", style="bold red")
    if ptt:
        line.append("   [talking]", style="bold green")
    return one_line(line)


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
    return one_line(
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
    return one_line(Text(" · ", style="dim").join(parts))


def _tail_line(prefix: Text, text: str, suffix: Text, width: int) -> Text:
    """One line that keeps its end in view (the cursor) when too long for the width."""
    room = width - prefix.cell_len - suffix.cell_len
    if cell_len(text) > room:
        text = "…" + _tail_cells(text, room - 1)
    return one_line(Text.assemble(prefix, text, suffix))



def one_line(text: Text) -> Text:
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text



def safe_text(text: str) -> str:
    """Server or keyboard text made safe for one terminal line: no line breaks, no controls."""
    return escape_control(text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "))



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

def row(line: Text, console: Console, width: int) -> tuple[Segment, ...]:
    """One line's segments, cropped (or ellipsized, as the line asks) and padded to ``width``."""
    line.truncate(width, overflow=line.overflow or "crop", pad=True)
    return tuple(line.render(console))
