"""The panel as a live region under a log (issue 14 items 2-3, issue 15's idle redraws).

Finished turns and kept notices are printed above the panel once, labels in their colours; the
panel keeps only what is in progress; a snapshot of a quiet conversation equals the previous
one, so an idle panel writes nothing to the terminal.
"""

from __future__ import annotations

import io

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.style import Style

from voicechat.effects import Turn
from voicechat.ui import view as view_module
from voicechat.ui.live import LivePanel
from voicechat.ui.render import log_line, render
from voicechat.ui.snapshot import Header, Snapshot, TurnView
from voicechat.ui.view import Status, View


def console(width: int = 80, height: int = 30) -> Console:
    return Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="standard",
                   legacy_windows=False, _environ={})


def styles_of(text: str, renderable: object, con: Console) -> list[Style]:
    """The styles of the rendered segments whose text contains ``text``."""
    found = [seg.style for seg in con.render(renderable) if text in seg.text]  # type: ignore[arg-type]
    assert found, f"{text!r} is not drawn"
    return [s or Style() for s in found]


@pytest.mark.parametrize("width", [12, 13, 40, 61, 80, 120])
def test_every_panel_line_is_as_wide_as_the_panel(width: int) -> None:
    con = console(width=width)
    header = Header("gpt-realtime", "marin", "server VAD", "aec", "connected", 900.0)
    con.print(render(Snapshot(header=header, turns=(TurnView("user", "hello"),)), width=width, height=20))
    lines = con.file.getvalue()  # type: ignore[attr-defined]
    plain = Console(width=width, file=io.StringIO(), record=True, legacy_windows=False, _environ={})
    plain.print(render(Snapshot(header=header), width=width, height=20))
    widths = {cell_len(line) for line in plain.export_text().splitlines()}
    assert widths == {width}, (widths, plain.export_text())
    assert lines


def test_a_turn_colours_its_label_only_even_with_a_marker() -> None:
    con = console()
    reply = TurnView("assistant", "one two", interrupted=True, item_id="a")
    frame = render(Snapshot(turns=(TurnView("user", "hello there"), reply)), height=20)
    assert all(s.color is None for s in styles_of("hello there", frame, con))
    assert all(s.color is None for s in styles_of("one two", frame, con))
    assert any(s.color is not None and s.color.name == "cyan" for s in styles_of("you ", frame, con))
    assert any(s.color is not None and s.color.name == "magenta" for s in styles_of("assistant ", frame, con))


def test_notices_are_coloured_by_level() -> None:
    def label_colour(text: str) -> str | None:
        frame = render(Snapshot(turns=(TurnView("notice", text),)), height=20)
        style = styles_of("voicechat ", frame, console())[0]
        return style.color.name if style.color is not None else None

    assert label_colour("error: the server closed the connection") == "red"
    assert label_colour("warning: slow network") == "yellow"
    assert label_colour("server ws://127.0.0.1:1/v1/realtime, model x") is None  # quiet: dim


def test_log_line_colours_the_label_and_leaves_the_text() -> None:
    line = log_line("you: hello [interrupted]", "user")
    assert line.plain == "you: hello [interrupted]"
    con = console()
    assert [s.color.name for s in styles_of("you", line, con) if s.color] == ["cyan"]
    assert all(s.color is None for s in styles_of("hello", line, con))
    error = log_line("voicechat: error: no audio", "notice")
    assert [s.color.name for s in styles_of("voicechat", error, con) if s.color] == ["red"]


class Transcript:
    """Written turns, then an unwritten tail, as the session's transcript offers them."""

    def __init__(self) -> None:
        self.turns: list[tuple[Turn, bool]] = []
        self.written = 0

    def turns_from(self, start: int) -> list[tuple[Turn, bool]]:
        return self.turns[start:]


def turn(role: str, text: str, item: str) -> Turn:
    return Turn(role=role, text=text, item_id=item, started_at=0.0, ended_at=0.0)


class Settings:
    model, voice, vad = "gpt-realtime", "marin", "server"


def test_a_logging_panel_keeps_only_what_is_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(view_module.time, "monotonic", lambda: now[0])
    view = View(Settings(), "off")
    view.log_above = True
    transcript = Transcript()
    transcript.turns = [(turn("user", "hello", "u1"), True), (turn("assistant", "hi the", "a1"), False)]
    transcript.written = 1
    view.notice("server ws://127.0.0.1:9/v1/realtime, model gpt-realtime")
    shown = view.draw(Status(), transcript).turns
    assert [(t.role, t.text) for t in shown] == [("assistant", "hi the"), ("notice", shown[1].text)]
    now[0] += view_module.NOTICE_SECONDS + 0.1  # the notice is stale: gone
    assert [t.text for t in view.draw(Status(), transcript).turns] == ["hi the"]
    view.log_above = False  # a status log front end still sees the whole conversation
    assert [t.role for t in view.draw(Status(), transcript).turns] == ["notice", "user", "assistant"]


def test_a_quiet_conversation_draws_equal_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock and the meters change the snapshot only when what they show changes."""
    wall = [5000.0]
    monkeypatch.setattr(view_module.time, "time", lambda: wall[0])
    view = View(Settings(), "aec")
    view.log_above = True
    view.connection, view.expires_at = "connected", wall[0] + 1800.0
    transcript = Transcript()
    first = view.draw(Status(mic_db=-52.4, out_db=-200.0), transcript)
    for step in range(20):  # ten seconds of a room's noise, a few tenths of a dB either way
        wall[0] += 0.5
        again = view.draw(Status(mic_db=-52.4 + (0.4 if step % 2 else -0.4), out_db=-200.0), transcript)
        assert again == first
    wall[0] = view.expires_at - 30.0  # the last minutes count seconds
    assert view.draw(Status(mic_db=-52.4), transcript).header.seconds_left == 30.0


def test_an_idle_live_panel_writes_nothing_and_logs_above_itself() -> None:
    con = console()
    with LivePanel(console=con) as panel:
        panel.update(Snapshot(input_line="typing"))
        panel.log(log_line("you: hello", "user"))
        written = len(con.file.getvalue())  # type: ignore[attr-defined]
        for _ in range(100):
            panel.update(Snapshot(input_line="typing"))
        assert len(con.file.getvalue()) == written  # type: ignore[attr-defined]
    out = con.file.getvalue()  # type: ignore[attr-defined]
    assert out.count("hello") == 1 and "\x1b[1;36myou\x1b[0m: hello" in out
