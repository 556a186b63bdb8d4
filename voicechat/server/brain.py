"""Brains: what the local server says back for a finished user turn.

A brain is pure: it gets a ``Turn`` (the user's audio at 24 kHz and/or text, the
recogniser's transcript, or a function result) and returns a ``Reply`` (transcript/text,
optional int16 24 kHz audio, optional function calls). When a spoken reply has no audio the
session synthesises ``tone_speech`` for it.

* ``EchoBrain`` (default) plays the user's own committed audio back, with the transcript
  ``"You said: …"`` (or ``"(echo of 1.4 s of your audio)"`` without a recogniser); a typed
  turn gets ``"You said: <text>"``. When the session has function tools and the turn's text
  (typed, or the recogniser's transcript) names one (``echo_tool``, ``echo tool``) or its last
  word (``time`` for ``get_current_time``), the reply is a call of each such tool instead, with
  arguments made from its schema (see `tool_calls_for`); the tool's output is then answered
  with ``"The tool returned: …"``.
* ``ScriptedBrain`` replays a fixed list of replies in a cycle, for tests.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping, Sequence
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
    function_outputs: tuple[str, ...] = ()  # every output of the latest calls (the last one above)
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
        said = turn.text or turn.transcript
        calls = tool_calls_for(said, turn.tools) if said and turn.function_output is None else ()
        if calls:
            return Reply("", function_calls=calls)
        if turn.audio is not None and turn.audio.size:
            seconds = turn.audio.size / WIRE_RATE
            text = f"You said: {turn.transcript}" if turn.transcript else f"(echo of {seconds:.1f} s of your audio)"
            return Reply(text, turn.audio)
        if turn.text:
            return Reply(f"You said: {turn.text}")
        if turn.function_output is not None:
            outputs = turn.function_outputs or (turn.function_output,)
            told = "; ".join(_shorten(o, MAX_TOLD_CHARS) for o in outputs)
            return Reply(f"The tool{'s' if len(outputs) > 1 else ''} returned: {told}")
        return Reply("I have nothing to echo yet. Say something!")


MAX_TOLD_CHARS = 200  # of each tool output the echo brain reads back
_GENERIC_WORDS = {"tool", "tools", "data", "info", "command", "function", "thing", "stuff", "test"}


def tool_calls_for(said: str, tools: Sequence[Mapping[str, Any]]) -> tuple[FunctionCall, ...]:
    """Calls of the function tools ``said`` mentions, in the session's tool order.

    A tool is mentioned by its name (``_``/``-`` may be spaces, any case) or by the last word
    of its name when that word is specific enough (``time`` for ``get_current_time``, not
    ``tool``). Arguments come from the tool's schema: see `example_arguments`.
    """
    spoken = _normalise(said)
    words = set(spoken.split())
    calls = []
    for tool in tools:
        name = tool.get("name")
        if tool.get("type", "function") != "function" or not isinstance(name, str):
            continue
        phrase = _normalise(name)
        last = phrase.split()[-1] if phrase else ""
        at = f" {spoken} ".find(f" {phrase} ") if phrase else -1
        if at < 0 and not (len(last) >= 4 and last not in _GENERIC_WORDS and last in words):
            continue
        rest = spoken[at + len(phrase) :].strip() if at >= 0 else ""
        schema = tool.get("parameters")
        arguments = example_arguments(schema if isinstance(schema, Mapping) else {}, _rest_of(said, name) or rest)
        calls.append(FunctionCall(name, json.dumps(arguments)))
    return tuple(calls)


def example_arguments(schema: Mapping[str, Any], said: str = "") -> dict[str, Any]:
    """Values for the schema's required properties: its default, first enum value or example,
    else by type (a string gets what the user said after the tool's name)."""
    properties = schema.get("properties")
    required = schema.get("required")
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        return {}
    return {key: _example(properties[key], said) for key in required if isinstance(properties.get(key), Mapping)}


def _example(prop: Mapping[str, Any], said: str) -> Any:
    if "default" in prop:
        return prop["default"]
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return prop["enum"][0]
    if isinstance(prop.get("examples"), list) and prop["examples"]:
        return prop["examples"][0]
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return {
        "string": said or "example",
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": example_arguments(prop, said),
        "null": None,
    }.get(kind, said or "example")


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def _rest_of(said: str, name: str) -> str:
    """What the user said after the tool's exact name, without leading punctuation."""
    at = said.lower().find(name.lower())
    return said[at + len(name) :].strip(" \t:,;-") if at >= 0 else ""


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
