"""--log-events: what is written (both directions, one JSON object per line) and what never is."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from tests.helpers.cli import RATE, question_wav
from tests.helpers.server import speech_like
from voicechat import keys
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.config import resolve
from voicechat.eventlog import ELIDED, MAX_STRING, EventLog, RedactHeaders, elide
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # content is never looked at; the name says png


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---- elision -------------------------------------------------------------------------------------


def test_audio_in_both_directions_becomes_its_byte_length() -> None:
    append = {"type": "input_audio_buffer.append", "audio": b64(b"\x01\x02" * 960)}
    assert elide(append) == {"type": "input_audio_buffer.append", "audio": "<audio: 1920 bytes>"}
    for etype in ("response.output_audio.delta", "response.audio.delta"):
        delta = {"type": etype, "item_id": "i", "delta": b64(b"\x00" * 4801)}
        assert elide(delta)["delta"] == "<audio: 4801 bytes>" and elide(delta)["item_id"] == "i"
    # Text deltas by their length: a key split across them would be in the file piece by piece
    # (issue 12); the words are in the .done event, scrubbed whole.
    text = {"type": "response.output_audio_transcript.delta", "delta": "hello"}
    assert elide(text) == {**text, "delta": "<text: 5 characters>"}
    # Audio inside items (history, retrieved items) too, at any depth.
    item = {"type": "conversation.item.retrieved", "item": {"id": "x", "content": [
        {"type": "input_audio", "audio": b64(b"\x00" * 30), "transcript": "hi"}]}}
    assert elide(item)["item"]["content"][0] == {"type": "input_audio", "audio": "<audio: 30 bytes>",
                                                 "transcript": "hi"}


def test_images_credentials_and_long_strings() -> None:
    part = {"type": "input_image", "image_url": "data:image/png;base64," + b64(PNG)}
    assert elide(part)["image_url"] == f"<image/png data URL: {len(PNG)} bytes>"
    headers = {"Authorization": "Bearer sk-x", "api-key": "k", "API_KEY": "k", "x-api-key": "k", "model": "m"}
    assert elide(headers) == {"Authorization": ELIDED, "api-key": ELIDED, "API_KEY": ELIDED, "x-api-key": ELIDED,
                              "model": "m"}
    long = elide({"instructions": "x" * (MAX_STRING + 5)})["instructions"]
    assert long.startswith("x" * MAX_STRING) and long.endswith(f"<{MAX_STRING + 5} characters>")
    assert elide([1, None, True, 2.5]) == [1, None, True, 2.5]


def test_the_log_file_is_private_flushed_per_line_and_scrubs_the_key(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ticks = iter([10.0, 10.0, 10.25, 10.5, 11.0])
    log = EventLog(path, secrets=("sk-secret-123", None, ""), clock=lambda: next(ticks))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    log.sent({"type": "session.update", "session": {"instructions": "my key is sk-secret-123"}})
    # Readable before close: every line is flushed as it is written.
    first = [json.loads(line) for line in path.read_text().splitlines()]
    assert first[0]["dir"] == "start" and first[0]["t"] == 0.0
    assert first[1] == {"t": 0.25, "dir": "send",
                        "event": {"type": "session.update", "session": {"instructions": f"my key is {ELIDED}"}}}
    log.received(b"\x00\x01\x02")
    log.received("not json at all")
    log.close()
    log.sent({"type": "after.close"})  # ignored, no error
    rest = [json.loads(line) for line in path.read_text().splitlines()][2:]
    assert rest == [{"t": 0.5, "dir": "recv", "binary": 3},
                    {"t": 1.0, "dir": "recv", "text": "not json at all", "chars": 15}]


def test_websockets_debug_lines_never_show_credentials() -> None:
    f = RedactHeaders()

    def record(msg: str, *args: object) -> logging.LogRecord:
        r = logging.LogRecord("websockets.client", logging.DEBUG, __file__, 1, msg, args, None)
        f.filter(r)
        return r

    assert record("> %s: %s", "Authorization", "Bearer sk-canary").getMessage() == f"> Authorization: {ELIDED}"
    assert record("> %s: %s", "api-key", "k").getMessage() == f"> api-key: {ELIDED}"
    assert record("< %s: %s", "Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key.sk-x").getMessage() == (
        f"< Sec-WebSocket-Protocol: {ELIDED}")
    assert record("> %s: %s", "User-Agent", "voicechat/1").getMessage() == "> User-Agent: voicechat/1"
    assert record("> GET %s HTTP/1.1", "/v1/realtime?model=m").getMessage() == "> GET /v1/realtime?model=m HTTP/1.1"


# ---- a whole conversation ------------------------------------------------------------------------


async def test_a_conversation_logged_both_ways(tmp_path: Path) -> None:
    png = tmp_path / "picture.png"
    png.write_bytes(PNG)
    log_path = tmp_path / "events.jsonl"
    mic = np.concatenate([np.zeros(RATE // 2, np.int16), speech_like(1.0), np.zeros(RATE * 10, np.int16)])

    async def script() -> AsyncIterator[keys.Action]:
        yield keys.Submit("hello in text")
        await asyncio.sleep(0.8)
        yield keys.Command("image", str(png))

    async with LocalServer(ServerOptions(speed=20.0, seed=4, recognizer="none")) as srv:
        settings = resolve(flags={"base_url": srv.http_base_url, "input_file": question_wav(tmp_path),
                                  "log_events": log_path, "silence_duration_ms": 300},
                           environ={"OPENAI_API_KEY": "sk-eventlog-test"})
        out = Output(sinks=[StreamSink(io.StringIO())], status=io.StringIO())
        await asyncio.wait_for(talk(settings, out, audio=FileAudio(mic, None, speed=4.0), actions=script()), 60)
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert text.endswith("\n") and len(lines) > 20
    assert [x["dir"] for x in lines[:3]] == ["start", "connect", "open"] and lines[-1]["dir"] == "close"
    assert lines[1]["url"].startswith("ws://127.0.0.1:") and lines[-1]["code"] == 1000
    times = [x["t"] for x in lines]
    assert times == sorted(times), "a monotonic clock"
    sent = [x["event"] for x in lines if x["dir"] == "send"]
    got = [x["event"] for x in lines if x["dir"] == "recv"]
    # Both directions, in full, as the server recorded them (sends) and sent them (receives).
    assert [e["type"] for e in sent] == [e["type"] for e in srv.received]
    assert [e["type"] for e in got] == [e["type"] for e in srv.emitted]
    assert sent[0]["type"] == "session.update" and got[0]["type"] == "session.created"
    appends = [e for e in sent if e["type"] == "input_audio_buffer.append"]
    assert appends and all(e["audio"].startswith("<audio: ") for e in appends)
    deltas = [e for e in got if e["type"] == "response.output_audio.delta"]
    assert deltas and all(e["delta"].startswith("<audio: ") and e["delta"].endswith(" bytes>") for e in deltas)
    total = sum(int(e["delta"].split()[1]) for e in deltas)
    assert total == sum(len(base64.b64decode(e["delta"])) for e in srv.emitted
                        if e["type"] == "response.output_audio.delta")
    typed = next(e for e in sent if e["type"] == "conversation.item.create"
                 and e["item"]["content"][0]["type"] == "input_text")
    assert typed["item"]["content"][0]["text"] == "hello in text"
    image = next(e for e in sent if e["type"] == "conversation.item.create"
                 and e["item"]["content"][0]["type"] == "input_image")
    assert image["item"]["content"][0]["image_url"] == f"<image/png data URL: {len(PNG)} bytes>"
    assert b64(PNG)[:40] not in text and "sk-eventlog-test" not in text
    assert max(len(line) for line in text.splitlines()) < 20_000, "no bulk in any line"
