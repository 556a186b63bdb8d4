"""How a turn reads in the transcript: an interrupted reply says so once (issue 14, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicechat.effects import Turn
from voicechat.errors import UsageError
from voicechat.transcript import FileSink, plain_line


def _reply(text: str, interrupted: bool) -> Turn:
    return Turn(role="assistant", text=text, item_id="i1", started_at=0.0, ended_at=1.0, interrupted=interrupted,
                kind="audio")


def test_a_reply_cut_before_any_words_says_interrupted_once() -> None:
    assert plain_line(_reply("", True)) == "assistant: [interrupted before any words]"
    assert plain_line(_reply("Well, the", True)) == "assistant: Well, the [interrupted]"
    assert plain_line(_reply("Done.", False)) == "assistant: Done."


def test_md_sections_per_conversation_and_unknown_suffixes(tmp_path: Path) -> None:
    chat = tmp_path / "chat.md"
    for heading in ("2026-12-05 10:00 UTC · model-a", "2026-12-05 11:00 UTC · model-b"):
        sink = FileSink(chat, heading=heading)
        sink.write(_reply("Hello.", False))
        sink.close()
    text = chat.read_text()
    assert text.startswith("# Conversation\n\n## 2026-12-05 10:00 UTC · model-a\n\n**Assistant**: Hello.")
    assert text.count("# Conversation") == 1
    assert "**Assistant**: Hello.\n\n## 2026-12-05 11:00 UTC · model-b\n\n**Assistant**: Hello." in text
    with pytest.raises(UsageError, match=r"\.txt, \.md or \.jsonl, not \.html"):
        FileSink(tmp_path / "chat.html")
    assert not (tmp_path / "chat.html").exists()
