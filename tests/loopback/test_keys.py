"""The keyboard: decoder and line editor (pure), the tty mode and the key reader (real ptys)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import termios
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicechat.keys import (
    MAX_LINE,
    MAX_PASTE,
    Command,
    Key,
    KeyDecoder,
    KeyReader,
    LineEditor,
    PushToTalk,
    Quit,
    Submit,
    Terminal,
    UnknownCommand,
)


def decode(*reads: bytes) -> list[Key]:
    decoder = KeyDecoder()
    return [key for data in reads for key in decoder.feed(data)]


def chars(text: str) -> list[Key]:
    return [Key("char", ch) for ch in text]


def type_keys(editor: LineEditor, keys: list[Key]) -> list[object]:
    return [action for key in keys if (action := editor.feed(key)) is not None]


def typed(text: str, **options: object) -> list[object]:
    """What the editor makes of ``text`` typed through the decoder."""
    return type_keys(LineEditor(**options), decode(text.encode()))  # type: ignore[arg-type]


# ---- decoder ------------------------------------------------------------------------------


def test_printable_and_control_characters() -> None:
    assert decode(b"a \x7f\x08\r\n\t\x04\x15\x17\x00\x1c") == [
        *chars("a "),
        Key("backspace"),
        Key("backspace"),
        Key("enter"),
        Key("enter"),
        Key("tab"),
        Key("ctrl-d"),
        Key("ctrl-u"),
        Key("ctrl-w"),
        Key("ctrl-space"),
        Key("ctrl-\\"),
    ]


def test_utf8_split_across_reads_is_joined() -> None:
    data = "é€😀".encode()
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == chars("é€😀")


def test_invalid_utf8_becomes_a_replacement_character_and_c1_controls_are_unknown() -> None:
    assert decode(b"\xffa", "\x85".encode()) == [*chars("\ufffda"), Key("unknown", "\x85")]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\x1b[A", "up"),
        (b"\x1b[B", "down"),
        (b"\x1b[C", "right"),
        (b"\x1b[D", "left"),
        (b"\x1bOA", "up"),
        (b"\x1b[1;5A", "up"),
        (b"\x1b[H", "home"),
        (b"\x1b[F", "end"),
        (b"\x1bOH", "home"),
        (b"\x1b[1~", "home"),
        (b"\x1b[4~", "end"),
        (b"\x1b[3~", "delete"),
        (b"\x1b[3;2~", "delete"),
        (b"\x1b[5~", "pageup"),
        (b"\x1b[15~", "f5"),
        (b"\x1bOP", "f1"),
        (b"\x1b[Z", "backtab"),
    ],
)
def test_escape_sequences(data: bytes, name: str) -> None:
    assert decode(data) == [Key(name)]
    # Split anywhere after the ESC [ / ESC O prefix: the next read finishes the sequence.
    for cut in range(2, len(data)):
        assert decode(data[:cut], data[cut:]) == [Key(name)], cut


def test_unknown_sequences_are_reported_without_garbage_characters() -> None:
    assert decode(b"\x1b[99~x") == [Key("unknown", "\x1b[99~"), Key("char", "x")]
    assert decode(b"\x1b[?1;2cx") == [Key("unknown", "\x1b[?1;2c"), Key("char", "x")]
    assert decode(b"\x1bO5x") == [Key("unknown", "\x1bO"), *chars("5x")]


def test_sequence_cut_by_a_control_character_rereads_it() -> None:
    assert decode(b"\x1b[1\r") == [Key("unknown", "\x1b[1"), Key("enter")]


def test_overlong_sequence_is_one_unknown_key() -> None:
    keys = decode(b"\x1b[" + b"1;" * 500 + b"Ax")
    assert [k.name for k in keys] == ["unknown", "char"]
    assert len(keys[0].text) <= 40


def test_lone_esc_at_the_end_of_a_read_is_the_esc_key() -> None:
    assert decode(b"\x1b") == [Key("esc")]
    assert decode(b"a\x1b", b"[A") == [Key("char", "a"), Key("esc"), *chars("[A")]
    assert decode(b"\x1b\x1b") == [Key("esc"), Key("esc")]
    assert decode(b"\x1b\r") == [Key("esc"), Key("enter")]
    assert decode(b"\x1bx") == [Key("alt", "x")]
    assert decode("\x1bé".encode()) == [Key("esc"), Key("char", "é")]


def test_bracketed_paste_is_one_key_across_reads() -> None:
    assert decode(b"\x1b[200~line 1\r\nli", b"ne 2\x1b[2", b"01~x") == [
        Key("paste", "line 1\r\nline 2"),
        Key("char", "x"),
    ]


def test_paste_keeps_escape_sequences_and_partial_markers_literally() -> None:
    assert decode(b"\x1b[200~a\x1b[Ab\x1b[201b\x1b[201~") == [Key("paste", "a\x1b[Ab\x1b[201b")]


def test_stray_paste_end_is_dropped() -> None:
    assert decode(b"\x1b[201~a") == [Key("char", "a")]


def test_long_paste_is_capped_and_the_rest_counted() -> None:
    decoder = KeyDecoder()
    keys = decoder.feed(b"\x1b[200~" + b"x" * (MAX_PASTE + 10))
    keys += decoder.feed(b"yz\x1b[201~!")
    assert keys == [Key("paste", "x" * MAX_PASTE), Key("char", "!")]
    assert decoder.paste_dropped == 12


PIECES = [
    b"\x1b[A",
    b"\x1b[1;5D",
    b"\x1bOP",
    b"\x1b[3~",
    b"\x1b[200~",
    b"\x1b[201~",
    b"\x1b[20",
    b"\x1b",
    b"\x1b[",
    "é😀".encode(),
    b"\xe2\x82",
    b"\r\n\x7f\x04",
]


@given(
    st.lists(st.one_of(st.binary(max_size=6), st.sampled_from(PIECES)), max_size=20),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_any_split_decodes_like_one_read(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    # A split just after an ESC byte is excluded: there the lone-ESC rule decides on purpose.
    points = sorted(
        {c % (len(data) + 1) for c in cuts} - {i + 1 for i, b in enumerate(data) if b == 0x1B}
    )
    reads = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert decode(*reads) == decode(data)


# ---- line editor --------------------------------------------------------------------------


def test_typed_line_is_submitted_stripped() -> None:
    assert typed("  hello world \r") == [Submit("hello world")]


def test_empty_and_blank_lines_produce_nothing() -> None:
    editor = LineEditor()
    assert type_keys(editor, decode(b"\r   \r\t\r")) == []
    assert editor.line == ""


def test_line_shows_the_text_so_far_including_unicode() -> None:
    editor = LineEditor()
    type_keys(editor, decode("grüß 😀".encode()))
    assert editor.line == "grüß 😀"


def test_backspace_ctrl_w_ctrl_u_and_esc() -> None:
    editor = LineEditor()
    type_keys(editor, decode(b"hello  big world  \x17"))
    assert editor.line == "hello  big "
    type_keys(editor, decode(b"\x17\x7f"))
    assert editor.line == "hello "
    type_keys(editor, decode(b"\x08\x08x"))
    assert editor.line == "hellx"
    type_keys(editor, decode(b"\x15"))
    assert editor.line == ""
    type_keys(editor, decode(b"abc\x1b"))
    assert editor.line == ""
    assert type_keys(editor, [Key("ctrl-w"), Key("backspace")]) == []


def test_arrows_and_other_sequences_insert_nothing() -> None:
    assert typed("a\x1b[Ab\x1b[3~\x1bOPc\x1b[99~\x1bx\x01\r") == [Submit("abc")]


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("/mute", Command("mute")),
        ("/unmute", Command("unmute")),
        ("/interrupt", Command("interrupt")),
        ("/image  cat pic.png ", Command("image", "cat pic.png")),
        ("/image", Command("image")),
        ("/save", Command("save")),
        ("/save out.md", Command("save", "out.md")),
        ("/cost", Command("cost")),
        ("/HELP", Command("help")),
        ("/quit", Quit()),
        ("/foo bar", UnknownCommand("/foo bar")),
        ("/", UnknownCommand("/")),
        ("/ mute", UnknownCommand("/ mute")),
        ("//etc/hosts is a file", Submit("/etc/hosts is a file")),
        ("   /mute", Command("mute")),
    ],
)
def test_slash_commands(line: str, action: object) -> None:
    assert typed(line + "\r") == [action]


def test_ctrl_d_quits_only_on_an_empty_line() -> None:
    editor = LineEditor()
    assert type_keys(editor, decode(b"ab\x04")) == []
    assert editor.line == "ab"
    assert type_keys(editor, decode(b"\x15\x04")) == [Quit()]


def test_paste_inserts_newlines_as_spaces_without_submitting() -> None:
    editor = LineEditor(push_to_talk=True)
    assert type_keys(editor, decode(b"\x1b[200~ one\r\ntwo\nthree\tfour\x1b[A\x1b[201~")) == []
    assert editor.line == " one two three four[A"
    assert type_keys(editor, [Key("enter")]) == [Submit("one two three four[A")]


def test_push_to_talk_space_toggles_only_on_an_empty_line() -> None:
    assert typed(" hi there\r ", push_to_talk=True) == [
        PushToTalk(),
        Submit("hi there"),
        PushToTalk(),
    ]


def test_without_push_to_talk_space_is_text() -> None:
    editor = LineEditor()
    assert type_keys(editor, chars(" ")) == []
    assert editor.line == " "


def test_named_ptt_key_toggles_on_any_line() -> None:
    editor = LineEditor(push_to_talk=True, ptt_key="ctrl-t")
    assert type_keys(editor, decode(b" a\x14b")) == [PushToTalk()]
    assert editor.line == " ab"


def test_ptt_autorepeat_is_swallowed_when_given_the_time() -> None:
    editor = LineEditor(push_to_talk=True)
    space = Key("char", " ")
    times = [0.0, 0.5, 0.53, 0.56, 0.6, 2.0, 2.1, 3.0]
    actions = [editor.feed(space, now=t) for t in times]
    assert actions == [
        PushToTalk(),
        PushToTalk(),
        None,
        None,
        None,
        PushToTalk(),
        None,
        PushToTalk(),
    ]
    assert editor.line == ""


@pytest.mark.parametrize("key", ["", "enter", "backspace", "esc", "ctrl-d", "ctrl-u", "ctrl-w"])
def test_ptt_key_cannot_be_an_editing_key(key: str) -> None:
    with pytest.raises(ValueError, match="push-to-talk"):
        LineEditor(push_to_talk=True, ptt_key=key)


def test_line_is_capped() -> None:
    editor = LineEditor()
    editor.feed(Key("paste", "x" * (MAX_LINE + 5)))
    editor.feed(Key("char", "y"))
    assert editor.line == "x" * MAX_LINE


KEYS = st.one_of(
    st.builds(Key, st.sampled_from(["char", "paste", "alt", "unknown"]), st.text(max_size=8)),
    st.builds(
        Key,
        st.sampled_from(["enter", "backspace", "esc", "ctrl-d", "ctrl-u", "ctrl-w", "tab", "up"]),
    ),
    st.binary(max_size=12).map(lambda b: Key("paste", b.decode("latin-1"))),
)


@given(st.lists(KEYS, max_size=40), st.booleans(), st.sampled_from([" ", "tab", "x", "ctrl-t"]))
def test_editor_never_raises_and_keeps_its_invariants(
    keys: list[Key], ptt: bool, ptt_key: str
) -> None:
    editor = LineEditor(push_to_talk=ptt, ptt_key=ptt_key)
    for t, key in enumerate(keys):
        action = editor.feed(key, now=t * 0.1)
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in editor.line)
        match action:
            case Submit(text):
                assert text and text == text.strip()
            case Command(name, arg):
                assert name != "quit" and arg == arg.strip()
            case UnknownCommand(text):
                assert text.startswith("/")
            case PushToTalk():
                assert ptt
            case None | Quit():
                pass
            case _:
                pytest.fail(f"unexpected action {action!r}")


@given(st.binary(max_size=64))
def test_editor_takes_any_decoded_bytes(data: bytes) -> None:
    editor = LineEditor(push_to_talk=True)
    type_keys(editor, decode(data))


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30))
def test_typing_printable_text_submits_it(text: str) -> None:
    actions = type_keys(LineEditor(), [*chars(text), Key("enter")])
    if not text.strip() or text.strip().startswith("/"):
        return
    assert actions == [Submit(text.strip())]


# ---- the terminal on a real pty -----------------------------------------------------------


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def drain(fd: int) -> bytes:
    out = b""
    while readable(fd, 0):
        out += os.read(fd, 4096)
    return out


def test_terminal_switches_to_keyboard_mode_and_restores_exact_attrs(
    pty_pair: tuple[int, int],
) -> None:
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ECHO and before[3] & termios.ICANON
    with Terminal(slave) as term:
        assert term.active
        mode = termios.tcgetattr(slave)
        assert not mode[3] & (termios.ECHO | termios.ICANON | termios.IEXTEN)
        assert mode[3] & termios.ISIG
        assert not mode[0] & termios.IXON
        assert mode[6][termios.VMIN] == 1 and mode[6][termios.VTIME] == 0
        assert mode[6][termios.VSUSP] == b"\x00"
        assert mode[6][termios.VINTR] == before[6][termios.VINTR]
        # Non-canonical, no echo: one key without Enter is readable and nothing is echoed.
        os.write(master, b"k")
        assert readable(slave, 2.0)
        assert os.read(slave, 16) == b"k"
        assert drain(master) == b"\x1b[?2004h"
    assert not term.active
    assert termios.tcgetattr(slave) == before
    assert drain(master) == b"\x1b[?2004l"


def test_terminal_restores_on_exception_and_restore_is_idempotent(
    pty_pair: tuple[int, int],
) -> None:
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    term = Terminal(slave)
    with pytest.raises(RuntimeError), term:
        assert termios.tcgetattr(slave) != before
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before
    termios.tcsetattr(slave, termios.TCSANOW, before)
    term.restore()
    term.restore()
    assert drain(master) == b"\x1b[?2004h\x1b[?2004l"


def test_terminal_restore_after_hangup_does_not_raise(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    term = Terminal(slave).__enter__()
    os.close(master)
    term.restore()
    assert not term.active


def test_terminal_without_bracketed_paste_writes_nothing(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with Terminal(slave, bracketed_paste=False):
        pass
    assert drain(master) == b""


def test_terminal_writes_paste_mode_to_stderr_when_the_tty_fd_is_read_only(
    pty_pair: tuple[int, int],
) -> None:
    master, slave = pty_pair
    read_only = os.open(os.ttyname(slave), os.O_RDONLY | os.O_NOCTTY)
    saved_stderr = os.dup(2)
    try:
        with Terminal(read_only) as term:
            assert term.active
        assert drain(master) == b""  # stderr is not this tty: nothing goes anywhere
        os.dup2(slave, 2)
        with Terminal(read_only):
            pass
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(read_only)
    assert drain(master) == b"\x1b[?2004h\x1b[?2004l"


def not_ttys() -> Iterator[int]:
    """A pipe holding data, /dev/null, and a closed fd."""
    r, w = os.pipe()
    os.write(w, b"piped data")
    null = os.open(os.devnull, os.O_RDONLY)
    closed_r, closed_w = os.pipe()
    os.close(closed_r)
    os.close(closed_w)
    yield r
    yield null
    yield closed_r
    yield -1
    assert os.read(r, 100) == b"piped data"  # nothing was read from the pipe
    for fd in (r, w, null):
        os.close(fd)


def test_terminal_does_nothing_when_not_a_tty() -> None:
    for fd in not_ttys():
        with Terminal(fd) as term:
            assert not term.active
        term.restore()


# ---- the key reader -----------------------------------------------------------------------


async def take(reader: KeyReader, n: int) -> list[Key]:
    async def collect() -> list[Key]:
        return [await anext(reader) for _ in range(n)]

    return await asyncio.wait_for(collect(), 2.0)


async def test_reader_delivers_keys_written_to_the_pty(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with Terminal(slave):
        async with KeyReader(slave) as reader:
            os.write(master, "hé\x1b[A".encode())
            assert await take(reader, 3) == [*chars("hé"), Key("up")]
            os.write(master, b"\x1b[200~a\nb\x1b[201~\r")
            assert await take(reader, 2) == [Key("paste", "a\nb"), Key("enter")]


async def test_reader_ends_on_hangup(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with Terminal(slave):
        async with KeyReader(slave) as reader:
            os.write(master, b"x")
            assert await take(reader, 1) == [Key("char", "x")]
            os.close(master)
            rest = await asyncio.wait_for(_collect_all(reader), 2.0)
    assert rest == []


async def _collect_all(reader: KeyReader) -> list[Key]:
    return [key async for key in reader]


async def test_reader_drops_the_oldest_keys_when_full(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with Terminal(slave):
        async with KeyReader(slave, maxsize=3) as reader:
            os.write(master, b"abcdef")
            async with asyncio.timeout(2.0):
                while reader.dropped < 3:
                    await asyncio.sleep(0.005)
            reader.close()
            assert await _collect_all(reader) == chars("def")
    assert reader.dropped == 3


async def test_reader_close_removes_the_reader(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    loop = asyncio.get_running_loop()
    async with KeyReader(slave):
        pass
    assert loop.remove_reader(slave) is False
    reader = KeyReader(slave)
    reader.start()
    assert loop.remove_reader(slave) is True  # it was registered
    reader.close()


async def test_reader_yields_nothing_and_reads_nothing_when_not_a_tty() -> None:
    loop = asyncio.get_running_loop()
    for fd in not_ttys():
        async with KeyReader(fd) as reader:
            assert await asyncio.wait_for(_collect_all(reader), 1.0) == []
        assert fd < 0 or loop.remove_reader(fd) is False


def test_reader_rejects_a_zero_size_queue() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        KeyReader(0, maxsize=0)
