"""Brains: what the local server says back for a finished user turn.

A brain is pure: it gets a ``Turn`` (the user's audio at 24 kHz and/or text, the
recogniser's transcript, or a function result) and returns a ``Reply`` (transcript/text,
optional int16 24 kHz audio, optional function calls). When a spoken reply has no audio the
session synthesises ``tone_speech`` for it.

* ``EchoBrain`` (default) plays the user's own committed audio back, with the transcript
  ``"You said: …"`` (or ``"(echo of 1.4 s of your audio)"`` without a recogniser); a typed
  turn gets ``"You said: <text>"``.
* ``ScriptedBrain`` replays a fixed list of replies in a cycle, for tests.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from voicechat.protocol.constants import WIRE_RATE


@dataclass(frozen=True)
class Turn:
    """The input of one response: the newest user (or tool) item of the conversation."""

    audio: np.ndarray | None = None
    text: str | None = None
    transcript: str | None = None
    function_output: str | None = None
    instructions: str = ""
    output_modalities: tuple[str, ...] = ("audio",)
    tools: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class FunctionCall:
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class Reply:
    """``text`` is the spoken transcript (audio modality) or the text (text modality)."""

    text: str
    audio: np.ndarray | None = None
    function_calls: tuple[FunctionCall, ...] = ()


class Brain(Protocol):
    wants_transcript: bool
    """True when the reply depends on the recogniser's transcript of the turn."""

    def reply(self, turn: Turn) -> Reply: ...


class EchoBrain:
    """Echo the user's own audio of the turn; echo typed text as text."""

    wants_transcript = True

    def reply(self, turn: Turn) -> Reply:
        if turn.audio is not None and turn.audio.size:
            seconds = turn.audio.size / WIRE_RATE
            text = f"You said: {turn.transcript}" if turn.transcript else f"(echo of {seconds:.1f} s of your audio)"
            return Reply(text, turn.audio)
        if turn.text:
            return Reply(f"You said: {turn.text}")
        if turn.function_output is not None:
            return Reply(f"The tool returned: {turn.function_output}")
        return Reply("I have nothing to echo yet. Say something!")


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted reply; ``audio_ms`` of synthetic speech (default: scaled to the text)."""

    text: str = ""
    audio_ms: int | None = None
    function_calls: tuple[FunctionCall, ...] = ()


class ScriptedBrain:
    """Returns the given replies in order, starting over after the last one."""

    wants_transcript = False

    def __init__(self, replies: Sequence[ScriptedReply | str | dict[str, Any]]) -> None:
        if not replies:
            raise ValueError("ScriptedBrain needs at least one reply")
        self._replies = [self._coerce(r) for r in replies]
        self._next = 0

    @staticmethod
    def _coerce(reply: ScriptedReply | str | dict[str, Any]) -> ScriptedReply:
        if isinstance(reply, ScriptedReply):
            return reply
        if isinstance(reply, str):
            return ScriptedReply(reply)
        calls = tuple(FunctionCall(c["name"], c.get("arguments", "{}")) for c in reply.get("function_calls", ()))
        return ScriptedReply(reply.get("text", ""), reply.get("audio_ms"), calls)

    def reply(self, turn: Turn) -> Reply:
        scripted = self._replies[self._next % len(self._replies)]
        self._next += 1
        audio = None
        if scripted.audio_ms is not None and "audio" in turn.output_modalities:
            audio = tone_speech(scripted.text, scripted.audio_ms)
        return Reply(scripted.text, audio, scripted.function_calls)


def tone_speech(text: str, total_ms: int | None = None, amplitude: float = 0.18) -> np.ndarray:
    """A gentle tone per word (pitch from the word), int16 24 kHz; length scales with words.

    ``total_ms`` forces the length (tones repeat or stretch to fill it).
    """
    words = text.split() or ["…"]
    ms = total_ms if total_ms is not None else max(300, 240 * len(words))
    n_total = int(WIRE_RATE * ms / 1000)
    out = np.zeros(n_total, dtype=np.float32)
    per_word = max(1, n_total // len(words))
    tone_len = max(1, int(per_word * 0.75))
    t = np.arange(tone_len, dtype=np.float32) / WIRE_RATE
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.015).astype(np.float32)
    for i, word in enumerate(words):
        freq = 220.0 + (zlib.crc32(word.encode()) % 220)
        start = i * per_word
        seg = amplitude * fade * np.sin(2 * np.pi * freq * t)
        end = min(n_total, start + tone_len)
        out[start:end] = seg[: end - start]
    return np.asarray(np.round(out * 32767), dtype=np.int16)
