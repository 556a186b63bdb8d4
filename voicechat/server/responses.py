"""Response lifecycle: create (one active at a time), brain reply → stream, cancel, finish.

A response whose turn is user audio with a recognition job still running waits for it when
the brain needs the transcript (``response.created`` goes out at once, content later) or
when the turn's transcript timing is ``before`` (then even ``response.created`` waits, so
the transcription events precede it). Transcription events of the response's own turn are
placed before it, mid-stream, or right after its ``response.done`` (``during``/``after``).
Out-of-band responses (``conversation: "none"``) are rejected as unsupported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr  # type: ignore[import-untyped]

from voicechat.protocol.constants import WIRE_RATE
from voicechat.server import apierrors as E
from voicechat.server import config as C
from voicechat.server import schema as S
from voicechat.server.brain import Reply, Turn, tone_speech
from voicechat.server.items import Item
from voicechat.server.state import ActiveResponse, Event, SessionBase
from voicechat.server.stream import Pacing, PlannedOutput, ResponseStream, StreamContext
from voicechat.server.usage import (
    Tokens,
    assistant_audio_tokens,
    context_tokens,
    response_usage,
    text_tokens,
)


def _metadata(value: Any, path: str) -> dict[str, str]:
    checked = S.free_object(value, path)
    if len(checked) > 16:
        raise E.ApiError("invalid_value", f"Invalid '{path}': at most 16 key-value pairs are allowed.", path)
    for key, val in checked.items():
        S.string(64)(key, f"{path}.{key}")
        S.string(512)(val, f"{path}.{key}")
    return checked


RESPONSE_PARAMS = S.nullable(
    S.obj(
        {
            "conversation": S.string(),
            "input": S.array(S.free_object),
            "instructions": S.string(),
            "output_modalities": C.modalities,
            "audio": S.obj({"output": S.obj({"format": C.audio_format, "voice": C.voice})}),
            "tools": C.TOOLS,
            "tool_choice": C.TOOL_CHOICE,
            "max_output_tokens": S.nullable(C.max_tokens),
            "metadata": S.nullable(_metadata),
            "prompt": C.PROMPT,
            "reasoning": C.REASONING,
            "parallel_tool_calls": S.boolean,
        }
    )
)


def _cost(out: PlannedOutput) -> int:
    audio_ms = len(out.audio or b"") / 2 / WIRE_RATE * 1000
    return text_tokens(out.text) + text_tokens(out.arguments) + assistant_audio_tokens(audio_ms)


def _limit_tokens(outputs: list[PlannedOutput], limit: Any) -> bool:
    """Cut the planned outputs to ``max_output_tokens``; True when something was cut."""
    if not isinstance(limit, int):
        return False
    remaining = limit
    for k, out in enumerate(outputs):
        cost = _cost(out)
        if cost <= remaining:
            remaining -= cost
            continue
        if out.kind == "function_call" or remaining <= 0:
            del outputs[k:]
        else:
            share = remaining / cost
            if out.audio is not None:
                out.audio = out.audio[: int(len(out.audio) * share) // 2 * 2]
            out.text = out.text[: int(len(out.text) * share)]
            del outputs[k + 1 :]
        return True
    return False


class ResponsesMixin(SessionBase):
    def handle_response_create(self, event: Event, now: float) -> None:
        params = RESPONSE_PARAMS(event.get("response"), "response") or {}
        conversation = params.get("conversation", "auto")
        if conversation == "none":
            raise E.ApiError(
                "invalid_value",
                "Out-of-band responses (conversation: 'none') are not supported by the voicechat local server.",
                "response.conversation",
            )
        if conversation not in ("auto", self.conversation_id):
            raise E.invalid_value("response.conversation", conversation, ("auto", "none"))
        self.request_response(params, now)

    def handle_response_cancel(self, event: Event, now: float) -> None:
        wanted = event.get("response_id")
        if wanted is not None and not isinstance(wanted, str):
            raise E.invalid_type("response_id", "string", wanted)
        if self.active is None or (wanted and wanted != self.active.id):
            raise E.cancel_not_active()
        self.cancel_active("client_cancelled", now)

    # ---- lifecycle --------------------------------------------------------------------

    def request_response(self, params: dict[str, Any], now: float) -> None:
        if self.active is not None:
            raise E.active_response(self.active.id)
        turn = self._turn_item()
        response_id = self.ids.make("resp")
        active = ActiveResponse(response_id, self._response_base(response_id, params), params,
                                turn.id if turn else None)
        pending = self.pending_tx.get(turn.id) if turn else None
        if pending is not None and not pending.done and (self.brain.wants_transcript or pending.mode == "before"):
            active.waiting_for = active.turn_item_id
            if pending.mode != "before":
                active.wait_deadline = now + self.opts.transcript_wait_ms / 1000
        self.active = active
        if not (active.waiting_for and pending is not None and pending.mode == "before"):
            self._announce(now)
        if active.waiting_for is None:
            self._start_stream(now)

    def _response_base(self, response_id: str, params: dict[str, Any]) -> Event:
        out_audio = params.get("audio", {}).get("output", {})
        return {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id,
            "output_modalities": params.get("output_modalities", self.config["output_modalities"]),
            "max_output_tokens": params.get("max_output_tokens") or self.config["max_output_tokens"],
            "audio": {"output": {"format": out_audio.get("format", self.output_format),
                                 "voice": out_audio.get("voice", self.config["audio"]["output"]["voice"])}},
            "usage": None,
            "metadata": params.get("metadata"),
        }

    def _announce(self, now: float) -> None:
        assert self.active is not None
        self.active.created_sent = True
        self.emit({"type": "response.created", "response": self.active.base})
        context = context_tokens(self.conversation.items(), self.config["instructions"], self.config["tools"])
        self.emit({"type": "rate_limits.updated", "rate_limits": self.rate_limits.reserve(now, context.total)})

    def _turn_item(self) -> Item | None:
        for item in reversed(self.conversation.items()):
            if (item.type == "message" and item.role == "user") or item.type == "function_call_output":
                return item
        return None

    def _start_stream(self, now: float) -> None:
        active = self.active
        assert active is not None
        modality = active.base["output_modalities"][0]
        turn = self._build_turn(active, modality)
        outputs = self.plan_mcp(turn, modality)  # a response about an MCP tool (mcp.py), else the brain's
        if outputs is None:
            outputs = self._plan_outputs(self.brain.reply(turn), modality)
        incomplete = _limit_tokens(outputs, active.base["max_output_tokens"])
        instructions = active.params.get("instructions", self.config["instructions"])
        context = context_tokens(self.conversation.items(), instructions, self.config["tools"])
        cached, self.cached = self.cached, context
        ctx = StreamContext(
            response=active.base,
            add_item=self.conversation.insert,
            usage=lambda text, audio: response_usage(context, cached, text, audio),
            encode_audio=self.encode_for(active.base["audio"]["output"]["format"]),
        )
        pacing = Pacing(self.opts.speed, self.opts.delta_ms, self.opts.delta_delay_ms)
        active.stream = ResponseStream(ctx, outputs, now, pacing, self.rng, incomplete=incomplete)
        active.started_at = now
        active.audio_seconds = sum(len(o.audio or b"") for o in outputs) / 2 / WIRE_RATE
        self.tick_responses(now)

    def _build_turn(self, active: ActiveResponse, modality: str) -> Turn:
        item = self.conversation.get(active.turn_item_id) if active.turn_item_id else None
        common: dict[str, Any] = {
            "instructions": active.params.get("instructions", self.config["instructions"]),
            "output_modalities": (modality,),
            "tools": tuple(active.params.get("tools", self.config["tools"])),
        }
        if item is None:
            return Turn(**common)
        if item.type == "function_call_output":
            return Turn(function_output=item.output, function_outputs=self._latest_outputs(), **common)
        texts = [p["text"] for p in item.content if p["type"] == "input_text"]
        pending = self.pending_tx.get(item.id)
        heard = pending.text if pending is not None else None
        transcripts = [p.get("transcript") for p in item.content if p["type"] == "input_audio"]
        heard = heard or next((t for t in transcripts if t), None)
        return Turn(audio=self.turn_audio(item), text=" ".join(texts) or None, transcript=heard, **common)

    def _latest_outputs(self) -> tuple[str, ...]:
        """The outputs of the latest function calls, in order (calls in between are skipped)."""
        outputs: list[str] = []
        for item in reversed(self.conversation.items()):
            if item.type == "message":
                break
            if item.type == "function_call_output":
                outputs.append(item.output or "")
        return tuple(reversed(outputs))

    def _plan_outputs(self, reply: Reply, modality: str) -> list[PlannedOutput]:
        outputs: list[PlannedOutput] = []
        if reply.text or reply.audio is not None or not reply.function_calls:
            if modality == "audio":
                audio = reply.audio if reply.audio is not None else tone_speech(reply.text)
                outputs.extend(self._spoken(self._apply_speed(audio), reply.text))
            else:
                outputs.append(PlannedOutput("message", self._assistant_item(), text=reply.text))
        for call in reply.function_calls:
            item = Item(self.ids.make("item"), "function_call", status="in_progress", name=call.name,
                        call_id=self.ids.call_id(), arguments="")
            outputs.append(PlannedOutput("function_call", item, arguments=call.arguments))
        return outputs

    def _spoken(self, audio: np.ndarray, text: str) -> list[PlannedOutput]:
        pcm = np.asarray(audio, dtype="<i2").tobytes()
        words = text.split(" ")
        if self.opts.items_per_response == 1 or len(words) < 2 or len(pcm) < 4:
            return [PlannedOutput("message", self._assistant_item(), text=text, audio=pcm)]
        cut = (len(pcm) // 4) * 2
        half = len(words) // 2
        return [
            PlannedOutput("message", self._assistant_item(), text=" ".join(words[:half]), audio=pcm[:cut]),
            PlannedOutput("message", self._assistant_item(), text=" ".join(words[half:]), audio=pcm[cut:]),
        ]

    def _apply_speed(self, audio: np.ndarray) -> np.ndarray:
        speed = float(self.config["audio"]["output"]["speed"])
        if speed == 1.0 or audio.size == 0:
            return audio
        return np.asarray(soxr.resample(audio, WIRE_RATE * speed, WIRE_RATE), dtype=np.int16)

    def _assistant_item(self) -> Item:
        return Item(self.ids.make("item"), "message", role="assistant", status="in_progress")

    # ---- clock ------------------------------------------------------------------------

    def tick_responses(self, now: float) -> None:
        active = self.active
        if active is not None and active.wait_deadline is not None and now >= active.wait_deadline \
                and active.waiting_for is not None:
            active.waiting_for = active.wait_deadline = None
            self._start_stream(now)
            return
        if active is not None and active.stream is not None:
            self.emit_all(active.stream.due(now))
            if active.stream.done:
                self._finish(now)
        while self.timed and self.timed[0][0] <= now:
            _, _, events = self.timed.pop(0)
            self.emit_all(events)

    def responses_deadline(self) -> float | None:
        times = [self.timed[0][0]] if self.timed else []
        if self.active is not None and self.active.waiting_for is not None and self.active.wait_deadline is not None:
            times.append(self.active.wait_deadline)
        if self.active is not None and self.active.stream is not None:
            due = self.active.stream.next_due()
            if due is not None:
                times.append(due)
        return min(times) if times else None

    def cancel_active(self, reason: str, now: float) -> None:
        active = self.active
        assert active is not None
        if active.stream is not None:
            self.emit_all(active.stream.cancel(reason))
        else:
            if not active.created_sent:
                self._announce(now)
            done = dict(active.base)
            done.update(status="cancelled", status_details={"type": "cancelled", "reason": reason},
                        usage=response_usage(Tokens(), Tokens(), 0, 0))
            self.emit({"type": "response.done", "response": done})
        self._finish(now)

    def _finish(self, now: float) -> None:
        active = self.active
        assert active is not None
        self.active = None
        self.emit_all(self.after_response.pop(active.id, []))
        self.arm_idle(max(now, active.started_at + active.audio_seconds))

    # ---- transcripts of the response's own turn ---------------------------------------

    def on_transcript_ready(self, item_id: str, events: list[Event], now: float) -> None:
        pending = self.pending_tx.get(item_id)
        mode = pending.mode if pending is not None else "before"
        active = self.active
        deferred: list[Event] = []
        if active is None or active.turn_item_id != item_id or mode == "before" or not active.created_sent:
            self.emit_all(events)
        elif mode == "after":
            self.after_response.setdefault(active.id, []).extend(events)
        else:
            deferred = events
        if active is not None and active.waiting_for == item_id:
            active.waiting_for = active.wait_deadline = None
            if not active.created_sent:
                self._announce(now)
            self._start_stream(now)
        self.pending_tx.pop(item_id, None)
        if deferred:
            stream = self.active.stream if self.active is not None else None
            end = stream.end_time() if stream is not None else now
            self.schedule(now + self.rng.uniform(0.2, 0.8) * max(0.0, end - now), deferred)
