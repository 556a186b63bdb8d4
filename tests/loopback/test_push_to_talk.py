"""Push-to-talk (``--vad none`` live): the key toggles a turn; pressing it over the assistant interrupts."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import numpy as np

from tests.helpers.server import speech_like
from voicechat import keys
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import write_wav
from voicechat.config import resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink

RATE = 24_000


def z(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


async def presses(*at: float) -> AsyncIterator[keys.Action]:
    """The push-to-talk key pressed at these times (seconds after the session is ready)."""
    start = asyncio.get_running_loop().time()
    for t in at:
        await asyncio.sleep(max(0.0, start + t - asyncio.get_running_loop().time()))
        yield keys.PushToTalk()


async def press_while_replying(srv: LocalServer, turn: tuple[float, float], into_reply: float) -> AsyncIterator[keys.Action]:
    """A turn between two presses, then the key again ``into_reply`` s after its reply's audio starts."""
    async for action in presses(*turn):
        yield action
    while not any(e["type"] == "response.output_audio.delta" for e in srv.emitted):
        await asyncio.sleep(0.01)
    await asyncio.sleep(into_reply)
    yield keys.PushToTalk()


async def run(tmp_path: Path, mic: np.ndarray, actions: AsyncIterator[keys.Action] | None = None,
              script=None, recognizer: Literal["auto", "none"] = "auto") -> tuple[LocalServer, str, str]:
    wav = tmp_path / "in.wav"
    write_wav(wav, mic, RATE)
    opts = ServerOptions(speed=8.0, seed=4, recognizer=recognizer)
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        if script is not None:
            actions = script(srv)
        settings = resolve(flags={"base_url": srv.http_base_url, "input_file": wav, "vad": "none"},
                           environ={"OPENAI_API_KEY": "sk-test-loopback"})
        stdout, stderr = io.StringIO(), io.StringIO()
        await talk(settings, Output(sinks=[StreamSink(stdout)], status=stderr), audio=FileAudio(mic, None),
                   actions=actions)
    return srv, stdout.getvalue(), stderr.getvalue()


def sent(srv: LocalServer) -> list[str]:
    return [e["type"] for e in srv.received if e["type"] not in ("session.update",)]


async def test_the_key_toggles_a_turn_and_only_that_audio_is_sent(tmp_path: Path) -> None:
    # Speech before the key is never sent; the turn is what was said between the presses.
    mic = np.concatenate([speech_like(0.8), z(0.4), speech_like(1.0), z(3.5)])
    srv, out, err = await run(tmp_path, mic, presses(1.0, 2.6))
    types = sent(srv)
    first_append = types.index("input_audio_buffer.append")
    assert types[first_append - 1] == "input_audio_buffer.clear"
    sent_ms = sum(len(base64.b64decode(e["audio"])) / 48 for e in srv.received
                  if e["type"] == "input_audio_buffer.append")
    assert 1200 <= sent_ms <= 2000, sent_ms  # ~1.6 s between the presses, nothing from before the key
    after = types[first_append:]
    assert after[after.index("input_audio_buffer.commit") + 1] == "response.create"
    assert "input_audio_buffer.append" not in after[after.index("input_audio_buffer.commit"):]
    assert [line.split(":")[0] for line in out.splitlines() if line] == ["you", "assistant"], out
    assert "push-to-talk" in err


async def test_pressing_the_key_over_the_assistant_interrupts_it(tmp_path: Path) -> None:
    mic = np.concatenate([z(0.2), speech_like(2.0), z(6.0)])
    # Turn 1 (0.1 to 2.3 s); 0.8 s into its 2.2 s reply the key starts a new turn.
    # No recogniser: pocketsphinx holds the GIL (~0.4 s a turn, longer under load), the file
    # device's clock catches up after such a stall, and the press landed 2 s into the reply.
    srv, out, _ = await run(tmp_path, mic, script=lambda srv: press_while_replying(srv, (0.1, 2.3), 0.8),
                            recognizer="none")
    types = sent(srv)
    assert "conversation.item.truncate" in types, types
    # The reply had finished streaming (8x): nothing to cancel, but the queued audio is cut,
    # and the new turn starts from an empty input buffer.
    assert "response.cancel" not in types
    assert "input_audio_buffer.clear" in types[types.index("conversation.item.truncate"):]
    assert not [e for e in srv.emitted if e["type"] == "error"]
    truncate = next(e for e in srv.received if e["type"] == "conversation.item.truncate")
    assert 500 <= truncate["audio_end_ms"] <= 1500, truncate  # about 0.8 s in, never the whole reply
    assert "[interrupted" in out  # "[interrupted]", or "[interrupted before any words]"


async def test_a_too_short_turn_is_dropped_with_a_warning(tmp_path: Path) -> None:
    mic = np.concatenate([speech_like(1.0), z(2.0)])
    srv, _, err = await run(tmp_path, mic, presses(0.2, 0.23))
    types = sent(srv)
    assert "input_audio_buffer.commit" not in types and "response.create" not in types
    assert types.count("input_audio_buffer.clear") == 2
    assert "too short" in err


async def test_two_quick_presses_over_silence_send_no_turn(tmp_path: Path) -> None:
    """0.4 s between the presses, long enough to commit, but only a quiet room and the key's own
    click in it: no commit, no paid reply, a warning saying why (issue 14)."""
    rng = np.random.default_rng(7)
    room = (rng.standard_normal(int(3.0 * RATE)) * 30).astype(np.int16)  # about -60 dBFS
    for at in (0.35, 0.75):  # a key click: a 5 ms burst
        start = int(at * RATE)
        room[start:start + 120] = (rng.standard_normal(120) * 8000).astype(np.int16)
    srv, out, err = await run(tmp_path, room, presses(0.3, 0.8))
    types = sent(srv)
    assert "input_audio_buffer.append" in types  # the turn's audio did go out while the key was down
    assert "input_audio_buffer.commit" not in types and "response.create" not in types, types
    assert "nothing said between the presses" in err, err
    assert "assistant" not in out
