"""The live panel: pure rendering to capture consoles, and the live / plain front ends."""

from __future__ import annotations

import io
import re
import sys

import pytest
from rich.cells import cell_len
from rich.console import Console

from voicechat import effects as fx
from voicechat.protocol import SessionConfig
from voicechat.protocol import events as ev
from voicechat.session import Activity, Session
from voicechat.ui import render as render_module
from voicechat.ui.lines import METER_CELLS
from voicechat.ui.live import LivePanel, PlainStatus
from voicechat.ui.render import render
from voicechat.ui.snapshot import Header, Snapshot, Stats, TurnView

WIDTH = 80
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def capture(*, height: int = 40, terminal: bool = False, **kw: object) -> Console:
    return Console(
        width=WIDTH,
        height=height,
        record=True,
        file=io.StringIO(),
        force_terminal=terminal,
        color_system=kw.pop("color_system", None),  # type: ignore[arg-type]
        legacy_windows=False,
        _environ=kw.pop("environ", {}),  # type: ignore[arg-type]
    )


def draw(snapshot: Snapshot, *, height: int = 40, **kw: int) -> str:
    console = capture(height=height)
    console.print(render(snapshot, **kw))
    text = console.export_text()
    assert all(cell_len(line) <= WIDTH for line in text.splitlines())
    return text


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


# ---- header, activity, indicators ------------------------------------------------------------


def test_header_shows_model_voice_modes_connection_and_time_left() -> None:
    header = Header("gpt-realtime", "marin", "semantic VAD", "gate", "reconnecting", 573.9)
    text = draw(Snapshot(header=header))
    assert text.startswith("╭─ voicechat · reconnecting · 9:33 left ─")
    line = line_with(text, "gpt-realtime")
    assert "gpt-realtime · voice marin · semantic VAD · echo gate" in line


@pytest.mark.parametrize("activity", [a.value for a in Activity])
def test_every_activity_state_is_shown(activity: str) -> None:
    line = line_with(draw(Snapshot(activity=activity)), "assistant ○")
    assert line.split("│")[1].strip().startswith(activity)


@pytest.mark.parametrize(("user", "assistant"), [(True, False), (False, True), (True, True)])
def test_speaking_indicators_for_both_sides(user: bool, assistant: bool) -> None:
    text = draw(Snapshot(user_speaking=user, assistant_speaking=assistant))
    assert ("you ●" in text) is user and ("you ○" in text) is not user
    assert ("assistant ●" in text) is assistant and ("assistant ○" in text) is not assistant


def test_muted_and_push_to_talk_are_marked_only_when_on() -> None:
    plain = draw(Snapshot())
    assert "[muted]" not in plain and "[talking]" not in plain
    assert "[muted]" in draw(Snapshot(muted=True))
    assert "[talking]" in draw(Snapshot(ptt_talking=True, activity="user speaking"))


# ---- the conversation ------------------------------------------------------------------------


def test_empty_conversation_shows_a_hint() -> None:
    assert "speak, or type a message" in draw(Snapshot())


def test_long_turn_wraps_under_its_label_and_keeps_every_word() -> None:
    words = [f"w{i:03d}" for i in range(90)]
    text = draw(Snapshot(turns=(TurnView("user", " ".join(words)),)))
    rows = [line for line in text.splitlines() if "w0" in line]
    assert len(rows) >= 5
    assert rows[0].startswith("│ you ")
    assert all(row.startswith("│" + " " * 11 + "w") for row in rows[1:])  # hanging indent
    assert all(word in text for word in words)


def test_interrupted_reply_shows_only_the_heard_words_and_a_marker() -> None:
    # A real barge-in through the session core: 24000 samples received, 12000 played.
    s = Session(SessionConfig(transcribe_model=None))
    s.handle(ev.SessionCreated("e", {"id": "sess"}), 0.0)
    s.handle(ev.SessionUpdated("e", {"id": "sess"}), 0.1)
    user = ev.Item("u1", "message", "user", "completed", (ev.ContentPart("input_audio"),))
    for event in (
        ev.SpeechStarted("e", "u1", 1000),
        ev.SpeechStopped("e", "u1", 2500),
        ev.BufferCommitted("e", "u1", None),
        ev.ItemAdded("e", user, None),
        ev.ItemDone("e", user, None),
        ev.ResponseCreated("e", ev.Response("r1", "in_progress")),
    ):
        s.handle(event, 2.0)
    reply = ev.Item("a1", "message", "assistant", "in_progress")
    s.handle(ev.OutputItemAdded("e", "r1", 0, reply), 3.0)
    s.handle(ev.ItemAdded("e", reply, None), 3.0)
    s.handle(ev.AudioTranscriptDelta("e", "r1", "a1", 0, 0, "one two "), 3.0)
    s.handle(ev.AudioDelta("e", "r1", "a1", 0, 0, b"\x01\x00" * 12000), 3.0)
    s.handle(ev.AudioTranscriptDelta("e", "r1", "a1", 0, 0, "three four"), 3.0)
    s.handle(ev.AudioDelta("e", "r1", "a1", 0, 0, b"\x01\x00" * 12000), 3.0)
    s.handle(ev.SpeechStarted("e", "u2", 9000), 4.0)
    s.playback_flushed({"a1": 12000}, 4.0)
    assistant = next(t for t in s.transcript() if t.role == "assistant")
    assert assistant.interrupted

    text = draw(Snapshot(turns=tuple(TurnView.from_turn(t) for t in s.transcript())))
    line = line_with(text, "assistant one")
    assert "one two… [interrupted]" in line
    assert "three" not in text and "four" not in text


def test_interrupted_before_any_words() -> None:
    text = draw(Snapshot(turns=(TurnView("assistant", "", interrupted=True),)))
    assert "[interrupted before any words]" in text


def test_tool_call_is_shown_as_name_args_arrow_result() -> None:
    done = TurnView(
        "tool",
        kind="function_call",
        tool_name="get_weather",
        tool_args='{"city": "Paris"}',
        tool_result='{"temp_c": 21}',
    )
    assert 'tool      get_weather({"city": "Paris"}) → {"temp_c": 21}' in draw(
        Snapshot(turns=(done,))
    )
    pending = TurnView("tool", kind="function_call", tool_name="now", tool_args="{}", final=False)
    assert "now({}) …" in draw(Snapshot(turns=(pending,)))


def test_tool_turn_from_the_session_is_split_into_name_and_arguments() -> None:
    turn = fx.Turn("tool", 'lookup({"q": "a(b)"})', "t1", 0.0, 0.0, kind="function_call")
    view = TurnView.from_turn(turn, tool_result="42")
    assert (view.tool_name, view.tool_args, view.tool_result) == ("lookup", '{"q": "a(b)"}', "42")
    assert 'lookup({"q": "a(b)"}) → 42' in draw(Snapshot(turns=(view,)))


def test_streaming_reply_has_a_cursor_until_final() -> None:
    streaming = draw(Snapshot(turns=(TurnView("assistant", "Half a sent", final=False),)))
    assert "Half a sent ▌" in streaming
    final = draw(Snapshot(turns=(TurnView("assistant", "Half a sentence."),)))
    assert "Half a sentence. " in final and "sentence. ▌" not in final


def test_user_speech_without_words() -> None:
    waiting = TurnView("user", kind="audio", final=False)
    assert "[transcribing…]" in draw(Snapshot(turns=(waiting,)))
    none = TurnView("user", kind="audio", audio_ms=1200, note="no transcript")
    assert "[1.2 s speech, no transcript]" in draw(Snapshot(turns=(none,)))


def test_assistant_turn_without_words() -> None:
    assert "assistant …" in draw(Snapshot(turns=(TurnView("assistant", "", final=False),)))
    assert "assistant [no text]" in draw(Snapshot(turns=(TurnView("assistant", ""),)))


def test_notice_turns_are_labelled_as_voicechat() -> None:
    text = draw(Snapshot(turns=(TurnView("notice", "reconnecting in 2 s"),)))
    assert "voicechat reconnecting in 2 s" in text


def many_turns(n: int, words: int = 60) -> tuple[TurnView, ...]:
    filler = " ".join(["word"] * words)
    return tuple(
        TurnView("user" if i % 2 else "assistant", f"turn-{i:03d} {filler}", item_id=f"i{i}")
        for i in range(n)
    )


def test_500_turns_show_only_the_newest_within_the_height() -> None:
    text = draw(Snapshot(turns=many_turns(500)), height=30)
    assert len(text.splitlines()) == 30
    assert "turn-499" in text and "turn-498" in text
    assert "turn-000" not in text and "turn-400" not in text
    assert "latency" in text  # the fixed lines at the bottom survive


def test_without_a_height_the_console_height_bounds_the_panel() -> None:
    console = capture(height=24)
    console.print(render(Snapshot(turns=many_turns(500))))
    assert len(console.export_text().splitlines()) == 24


def test_layout_only_touches_the_turns_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    laid_out: list[TurnView] = []
    real = render_module._turn_lines

    def counting(view: TurnView, *args: object) -> list:
        laid_out.append(view)
        return real(view, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(render_module, "_turn_lines", counting)
    draw(Snapshot(turns=many_turns(500, words=3)), height=30)
    assert 0 < len(laid_out) <= 30 - 10
    assert laid_out[0].item_id == "i499"


def test_max_turns_limits_what_is_considered() -> None:
    text = draw(Snapshot(turns=many_turns(10, words=1)), max_turns=3)
    assert "turn-009" in text and "turn-007" in text and "turn-006" not in text


def test_one_huge_streaming_turn_shows_its_end() -> None:
    huge = " ".join(f"x{i}" for i in range(20000)) + " THE-END"
    text = draw(Snapshot(turns=(TurnView("assistant", huge, final=False),)), height=20)
    assert len(text.splitlines()) == 20
    assert "THE-END ▌" in text and "x0 " not in text


# ---- safety: markup, control characters, colour ----------------------------------------------

HOSTILE = "[bold red]loud[/] :smile: \x1b[2J\x1b]0;pwned\x07 end\r\nnext"


def test_markup_and_control_characters_from_the_server_are_literal() -> None:
    snapshot = Snapshot(
        header=Header(model="[blink]m\x1b[5m"),
        turns=(TurnView("assistant", HOSTILE), TurnView("notice", "err \x9b31m")),
        input_line="typed [i]x[/i]\x1b",
        status="status \x08[u]",
    )
    console = capture(terminal=False)
    console.print(render(snapshot))
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b" not in raw and "\x07" not in raw and "\x9b" not in raw and "\x08" not in raw
    assert "[bold red]loud[/] :smile: \\x1b[2J\\x1b]0;pwned\\x07 end next" in raw
    assert "[blink]m\\x1b[5m" in raw and "err \\x9b31m" in raw
    assert "typed [i]x[/i]\\x1b▌" in raw and "status \\x08[u]" in raw


def sgr_params(raw: str) -> set[str]:
    return {p for group in SGR.findall(raw) for p in group.split(";") if p}


COLOUR_PARAMS = {str(n) for n in (*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108))}
LIVELY = Snapshot(
    header=Header("gpt-realtime", connection="connected"),
    turns=(TurnView("user", "hi"), TurnView("assistant", "hello", interrupted=True)),
    activity="assistant speaking",
    assistant_speaking=True,
    mic_dbfs=-1.0,
    output_dbfs=-20.0,
    muted=True,
)


def test_colour_appears_on_a_colour_terminal() -> None:
    console = capture(terminal=True, color_system="standard")
    console.print(render(LIVELY))
    assert sgr_params(console.file.getvalue()) & COLOUR_PARAMS  # type: ignore[attr-defined]


def test_no_color_leaves_no_colour_codes() -> None:
    console = capture(terminal=True, color_system="standard", environ={"NO_COLOR": "1"})
    console.print(render(LIVELY))
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    assert not sgr_params(raw) & COLOUR_PARAMS
    assert "[interrupted]" in raw  # meaning survives without colour


def test_console_without_colour_system_prints_no_escapes_at_all() -> None:
    console = capture(terminal=True, color_system=None)
    console.print(render(LIVELY))
    assert "\x1b" not in console.file.getvalue()  # type: ignore[attr-defined]


# ---- meters, stats, input --------------------------------------------------------------------


def bar(text: str, label: str) -> int:
    return line_with(text, f"│ {label} ").count("█")


def test_louder_level_gives_a_longer_bar() -> None:
    quiet, loud = draw(Snapshot(mic_dbfs=-45.0)), draw(Snapshot(mic_dbfs=-10.0))
    assert 0 < bar(quiet, "mic") < bar(loud, "mic") < METER_CELLS
    assert bar(draw(Snapshot(output_dbfs=-30.0)), "out") == METER_CELLS // 2
    assert bar(draw(Snapshot(output_dbfs=3.0)), "out") == METER_CELLS  # clipped: full, not more
    assert bar(draw(Snapshot(output_dbfs=-90.0)), "out") == 0


def test_silence_and_no_signal_read_differently() -> None:
    text = draw(Snapshot(mic_dbfs=float("-inf"), output_dbfs=None))
    assert "-∞ dBFS" in line_with(text, "│ mic ") and bar(text, "mic") == 0
    assert "— dBFS" in line_with(text, "│ out ")


def test_stats_show_latency_underruns_tokens_and_dollars() -> None:
    stats = Stats(latency_ms=420.4, underruns=2, tokens_in=12345, tokens_out=678, cost_usd=0.0123)
    line = line_with(draw(Snapshot(stats=stats)), "latency")
    assert "latency 420 ms" in line and "underruns 2" in line
    assert "tokens 12,345 in / 678 out" in line and "$0.0123" in line
    unknown = line_with(draw(Snapshot(stats=Stats())), "latency")
    assert "latency —" in unknown and "cost n/a" in unknown and "$" not in unknown


def test_stats_from_usage_prices_the_model() -> None:
    usage = ev.Usage(input_tokens=1000, output_tokens=500, input_audio=1000, output_audio=500)
    stats = Stats.from_usage("gpt-realtime-2025-08-28", usage, latency_ms=300.0, underruns=1)
    assert stats.cost_usd == pytest.approx(0.064)  # 1000 x 32 + 500 x 64 per million
    assert "$0.0640" in draw(Snapshot(stats=stats)) and "estimated" not in draw(Snapshot(stats=stats))
    assert Stats.from_usage("unknown-model", usage).cost_usd is None


def test_a_cost_estimated_from_the_family_price_says_so() -> None:
    usage = ev.Usage(input_tokens=1000, output_tokens=500, input_audio=1000, output_audio=500)
    stats = Stats.from_usage("gpt-realtime-2.1", usage)  # priced as gpt-realtime-2
    assert stats.cost_usd == pytest.approx(0.064) and stats.cost_estimated
    assert "$0.0640 estimated" in line_with(draw(Snapshot(stats=stats)), "latency")


def test_a_picture_turn_shows_its_label_not_no_text() -> None:
    view = TurnView(role="user", text="", kind="image", final=True, note="image: photo.png, 12 KB")
    screen = draw(Snapshot(turns=(view,)))
    row = next(line for line in screen.splitlines() if "you " in line)
    assert row.split()[1:5] == ["you", "[image:", "photo.png,", "12"] and "[no text]" not in screen


def test_input_line_shows_typing_with_a_cursor_and_keeps_the_end_in_view() -> None:
    assert "│ > hello there▌" in draw(Snapshot(input_line="hello there"))
    long = "x" * 300 + "THE-END"
    line = line_with(draw(Snapshot(input_line=long)), "│ > ")
    assert line.rstrip(" │").endswith("THE-END▌") and "…" in line


def test_status_line_is_shown_when_set() -> None:
    assert "space: talk · q: quit" in draw(Snapshot(status="space: talk · q: quit"))


# ---- PlainStatus -----------------------------------------------------------------------------


class Recorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_plain_status_writes_one_flushed_line_per_change_and_nothing_on_repeats() -> None:
    out = Recorder()
    status = PlainStatus(out)
    connecting = Snapshot()
    connected = Snapshot(header=Header(connection="connected"), activity="listening")
    speaking = Snapshot(
        header=Header(connection="connected"),
        activity="assistant speaking",
        turns=(TurnView("assistant", "Hel", final=False, item_id="a1"),),
    )
    steps = [
        (connecting, ["voicechat: connecting"]),
        (connecting, []),
        (connected, ["voicechat: connected", "voicechat: listening"]),
        (connected, []),
        (speaking, ["voicechat: assistant speaking"]),
        # Redraw-only changes: streaming text, levels, the clock, typing.
        (
            Snapshot(
                header=Header(connection="connected", seconds_left=10),
                activity="assistant speaking",
                turns=(TurnView("assistant", "Hello th", final=False, item_id="a1"),),
                mic_dbfs=-20.0,
                input_line="ab",
            ),
            [],
        ),
    ]
    for snapshot, expected in steps:
        before = out.getvalue()
        status.update(snapshot)
        assert out.getvalue()[len(before) :].splitlines() == expected
    assert out.flushes == len(out.getvalue().splitlines())


def test_plain_status_reports_interruptions_mute_notices_and_status_once() -> None:
    out = io.StringIO()
    status = PlainStatus(out)
    base = Snapshot(header=Header(connection="connected"), activity="assistant speaking")
    status.update(base)
    cut = Snapshot(
        header=base.header,
        activity="user speaking",
        muted=True,
        turns=(
            TurnView("assistant", "Hel", interrupted=True, item_id="a1"),
            TurnView("notice", "playback \x1b[31mstalled"),
        ),
        status="server error: rate limited",
    )
    start = len(out.getvalue())
    status.update(cut)
    status.update(cut)
    assert out.getvalue()[start:].splitlines() == [
        "voicechat: muted",
        "voicechat: interrupted",
        "voicechat: user speaking",
        "voicechat: playback \\x1b[31mstalled",
        "voicechat: server error: rate limited",
    ]


def test_plain_status_does_not_announce_idle() -> None:
    out = io.StringIO()
    status = PlainStatus(out)
    status.update(Snapshot(header=Header(connection="connected"), activity="listening"))
    status.update(Snapshot(header=Header(connection="closed"), activity="idle"))
    assert out.getvalue().splitlines()[-1] == "voicechat: closed"


class BrokenPipe(io.StringIO):
    writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        raise BrokenPipeError


def test_plain_status_ends_quietly_on_a_broken_pipe() -> None:
    pipe = BrokenPipe()
    status = PlainStatus(pipe)
    status.update(Snapshot())
    assert status.closed and pipe.writes == 1
    status.update(Snapshot(header=Header(connection="connected")))
    assert pipe.writes == 1


# ---- LivePanel -------------------------------------------------------------------------------


def terminal_console() -> Console:
    return Console(
        file=io.StringIO(), force_terminal=True, width=WIDTH, height=30, color_system=None
    )


def test_live_panel_draws_the_published_snapshot_and_restores_the_cursor() -> None:
    console = terminal_console()
    panel = LivePanel(console=console)
    saved_stderr = sys.stderr
    with panel:
        assert panel.is_started
        panel.update(Snapshot(input_line="hello panel"))
        panel.refresh()
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[?25l" in raw and "hello panel" in raw
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")  # shown again, after the last hide
    assert not panel.is_started and sys.stderr is saved_stderr


def test_live_panel_stop_is_idempotent_and_start_too() -> None:
    console = terminal_console()
    panel = LivePanel(console=console, transient=False)
    panel.start()
    panel.start()
    panel.stop()
    after_first = console.file.getvalue()  # type: ignore[attr-defined]
    panel.stop()
    assert console.file.getvalue() == after_first  # type: ignore[attr-defined]
    assert after_first.endswith("\x1b[?25h")


def test_live_panel_pulls_from_a_snapshot_function() -> None:
    console = terminal_console()
    calls: list[int] = []

    def latest() -> Snapshot:
        calls.append(1)
        return Snapshot(status="from the function")

    with LivePanel(latest, console=console) as panel:
        panel.refresh()
    assert calls and "from the function" in console.file.getvalue()  # type: ignore[attr-defined]


def test_live_panel_survives_a_failing_snapshot_function() -> None:
    console = terminal_console()

    def broken() -> Snapshot:
        raise RuntimeError("boom")

    with LivePanel(broken, console=console) as panel:
        panel.refresh()
    assert "cannot draw the panel" in console.file.getvalue()  # type: ignore[attr-defined]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_front_end_is_chosen_by_whether_stderr_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(LivePanel.for_stream(io.StringIO()), PlainStatus)
    live = LivePanel.for_stream(FakeTTY(), stdout=io.StringIO())
    assert isinstance(live, LivePanel) and not live.redirects_stdout
    assert LivePanel.for_stream(FakeTTY(), stdout=FakeTTY()).redirects_stdout  # type: ignore[union-attr]
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(LivePanel.for_stream(FakeTTY()), PlainStatus)


def test_live_panel_redraws_only_what_changed() -> None:
    console = terminal_console()
    with LivePanel(console=console) as panel:
        panel.update(Snapshot(input_line="first"))
        panel.update(Snapshot(input_line="first"))  # the same picture: nothing to draw
        assert panel.redraws == 1
        panel.update(Snapshot(input_line="second"))
        assert panel.redraws == 2
        assert "second" in console.file.getvalue()  # type: ignore[attr-defined]
