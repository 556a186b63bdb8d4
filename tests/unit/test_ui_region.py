"""The live panel rewrites only the lines that changed; the screen must still show the panel.

A small terminal model (the codes the panel writes: text with wrap-pending at the last column,
CR, LF, cursor up/down, erase below, SGR and cursor visibility ignored) plays back what the panel
wrote, after generated sequences of updates, lines printed above and stray writes to a
redirected stderr. After each step the bottom of the screen must be exactly the panel as a fresh
full drawing would show it, and everything printed above must be in the scrollback once, in
order, whole.
"""

from __future__ import annotations

import io
import re
import sys

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from tests.helpers.fuzzing import fuzz_settings
from voicechat.ui.live import LivePanel
from voicechat.ui.render import frame_lines
from voicechat.ui.snapshot import Header, Snapshot, TurnView

WIDTH, HEIGHT = 48, 16
CODE = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])")


class Terminal:
    """Lines of cells with a scrollback; the cursor's row is counted from the top of the screen."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.scrollback: list[str] = []
        self.screen = [[" "] * width for _ in range(height)]
        self.row = self.col = 0
        self.pending = False  # a character was written in the last column

    def feed(self, data: str) -> None:
        i = 0
        while i < len(data):
            m = CODE.match(data, i)
            if m:
                self._code(m.group(1), m.group(2), m.group(3))
                i = m.end()
                continue
            ch = data[i]
            i += 1
            if ch == "\r":
                self.col, self.pending = 0, False
            elif ch == "\n":  # the tty turns it into CR LF (onlcr)
                self.col, self.pending = 0, False
                self._down_scrolling()
            else:
                if self.pending:
                    self.col, self.pending = 0, False
                    self._down_scrolling()
                self.screen[self.row][self.col] = ch
                if self.col == self.width - 1:
                    self.pending = True
                else:
                    self.col += 1

    def _down_scrolling(self) -> None:
        if self.row == self.height - 1:
            self.scrollback.append("".join(self.screen.pop(0)).rstrip())
            self.screen.append([" "] * self.width)
        else:
            self.row += 1

    def _code(self, private: str, args: str, final: str) -> None:
        if private or final == "m":
            return  # cursor visibility, colours
        n = int(args or "1")
        self.pending = False
        if final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self.row = min(self.height - 1, self.row + n)
        elif final == "J":
            assert args in ("", "0"), args
            self.screen[self.row][self.col :] = [" "] * (self.width - self.col)
            for r in range(self.row + 1, self.height):
                self.screen[r] = [" "] * self.width
        else:
            raise AssertionError(f"the panel wrote an unexpected code: {final!r}")

    def lines(self) -> list[str]:
        """Scrollback and screen, trailing blank lines dropped."""
        out = [*self.scrollback, *("".join(r).rstrip() for r in self.screen)]
        while out and not out[-1]:
            out.pop()
        return out


def console(stream: io.StringIO) -> Console:
    return Console(file=stream, force_terminal=True, width=WIDTH, height=HEIGHT, color_system=None,
                   legacy_windows=False, _environ={})


def expected_panel(snapshot: Snapshot) -> list[str]:
    con = console(io.StringIO())
    lines = frame_lines(snapshot, con, height=HEIGHT - 1)[: HEIGHT - 1]
    return ["".join(seg.text for seg in line).rstrip() for line in lines]


words = st.text(alphabet="abcdefghij klmnop", min_size=0, max_size=120)
turn = st.builds(TurnView, role=st.sampled_from(["user", "assistant", "notice"]), text=words,
                 final=st.booleans())
snapshot = st.builds(
    Snapshot,
    header=st.just(Header("gpt-realtime", "marin", "server VAD", "aec", "connected")),
    turns=st.lists(turn, max_size=6).map(tuple),
    activity=st.sampled_from(["idle", "listening", "assistant speaking"]),
    mic_dbfs=st.one_of(st.none(), st.floats(-70, 0)),
    output_dbfs=st.one_of(st.none(), st.floats(-70, 0)),
    input_line=st.text(alphabet="xyz ", max_size=8),
    status=st.one_of(st.none(), st.just("muted: press m")),
)
step = st.one_of(
    st.tuples(st.just("update"), snapshot),
    st.tuples(st.just("log"), st.text(alphabet="qrstuvw", min_size=1, max_size=WIDTH - 8)),
    st.tuples(st.just("stderr"), st.text(alphabet="QRSTUVW", min_size=1, max_size=30)),
)


@fuzz_settings(200)
@given(steps=st.lists(step, min_size=1, max_size=12), transient=st.booleans())
def test_the_screen_always_shows_the_latest_panel_under_everything_printed(
    steps: list[tuple[str, object]], transient: bool
) -> None:
    stream = io.StringIO()
    term = Terminal(WIDTH, HEIGHT)
    printed: list[str] = []
    latest = Snapshot()
    saved = sys.stderr
    panel = LivePanel(console=console(stream), transient=transient)
    with panel:
        assert sys.stderr is not saved  # stray writes go above the panel
        for kind, value in steps:
            if kind == "update":
                assert isinstance(value, Snapshot)
                latest = value
                panel.update(value)
            elif kind == "log":
                panel.log(Text(str(value)))
                printed.append(str(value))
            else:
                print(value, file=sys.stderr)
                printed.append(str(value))
            term.feed(stream.getvalue())
            stream.seek(0)
            stream.truncate()
            shown = term.lines()
            panel_lines = expected_panel(latest)
            assert shown[-len(panel_lines) :] == panel_lines
            above = [line for line in shown[: -len(panel_lines)] if line]
            assert above == [p.rstrip() for p in printed]  # each line once, in order, whole
    assert sys.stderr is saved
    term.feed(stream.getvalue())
    after = term.lines()
    if transient:
        assert [line for line in after if line] == [p.rstrip() for p in printed]
    else:
        assert after[-len(expected_panel(latest)) :] == expected_panel(latest)
        on_screen = len(after) - len(term.scrollback)
        assert term.row == min(HEIGHT - 1, on_screen)  # the shell prompt comes on the line after the panel


def test_an_unchanged_line_is_not_written_again() -> None:
    stream = io.StringIO()
    turns = tuple(TurnView("user", f"line {i} " * 3) for i in range(3))
    with LivePanel(console=console(stream)) as panel:
        panel.update(Snapshot(turns=turns, mic_dbfs=-40.0))
        stream.seek(0)
        stream.truncate()
        panel.update(Snapshot(turns=turns, mic_dbfs=-20.0))  # only the microphone's meter moved
        written = stream.getvalue()
    assert "line 0" not in written and "mic" in written
    assert written.count("\n") == 0  # one line rewritten in place: the cursor moves, nothing scrolls
