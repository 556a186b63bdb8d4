"""Server text made safe for a terminal (issue 12): controls, bidi controls and invisible
characters become visible escapes wherever text is printed; other text is left as it is.
Generated text mixes every dangerous character with ordinary letters, emoji and joiners."""

from __future__ import annotations

import io
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from voicechat.effects import Turn
from voicechat.escape import escape_control
from voicechat.transcript import FileSink, StreamSink, plain_line

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
INVISIBLE = "\u00ad\u180e\u200b\u2028\u2029\u2060\u2061\u2062\u2063\u2064\ufeff"
CONTROLS = "".join(map(chr, [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]))
DANGEROUS = set(BIDI + INVISIBLE + CONTROLS)
KEPT = "abc é 日本 👨\u200d👩\u200d👧 \u200c \t\n"  # letters, emoji joined by ZWJ, ZWNJ, tab, newline

TEXT = st.text(alphabet=st.sampled_from(sorted(DANGEROUS) + list(KEPT)), max_size=60)


@settings(max_examples=200)
@given(TEXT)
def test_no_dangerous_character_survives(text: str) -> None:
    out = escape_control(text)
    assert not DANGEROUS & set(out), ascii(out)


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from(list(KEPT)), max_size=40))
def test_ordinary_text_is_left_as_it_is(text: str) -> None:
    assert escape_control(text) == text


@settings(max_examples=100)
@given(TEXT)
def test_the_escape_names_the_character(text: str) -> None:
    """Each dangerous character becomes one visible escape of its code point (nothing is hidden)."""
    out = escape_control(text)
    for ch in DANGEROUS & set(text):
        code = ord(ch)
        assert (f"\\x{code:02x}" if code <= 0xFF and code != 0xAD else f"\\u{code:04x}") in out


def test_every_bidi_format_character_is_covered() -> None:
    """Every Unicode character of bidi class LRE/RLE/LRO/RLO/PDF/LRI/RLI/FSI/PDI/LRM/RLM/ALM."""
    classes = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
    marks = {"\u200e", "\u200f", "\u061c"}
    found = {chr(c) for c in range(0x110000) if unicodedata.bidirectional(chr(c)) in classes} | marks
    assert found <= set(BIDI)
    assert escape_control("".join(sorted(found))).count("\\u") == len(found)


@settings(max_examples=50)
@given(TEXT)
def test_the_printed_transcript_lines_carry_none(text: str) -> None:
    """stdout lines and a .txt transcript: what a terminal shows (JSONL keeps the data as sent)."""
    turn = Turn("assistant", text, item_id="i", started_at=0.0, ended_at=1.0)
    stream = io.StringIO()
    StreamSink(stream).write(turn)
    assert not DANGEROUS & set(stream.getvalue().rstrip("\n"))
    assert not DANGEROUS & set(plain_line(turn))


def test_a_txt_transcript_carries_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink = FileSink(tmp_path / "chat.txt")
    sink.write(Turn("assistant", "safe \u202eevil\u2066 \u200btext", item_id="i", started_at=0.0, ended_at=1.0))
    sink.close()
    assert not DANGEROUS & set((tmp_path / "chat.txt").read_text().rstrip("\n"))
