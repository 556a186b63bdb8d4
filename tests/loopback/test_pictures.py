"""``/image FILE``: a picture is sent by what its bytes are, never by its name, and its turn reads
``[image: NAME, SIZE]`` on stdout, in every transcript and on the panel instead of ``[no text]``."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import RATE
from voicechat import effects as fx
from voicechat import keys
from voicechat.app import Output, picture, talk
from voicechat.audio.filedev import FileAudio
from voicechat.config import resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.session.entries import seed_item
from voicechat.transcript import FileSink, StreamSink, turn_from_record, turn_text

PICTURES = {
    "image/png": b"\x89PNG\r\n\x1a\n" + bytes(2000),
    "image/jpeg": b"\xff\xd8\xff\xe0" + bytes(2000),
    "image/gif": b"GIF89a" + bytes(2000),
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(2000),
}


@pytest.mark.parametrize("mime, size", [("image/gif", "1.96 KB"), ("image/jpeg", "1.96 KB"), ("image/png", "1.96 KB"),
                                        ("image/webp", "1.97 KB")])
def test_the_type_comes_from_the_bytes_whatever_the_name(tmp_path: Path, mime: str, size: str) -> None:
    path = tmp_path / "photo.png"  # the same name for all four
    path.write_bytes(PICTURES[mime])
    found = picture(path)
    assert found.data_url.startswith(f"data:{mime};base64,")
    assert base64.b64decode(found.data_url.split(",", 1)[1]) == PICTURES[mime]
    assert found.label == f"image: photo.png, {size}"


@pytest.mark.parametrize("content, why", [
    (b"", "the file is empty"),
    (b"just some notes\n", "not a PNG, JPEG, GIF or WebP picture"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not a PNG, JPEG, GIF or WebP picture"),  # a WAV is RIFF too
    (b"\x89PNG", "not a PNG, JPEG, GIF or WebP picture"),  # a signature cut short
])
def test_what_is_not_a_picture_is_refused_in_one_line(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        picture(path)
    assert str(caught.value) == f"{path}: {why}"


def test_the_written_turn_shows_the_label() -> None:
    turn = fx.Turn(role="user", text="", item_id="i", started_at=0, ended_at=0, kind="image", note="image: a.gif, 3 KB")
    assert turn_text(turn) == "[image: a.gif, 3 KB]"
    asked = fx.Turn(role="user", text="what is it?", item_id="i", started_at=0, ended_at=0, kind="image", note=None)
    assert turn_text(asked) == "[image] what is it?"


async def test_a_picture_turn_is_labelled_everywhere_and_a_text_file_is_never_sent(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(PICTURES["image/jpeg"])  # a JPEG with the wrong name: sent as what it is
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")

    async def script() -> AsyncIterator[keys.Action]:
        yield keys.Command("image", str(notes))
        await asyncio.sleep(0.2)
        yield keys.Command("image", str(photo))

    mic = np.zeros(RATE * 6, np.int16)
    stdout, status = io.StringIO(), io.StringIO()
    async with LocalServer(ServerOptions(speed=20.0, seed=3, recognizer="none")) as srv:
        settings = resolve(flags={"base_url": srv.http_base_url, "silence_duration_ms": 300}, environ={})
        sinks = [StreamSink(stdout), FileSink(tmp_path / "chat.md"), FileSink(tmp_path / "chat.jsonl")]
        out = Output(sinks=sinks, status=status)
        await asyncio.wait_for(talk(settings, out, audio=FileAudio(mic, None, speed=4.0), actions=script()), 60)
    sent = [e for e in srv.received if e["type"] == "conversation.item.create"]
    assert len(sent) == 1, "the text file named .png never left the machine"
    assert sent[0]["item"]["content"][0]["image_url"].startswith("data:image/jpeg;base64,")
    assert f"voicechat: warning: {notes}: not a PNG, JPEG, GIF or WebP picture" in status.getvalue()
    label = "[image: photo.png, 1.96 KB]"
    lines = stdout.getvalue().splitlines()
    assert lines[0] == f"you: {label}" and lines[1].startswith("assistant: "), lines
    assert f"{label}" in (tmp_path / "chat.md").read_text() and "[no text]" not in (tmp_path / "chat.md").read_text()
    records = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    assert records[0]["role"] == "user" and records[0]["kind"] == "image"
    assert records[0]["note"] == "image: photo.png, 1.96 KB" and records[0]["text"] == ""
    # --resume reads it back (and shows it the same way); it is not re-sent as words.
    again = turn_from_record(records[0])
    assert turn_text(again) == label and seed_item(again) is None
