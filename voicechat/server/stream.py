"""One response's output, planned up front and released on a clock (sans-I/O).

``ResponseStream`` turns planned outputs (a spoken message, a text message, function calls)
into the GA §4.2 event sequence with due times: audio goes out in variable-size deltas,
each due once that much audio would have been generated at ``speed`` × real time, with the
transcript deltas interleaved just ahead of the audio they describe. ``due(now)`` releases
what is due; ``cancel(reason)`` closes every started item with done events (status
``incomplete``) and ends with ``response.done`` ``cancelled``. Items are mutated as their
events go out, so the conversation always holds exactly what the client was sent.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from voicechat.protocol.constants import WIRE_RATE
from voicechat.server.items import Item
from voicechat.server.usage import assistant_audio_tokens, text_tokens

Event = dict[str, Any]
TEXT_DELTA_MS = 40.0


@dataclass(frozen=True)
class Pacing:
    speed: float = 4.0
    delta_ms: tuple[int, int] = (20, 240)
    delta_delay_ms: float = 0.0


@dataclass
class PlannedOutput:
    """``message``: ``text`` (+ ``audio`` PCM bytes for audio); or a ``function_call``; or an
    ``mcp_call`` (``mcp_result``: its ``output`` or ``error``) or ``mcp_approval_request``."""

    kind: Literal["message", "function_call", "mcp_call", "mcp_approval_request"]
    item: Item
    text: str = ""
    audio: bytes | None = None
    arguments: str = ""
    sent_audio: int = 0
    sent_text: str = ""
    started: bool = False
    finished: bool = False
    previous_item_id: str | None = None
    mcp_result: dict[str, Any] = field(default_factory=dict)


@dataclass(order=True)
class _Op:
    due: float
    seq: int
    kind: str = field(compare=False)
    index: int = field(compare=False)
    payload: Any = field(compare=False, default=None)


@dataclass
class StreamContext:
    """What the stream needs from its session (callbacks keep it free of session internals)."""

    response: Event
    add_item: Callable[[Item], str | None]
    """Insert an output item into the conversation; returns its ``previous_item_id``."""
    usage: Callable[[int, int], dict[str, Any]]
    """(output text tokens, output audio tokens) → ``usage``."""
    encode_audio: Callable[[bytes], str]


class ResponseStream:
    def __init__(
        self,
        ctx: StreamContext,
        outputs: list[PlannedOutput],
        start: float,
        pacing: Pacing,
        rng: random.Random,
        *,
        incomplete: bool = False,
    ) -> None:
        self.ctx = ctx
        self.outputs = outputs
        self.incomplete = incomplete
        self.done = False
        self._ops: list[_Op] = []
        self._cursor = 0
        self._plan(start, pacing, rng)

    @property
    def response_id(self) -> str:
        return str(self.ctx.response["id"])

    # ---- planning ---------------------------------------------------------------------

    def _plan(self, start: float, pacing: Pacing, rng: random.Random) -> None:
        clock = start
        deltas = 0
        seq = 0

        def add(due: float, kind: str, index: int, payload: Any = None) -> None:
            nonlocal seq
            self._ops.append(_Op(due, seq, kind, index, payload))
            seq += 1

        for k, out in enumerate(self.outputs):
            add(clock, "item_added", k)
            if out.kind in ("function_call", "mcp_call"):
                for piece in _split(out.arguments, 3):
                    add(clock, "args", k, piece)
                if out.kind == "mcp_call":
                    add(clock, "mcp_running", k)
            elif out.kind == "mcp_approval_request":
                pass  # the item alone: added, then done
            elif out.audio is not None:
                add(clock, "part_added", k)
                clock, deltas = self._plan_audio(k, out, clock, deltas, pacing, rng, add)
            else:
                add(clock, "part_added", k)
                for word in _words(out.text):
                    clock += TEXT_DELTA_MS / pacing.speed / 1000 if math.isfinite(pacing.speed) else 0.0
                    add(clock, "text", k, word)
            add(clock, "item_done", k)
        add(clock, "response_done", -1)
        self._ops.sort()

    def _plan_audio(self, k: int, out: PlannedOutput, clock: float, deltas: int, pacing: Pacing,
                    rng: random.Random, add: Callable[..., None]) -> tuple[float, int]:
        assert out.audio is not None
        n_samples = len(out.audio) // 2
        words = _words(out.text)
        positions = [int(n_samples * i / max(1, len(words))) for i in range(len(words))]
        lo, hi = pacing.delta_ms
        done = 0
        w = 0
        item_start = clock
        while done < n_samples:
            size = min(n_samples - done, max(1, rng.randint(lo, hi) * WIRE_RATE // 1000))
            deltas += 1
            gen_ms = (done + size) / WIRE_RATE * 1000
            due = item_start + (gen_ms / pacing.speed / 1000 if math.isfinite(pacing.speed) else 0.0)
            due += deltas * pacing.delta_delay_ms / 1000
            while w < len(words) and positions[w] < done + size:
                add(due, "transcript", k, words[w])
                w += 1
            add(due, "audio", k, (done, size))
            done += size
            clock = due
        for word in words[w:]:
            add(clock, "transcript", k, word)
        return clock, deltas

    # ---- release ----------------------------------------------------------------------

    def next_due(self) -> float | None:
        return self._ops[self._cursor].due if self._cursor < len(self._ops) else None

    def due(self, now: float) -> list[Event]:
        events: list[Event] = []
        while self._cursor < len(self._ops) and self._ops[self._cursor].due <= now:
            op = self._ops[self._cursor]
            self._cursor += 1
            events.extend(self._run(op))
        return events

    def cancel(self, reason: str) -> list[Event]:
        """Done events for started items, then ``response.done`` cancelled."""
        events: list[Event] = []
        self._cursor = len(self._ops)
        for k, out in enumerate(self.outputs):
            if out.started and not out.finished:
                events.extend(self._item_done(k, "incomplete"))
        events.append(self._response_done("cancelled", {"type": "cancelled", "reason": reason}))
        return events

    def _run(self, op: _Op) -> list[Event]:
        if op.kind == "response_done":
            if self.incomplete:
                return [self._response_done("incomplete", {"type": "incomplete", "reason": "max_output_tokens"})]
            return [self._response_done("completed", None)]
        out = self.outputs[op.index]
        if op.kind == "item_added":
            return self._item_added(op.index)
        if op.kind == "part_added":
            return [self._part_event("response.content_part.added", op.index, self._part(out, empty=True))]
        if op.kind == "item_done":
            last = op.index == len(self.outputs) - 1
            return self._item_done(op.index, "incomplete" if self.incomplete and last else "completed")
        if op.kind == "audio":
            start, size = op.payload
            chunk = out.audio[start * 2 : (start + size) * 2] if out.audio else b""
            out.sent_audio += size
            out.item.audio.setdefault(0, bytearray()).extend(chunk)
            return [self._part_event("response.output_audio.delta", op.index, None, delta=self.ctx.encode_audio(chunk))]
        if op.kind == "mcp_running":
            return [{"type": "response.mcp_call.in_progress", "item_id": out.item.id, "output_index": op.index}]
        out.sent_text += op.payload
        if op.kind == "args" and out.kind == "mcp_call":
            out.item.arguments = out.sent_text
            return [{"type": "response.mcp_call_arguments.delta", "response_id": self.response_id,
                     "item_id": out.item.id, "output_index": op.index, "delta": op.payload}]
        if op.kind == "args":
            out.item.arguments = out.sent_text
            return [{"type": "response.function_call_arguments.delta", "response_id": self.response_id,
                     "item_id": out.item.id, "output_index": op.index, "call_id": out.item.call_id,
                     "delta": op.payload}]
        etype = "response.output_audio_transcript.delta" if op.kind == "transcript" else "response.output_text.delta"
        return [self._part_event(etype, op.index, None, delta=op.payload)]

    # ---- event builders ---------------------------------------------------------------

    def _part(self, out: PlannedOutput, empty: bool = False) -> dict[str, Any]:
        text = "" if empty else out.sent_text
        if out.audio is not None:
            return {"type": "audio", "transcript": text}
        return {"type": "text", "text": text}

    def _part_event(self, etype: str, k: int, part: dict[str, Any] | None, **extra: Any) -> Event:
        event: Event = {"type": etype, "response_id": self.response_id, "item_id": self.outputs[k].item.id,
                        "output_index": k, "content_index": 0}
        if part is not None:
            event["part"] = part
        event.update(extra)
        return event

    def _item_added(self, k: int) -> list[Event]:
        out = self.outputs[k]
        out.started = True
        out.item.status = "in_progress"
        events: list[Event] = [{"type": "response.output_item.added", "response_id": self.response_id,
                                "output_index": k, "item": out.item.wire()}]
        out.previous_item_id = self.ctx.add_item(out.item)
        events.append({"type": "conversation.item.added", "previous_item_id": out.previous_item_id,
                       "item": out.item.wire()})
        if out.kind == "message":
            ptype = "output_audio" if out.audio is not None else "output_text"
            key = "transcript" if out.audio is not None else "text"
            out.item.content = [{"type": ptype, key: ""}]
        return events

    def _item_done(self, k: int, status: str) -> list[Event]:
        out = self.outputs[k]
        out.finished = True
        out.item.status = status
        events: list[Event] = []
        if out.kind == "function_call":
            out.item.arguments = out.sent_text
            events.append({"type": "response.function_call_arguments.done", "response_id": self.response_id,
                           "item_id": out.item.id, "output_index": k, "call_id": out.item.call_id,
                           "name": out.item.name, "arguments": out.sent_text})
        elif out.kind == "mcp_call":
            events.extend(self._mcp_call_done(k, status))
        elif out.kind == "mcp_approval_request":
            pass
        elif out.audio is not None:
            out.item.content = [{"type": "output_audio", "transcript": out.sent_text}]
            events.append(self._part_event("response.output_audio.done", k, None))
            events.append(self._part_event("response.output_audio_transcript.done", k, None, transcript=out.sent_text))
        else:
            out.item.content = [{"type": "output_text", "text": out.sent_text}]
            events.append(self._part_event("response.output_text.done", k, None, text=out.sent_text))
        if out.kind == "message":
            events.append(self._part_event("response.content_part.done", k, self._part(out)))
        events.append({"type": "response.output_item.done", "response_id": self.response_id,
                       "output_index": k, "item": out.item.wire()})
        events.append({"type": "conversation.item.done", "previous_item_id": out.previous_item_id,
                       "item": out.item.wire()})
        return events

    def _mcp_call_done(self, k: int, status: str) -> list[Event]:
        """The service has the call's arguments, then its result (output or error)."""
        out = self.outputs[k]
        out.item.arguments = out.sent_text
        events: list[Event] = [{"type": "response.mcp_call_arguments.done", "response_id": self.response_id,
                                "item_id": out.item.id, "output_index": k, "arguments": out.sent_text}]
        if status != "completed":
            return events  # cut short: no result
        if "error" in out.mcp_result:
            out.item.fields["error"] = out.mcp_result["error"]
        else:
            out.item.output = out.mcp_result.get("output") or ""
        result = "failed" if "error" in out.mcp_result else "completed"
        return [*events, {"type": f"response.mcp_call.{result}", "item_id": out.item.id, "output_index": k}]

    def _response_done(self, status: str, details: dict[str, Any] | None) -> Event:
        self.done = True
        out_text = sum(text_tokens(o.sent_text) for o in self.outputs)
        out_audio = sum(assistant_audio_tokens(o.sent_audio / WIRE_RATE * 1000) for o in self.outputs)
        response = dict(self.ctx.response)
        response.update(
            status=status,
            status_details=details,
            output=[o.item.wire() for o in self.outputs if o.started],
            usage=self.ctx.usage(out_text, out_audio),
        )
        return {"type": "response.done", "response": response}

    def end_time(self) -> float:
        """When the last planned event (``response.done``) is due."""
        return self._ops[-1].due


def _words(text: str) -> list[str]:
    """Transcript deltas: words with their leading whitespace; they concatenate to ``text``."""
    return re.findall(r"\s*\S+|\s+", text)


def _split(text: str, n: int) -> list[str]:
    if not text:
        return [""]
    size = max(1, math.ceil(len(text) / n))
    return [text[i : i + size] for i in range(0, len(text), size)]
