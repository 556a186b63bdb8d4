"""Property-based fuzzing of the codec and the session core (hypothesis).

* The codec: any text or bytes a server could send (garbled JSON, binary, missing or mistyped
  fields, unknown types, huge strings and numbers) decodes to an event or raises
  ``MalformedEvent``; nothing else escapes.
* The session core: plausible server event sequences (whole turns and replies, cut short,
  shuffled, with ids that sometimes name unknown items or responses) interleaved with user
  intents and a real ``Player`` playing out, checking after every step: no exception, one
  response at a time, truncates never past what was played or received, written turns in
  order and never changed afterwards.

The session fuzzer runs ``VOICECHAT_FUZZ_EXAMPLES`` sequences (default 10,000, about 25 s on
two cores) and the codec fuzzer a quarter as many frames, derandomized and without an example
database, so CI sees the same cases on every run; each test counts the cases it ran and fails
if that falls short. ``make fuzz`` runs 200,000 sequences with fresh randomness
(``VOICECHAT_FUZZ_RANDOM=1``); a failure prints its reproduction blob.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from tests.helpers.fuzzing import EXAMPLES, fuzz_settings, paths
from voicechat import effects as fx
from voicechat.audio.player import Player
from voicechat.protocol import codec
from voicechat.protocol import events as ev
from voicechat.protocol.constants import WIRE_RATE
from voicechat.protocol.session_config import SessionConfig, TurnDetection
from voicechat.session import SESSION_UPDATE_ID, Phase, Session

FRAMES = max(1, EXAMPLES // 4)  # codec frames: each costs more to generate than a sequence's steps


# ==== the codec ===================================================================================

FIELDS = (
    "type", "event_id", "item_id", "response_id", "previous_item_id", "output_index", "content_index",
    "delta", "transcript", "text", "audio_start_ms", "audio_end_ms", "item", "response", "session",
    "error", "part", "call_id", "name", "arguments", "rate_limits", "output", "usage", "status",
    "status_details", "content", "id", "role", "code", "message", "param", "input_token_details",
    "output_token_details", "cached_tokens_details", "input_tokens", "audio_tokens", "reason",
)
EVENT_TYPES = (*sorted(codec.KNOWN_SERVER_TYPES), "response.mcp_call.completed", "x", "")
NUMBER = "\x00NUMBER\x00"  # replaced by a raw numeric token after encoding
NUMBER_TOKENS = ("1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1" * 5000, "-0", "1.7e308", "2" * 30, "0.5")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from((*EVENT_TYPES, "AAAA", "AAE=", "=", "resp_1", "item_1", NUMBER)),
    st.integers(0, 300_000).map(lambda n: "A" * (n - n % 4)),  # huge (valid base64) strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
event_objects = st.builds(
    lambda etype, fields: {"type": etype, **fields},
    st.sampled_from(EVENT_TYPES),
    st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=6),
)

# Every field any known event reads, well-formed: each known type decodes this (given its type).
_ITEM = {
    "id": "item_1", "type": "message", "role": "assistant", "status": "completed", "name": "f", "call_id": "c",
    "arguments": "{}", "output": "x", "content": [{"type": "output_audio", "transcript": "hi", "text": "hi"}],
}
_USAGE = {
    "total_tokens": 3, "input_tokens": 1, "output_tokens": 2,
    "input_token_details": {"text_tokens": 1, "audio_tokens": 0, "image_tokens": 0, "cached_tokens": 0,
                            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
    "output_token_details": {"text_tokens": 1, "audio_tokens": 1},
}
TEMPLATE: dict[str, Any] = {
    "event_id": "event_1", "item_id": "item_1", "response_id": "resp_1", "previous_item_id": "item_0",
    "output_index": 0, "content_index": 0, "delta": "AAAA", "transcript": "hi", "text": "hi",
    "audio_start_ms": 10, "audio_end_ms": 20, "call_id": "c", "name": "f", "arguments": "{}",
    "item": _ITEM, "part": {"type": "audio", "transcript": "hi"}, "session": {"id": "sess_1"},
    "error": {"type": "invalid_request_error", "code": "x", "message": "m", "param": "p", "event_id": "e"},
    "rate_limits": [{"name": "tokens", "limit": 1, "remaining": 1, "reset_seconds": 1.5}],
    "response": {
        "id": "resp_1", "status": "cancelled", "conversation_id": "conv_1", "output": [_ITEM], "usage": _USAGE,
        "status_details": {"type": "cancelled", "reason": "turn_detected", "error": {"type": "t", "message": "m"}},
    },
}


TEMPLATE_PATHS = paths(TEMPLATE)


def _mutate(obj: Any, path: tuple[Any, ...], replacement: Any, drop: bool) -> None:
    """Drop or replace the value at ``path`` in place (a no-op where an earlier change removed it)."""
    for key in path[:-1]:
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(obj, dict | list):
        try:
            if drop:
                del obj[path[-1]]
            else:
                obj[path[-1]] = replacement
        except (KeyError, IndexError, TypeError):
            return


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event of some type with a few fields dropped or swapped for anything."""
    obj = json.loads(json.dumps(TEMPLATE))
    obj["type"] = draw(st.sampled_from(EVENT_TYPES))
    for path, drop, replacement in draw(
        st.lists(st.tuples(st.sampled_from(TEMPLATE_PATHS), st.booleans(), scalars | scalars | json_values), min_size=1, max_size=2)
    ):
        _mutate(obj, path, replacement, drop)
    return obj


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "event", "json", "text", "binary", "garbled", "deep"]))
    if kind == "text":
        return draw(st.text(max_size=64))
    if kind == "binary":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        depth = draw(st.integers(1, 200_000))
        return draw(st.sampled_from(["[", '{"a":', '{"type":"error","error":'])) * depth
    strategy = {"event": event_objects, "json": json_values}.get(kind, mutated_events())
    text = json.dumps(draw(strategy), allow_nan=True)
    text = text.replace(json.dumps(NUMBER), draw(st.sampled_from(NUMBER_TOKENS)))
    if kind == "garbled" and text:
        at = draw(st.integers(0, len(text) - 1))
        cut = draw(st.integers(0, 4))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + cut :]
    return text


def test_codec_never_lets_an_exception_escape() -> None:
    seen = Counter[str]()

    @fuzz_settings(FRAMES)
    @given(frames())
    def decode(frame: str | bytes) -> None:
        seen["frames"] += 1
        try:
            event = codec.decode_server(frame)
        except codec.MalformedEvent:
            seen["malformed"] += 1
        else:
            assert isinstance(event, ev.ServerEvent)
            seen["unknown" if isinstance(event, ev.UnknownEvent) else "known"] += 1
        try:
            obj = codec.decode_client(frame)
        except codec.MalformedEvent:
            pass
        else:
            assert isinstance(obj, dict) and isinstance(obj["type"], str)

    decode()
    assert seen["frames"] >= FRAMES, seen
    assert seen["malformed"] and seen["known"] and seen["unknown"], seen


# ==== the session core ================================================================================

UIDS = ("item_u0", "item_u1", "item_u2")
AIDS = ("item_a0", "item_a1", "item_a2")
ITEM_IDS = (*UIDS, *AIDS, "item_f0", "item_x")
RIDS = ("resp_0", "resp_1", "resp_2")
RESP_IDS = (*RIDS, "resp_x")
CALL_IDS = ("call_0", "call_1")
WORDS = ("", "hi ", "hello there", "ok.", " and then", "\x1b[31mred", "well, ")
ERROR_CODES = (
    None, "conversation_already_has_active_response", "response_cancel_not_active",
    "input_audio_buffer_commit_empty", "unsupported_content_type", "cannot_update_voice",
    "session_expired", "beta_api_shape_disabled", "model_not_found", "invalid_value",
    "unknown_parameter", "invalid_event",
)
CONFIGS = (
    SessionConfig(transcribe_model="gpt-4o-mini-transcribe"),  # server VAD, the default
    SessionConfig(),  # no input transcription
    SessionConfig(turn_detection=None, transcribe_model="whisper-1"),  # manual turns
    SessionConfig(turn_detection=TurnDetection(interrupt_response=False)),
    SessionConfig(turn_detection=TurnDetection(create_response=False), transcribe_model="whisper-1"),
    SessionConfig(turn_detection=TurnDetection(type="semantic_vad"), output_modalities=("text",)),
)

SAMPLES = (0, 1, 7, 240, 480, 1200, 2400)  # per audio delta (0.01 s = 240)
PART_TYPES = ("input_audio", "input_text", "output_audio", "output_text", "audio", "text", "input_image", "?")
STATUSES = ("completed", "completed", "cancelled", "incomplete", "failed", "in_progress")

Action = tuple[Any, ...]


class Grammar:
    """One step of a conversation, drawn from a seeded ``Random``.

    Hypothesis draws only each step's kind and seed (cheap, so 10,000 sequences fit in CI time,
    and a failing sequence still shrinks step by step); the grammar below turns the seed into
    events. Ids come from small pools, so events often refer to the same items and responses,
    and sometimes to unknown ones.
    """

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.r.randrange(len(options))]

    def maybe(self, value: Any, p: float = 0.5) -> Any:
        return value if self.r.random() < p else None

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    # ---- pieces -----------------------------------------------------------------------------

    def item_id(self) -> str:
        return self.pick(ITEM_IDS)

    def resp_id(self) -> str:
        return self.pick(RESP_IDS)

    def prev(self) -> str | None:
        return self.maybe(self.item_id())

    def words(self) -> str:
        return self.pick(WORDS)

    def pcm(self) -> bytes:
        odd = b"\x10" if self.chance(0.05) else b""  # half a sample: a server or proxy gone wrong
        return b"\x10\x00" * self.pick(SAMPLES) + odd

    def ms(self) -> int:
        return self.r.randrange(0, 5000)

    def part(self) -> ev.ContentPart:
        return ev.ContentPart(self.pick(PART_TYPES), self.maybe(self.words()), self.maybe(self.words()))

    def item(self) -> ev.Item:
        return ev.Item(
            id=self.item_id(),
            type=self.pick(("message", "message", "message", "function_call", "function_call_output")),
            role=self.pick(("user", "assistant", "assistant", "system", None)),
            status=self.pick(("completed", "in_progress", "incomplete", None)),
            content=tuple(self.part() for _ in range(self.r.randrange(3))),
            name=self.maybe("get_time"),
            call_id=self.maybe(self.pick(CALL_IDS)),
            arguments=self.maybe("{}"),
        )

    def usage(self) -> ev.Usage | None:
        if self.chance(0.3):
            return None
        n = self.r.randrange
        return ev.Usage(input_tokens=n(500), output_tokens=n(500), total_tokens=n(1000), input_audio=n(100),
                        output_audio=n(100), input_cached=n(100))

    def response(self) -> ev.Response:
        return ev.Response(
            id=self.resp_id(),
            status=self.pick(STATUSES),
            reason=self.pick((None, "turn_detected", "client_cancelled", "max_output_tokens")),
            output=tuple(self.item() for _ in range(self.r.randrange(3))),
            usage=self.usage(),
            error_message=self.maybe(self.words()),
        )

    def error(self) -> ev.ErrorEvent:
        return ev.ErrorEvent(
            "e",
            type=self.pick(("invalid_request_error", "server_error")),
            code=self.pick(ERROR_CODES),
            message=self.pick(("boom", "Audio content of 9250ms is already shorter than 57340ms", "")),
            param=self.maybe("session.type"),
            client_event_id=self.pick((None, None, "vc_1", "vc_2", SESSION_UPDATE_ID)),
        )

    def ids(self) -> tuple[str, str, int, int]:
        return self.resp_id(), self.item_id(), self.r.randrange(3), self.r.randrange(2)

    # ---- steps ------------------------------------------------------------------------------

    def server_event(self) -> ev.ServerEvent:
        kind = self.r.randrange(32)
        if kind == 0:
            return ev.SessionCreated("e", {"id": "sess_1"})
        if kind == 1:
            return ev.SessionUpdated("e", {"id": "sess_1", "expires_at": 3600})
        if kind in (2, 3):
            return self.error()
        if kind == 4:
            return ev.SpeechStarted("e", self.item_id(), self.ms())
        if kind == 5:
            return ev.SpeechStopped("e", self.item_id(), self.ms())
        if kind == 6:
            return ev.BufferCommitted("e", self.item_id(), self.prev())
        if kind == 7:
            return ev.BufferCleared("e")
        if kind == 8:
            return ev.BufferTimeoutTriggered("e", self.item_id(), self.ms(), self.ms())
        if kind == 9:
            return ev.ItemAdded("e", self.item(), self.prev())
        if kind == 10:
            return ev.ItemDone("e", self.item(), self.prev())
        if kind == 11:
            return ev.ItemRetrieved("e", self.item())
        if kind == 12:
            return ev.ItemTruncated("e", self.item_id(), 0, self.ms())
        if kind == 13:
            return ev.ItemDeleted("e", self.item_id())
        if kind == 14:
            return ev.InputTranscriptDelta("e", self.item_id(), 0, self.words())
        if kind == 15:
            return ev.InputTranscriptCompleted("e", self.item_id(), 0, self.words())
        if kind == 16:
            return ev.InputTranscriptFailed("e", self.item_id(), 0, "audio_unintelligible")
        if kind == 17:
            return ev.ResponseCreated("e", ev.Response(self.resp_id(), "in_progress"))
        if kind == 18:
            return ev.ResponseDone("e", self.response())
        if kind == 19:
            return ev.OutputItemAdded("e", self.resp_id(), self.r.randrange(3), self.item())
        if kind == 20:
            return ev.OutputItemDone("e", self.resp_id(), self.r.randrange(3), self.item())
        if kind == 21:
            return ev.ContentPartAdded("e", *self.ids(), self.part())
        if kind == 22:
            return ev.ContentPartDone("e", *self.ids(), self.part())
        if kind in (23, 24):
            return ev.AudioDelta("e", *self.ids(), self.pcm())
        if kind == 25:
            return ev.AudioDone("e", *self.ids())
        if kind == 26:
            return ev.AudioTranscriptDelta("e", *self.ids(), self.words())
        if kind == 27:
            return ev.AudioTranscriptDone("e", *self.ids(), self.words())
        if kind == 28:
            return ev.TextDelta("e", *self.ids(), self.words()) if self.chance(0.5) else ev.TextDone(
                "e", *self.ids(), self.words())
        if kind == 29:
            rid, iid, index, _ = self.ids()
            call = self.pick(CALL_IDS)
            if self.chance(0.5):
                return ev.FunctionCallArgumentsDelta("e", rid, iid, index, call, "{")
            return ev.FunctionCallArgumentsDone("e", rid, iid, index, call, "get_time", "{}")
        if kind == 30:
            return ev.RateLimitsUpdated("e", ({"name": "tokens", "remaining": 1},))
        return ev.UnknownEvent("e", "response.mcp_call.completed", {})

    def intent(self) -> Action:
        kind = self.r.randrange(14)
        if kind in (0, 1):
            return ("block", self.r.randint(1, 12))  # the speaker plays n 20 ms blocks
        if kind == 2:
            return ("wait", self.pick((0.5, 1.6, 5.5)))  # time passes (tick)
        if kind == 3:
            return ("mic", self.pick((20, 60, 120)))
        if kind == 4:
            return ("commit",)
        if kind in (5, 6):
            return ("push_to_talk",)
        if kind == 7:
            return ("say", self.pick(("hello", "  ", "stop")))
        if kind == 8:
            return ("image",)
        if kind == 9:
            return ("interrupt",)
        if kind == 10:
            return ("local_onset",)
        if kind == 11:
            return ("tool_result", self.r.randrange(4))
        if kind == 12:
            return ("mute", self.chance(0.5))
        return ("block", 1)

    def user_turn(self) -> list[Action]:
        """A voice turn as the server reports it (§4.2), maybe cut short or shuffled."""
        uid, prev, start = self.pick(UIDS), self.prev(), self.ms()
        item = ev.Item(uid, "message", "user", "completed", (ev.ContentPart("input_audio"),))
        out: list[Action] = [
            _ev(ev.SpeechStarted("e", uid, start)),
            _ev(ev.SpeechStopped("e", uid, start + self.r.randrange(3000))),
            _ev(ev.BufferCommitted("e", uid, prev)),
            _ev(ev.ItemAdded("e", item, prev)),
            _ev(ev.ItemDone("e", item, prev)),
        ]
        transcript = self.pick(("completed", "completed", "delta", "failed", "none"))
        if transcript == "delta":
            out.append(_ev(ev.InputTranscriptDelta("e", uid, 0, self.words())))
        if transcript in ("completed", "delta"):
            out.append(_ev(ev.InputTranscriptCompleted("e", uid, 0, self.words())))
        elif transcript == "failed":
            out.append(_ev(ev.InputTranscriptFailed("e", uid, 0, "The audio could not be transcribed.")))
        if self.chance(0.2):
            self.r.shuffle(out)
        if self.chance(0.3):
            out.insert(self.r.randrange(len(out) + 1), self.intent())
        return self.cut(out)

    def reply(self) -> list[Action]:
        """A response (§4.2/§4.3): one or two audio items, intents and playback between deltas."""
        rid = self.pick(RIDS)
        aids = self.r.sample(AIDS, self.r.randint(1, 2))
        status = self.pick(STATUSES)
        out: list[Action] = [_ev(ev.ResponseCreated("e", ev.Response(rid, "in_progress")))]
        if self.chance(0.5):
            out.append(_ev(ev.RateLimitsUpdated("e", ({"name": "tokens", "remaining": 9},))))
        prev = self.prev()
        done_items = []
        for index, aid in enumerate(aids):
            added = ev.Item(aid, "message", "assistant", "in_progress")
            out.append(_ev(ev.OutputItemAdded("e", rid, index, added)))
            out.append(_ev(ev.ItemAdded("e", added, prev)))
            out.append(_ev(ev.ContentPartAdded("e", rid, aid, index, 0, ev.ContentPart("audio", transcript=""))))
            text = ""
            for _ in range(self.r.randrange(6)):
                word = self.words()
                text += word
                out.append(_ev(ev.AudioTranscriptDelta("e", rid, aid, index, 0, word)))
                out.append(_ev(ev.AudioDelta("e", rid, aid, index, 0, self.pcm())))
                if self.chance(0.3):
                    out.append(self.intent())
            final = "completed" if status == "completed" else "incomplete"
            done = ev.Item(aid, "message", "assistant", final, (ev.ContentPart("output_audio", transcript=text),))
            out.append(_ev(ev.AudioDone("e", rid, aid, index, 0)))
            out.append(_ev(ev.AudioTranscriptDone("e", rid, aid, index, 0, text)))
            out.append(_ev(ev.OutputItemDone("e", rid, index, done)))
            out.append(_ev(ev.ItemDone("e", done, prev)))
            done_items.append(done)
            prev = aid
        reason = {"cancelled": "turn_detected", "incomplete": "max_output_tokens"}.get(status)
        out.append(_ev(ev.ResponseDone("e", ev.Response(rid, status, reason, tuple(done_items), self.usage()))))
        if self.chance(0.1):  # an ordering no server promises
            self.r.shuffle(out)
        return self.cut(out)

    def cut(self, actions: list[Action]) -> list[Action]:
        """Mostly whole; sometimes cut short (a lost connection, a server that skips events)."""
        return actions[: self.r.randint(1, len(actions))] if self.chance(0.2) else actions


def _ev(event: ev.ServerEvent) -> Action:
    return ("ev", event)


STEP_KINDS = ("intent", "event", "turn", "reply")


def expand(kind: str, seed: int) -> list[Action]:
    g = Grammar(seed)
    if kind == "intent":
        return [g.intent()]
    if kind == "event":
        return [_ev(g.server_event())]
    return g.user_turn() if kind == "turn" else g.reply()


@dataclass
class Harness:
    """Runs a session like ``app.py`` does (effects to a real ``Player``) and checks it each step."""

    config: SessionConfig
    push_to_talk: bool
    device_rate: int
    overreport: int  # extra samples added to what the player reports (the session must clamp)
    now: float = 0.0
    session: Session = field(init=False)
    player: Player = field(init=False)
    sent: list[dict[str, Any]] = field(default_factory=list)
    written: list[fx.Turn] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)  # wire samples handed to the player
    reported: dict[str, int] = field(default_factory=dict)  # played samples reported at the last flush
    talked_over: set[str] = field(default_factory=set)  # responses a barge-in interrupted
    creates_unanswered: int = 0
    calls: list[str] = field(default_factory=list)  # tool calls to run
    order: list[str] = field(default_factory=list)  # item ids in transcript order, after the last step
    follows: list[tuple[str, str]] = field(default_factory=list)  # (item, previous item) as announced
    uses: dict[str, set[str]] = field(default_factory=dict)  # item id -> the responses/announcements using it
    steps: int = 0
    step_effects: list[fx.Effect] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session = Session(self.config)
        self.session.push_to_talk_mode = self.push_to_talk
        self.player = Player(self.device_rate, adaptive=False, capacity_s=10.0, clock=lambda: self.now)
        self.block = np.zeros(self.device_rate // 50, dtype=np.int16)

    # ---- the app's side ---------------------------------------------------------------------

    def dispatch(self, effects: list[fx.Effect]) -> None:
        for effect in effects:
            self.step_effects.append(effect)
            match effect:
                case fx.Send(event):
                    self.sent.append(event)
                case fx.Play(_, item_id, data):
                    self.received[item_id] += len(data) // 2
                    self.player.play(item_id, data)
                case fx.AudioEnd():
                    self.player.end()
                case fx.Flush(_, item_ids):
                    played = self.player.flush(item_ids)
                    played = {i: s + self.overreport for i, s in played.items()}
                    self.reported.update(played)
                    self.dispatch(self.session.playback_flushed(played, self.now))
                case fx.Pause():
                    self.player.pause()
                case fx.Resume():
                    self.player.resume()
                case fx.TurnFinished(turn):
                    self.written.append(turn)
                case fx.RunTool(call_id=call_id):  # the model called a tool: a later step answers it
                    self.calls.append(call_id)

    def on_block(self) -> None:
        self.player.buffer.read_into(self.block)
        self.now += 0.02
        if self.player.drained and self.session.audible_items:
            self.dispatch(self.session.playback_drained())
        self.dispatch(self.session.tick(self.now))

    # ---- one step ---------------------------------------------------------------------------

    def step(self, action: Action) -> None:
        s = self.session
        self.steps += 1
        active_before = s.active_response
        written_before = s.written
        self.step_effects = []
        self.now += 0.01
        match action:
            case ("ev", event):
                if (
                    isinstance(event, ev.ItemAdded | ev.ItemDone)
                    and event.item.id not in self.order
                    and event.previous_item_id in self.order
                ):
                    self.follows.append((event.item.id, event.previous_item_id))
                self.note_use(event)
                self.dispatch(s.handle(event, self.now))
            case ("block", n):
                for _ in range(n):
                    self.on_block()
            case ("wait", seconds):
                self.now += seconds
                self.dispatch(s.tick(self.now))
            case ("mic", millis):
                self.dispatch(s.mic_audio(b"\x00\x01" * (WIRE_RATE * millis // 1000), self.now))
            case ("commit",):
                self.dispatch(s.commit(self.now))
            case ("push_to_talk",):
                self.dispatch(s.push_to_talk(self.now))
            case ("say", text):
                self.dispatch(s.say(text, self.now))
            case ("image",):
                self.dispatch(s.send_image("data:image/png;base64,AAAA", self.now))
            case ("interrupt",):
                self.dispatch(s.interrupt(self.now))
            case ("local_onset",):
                self.dispatch(s.local_onset(self.now))
            case ("tool_result", n):
                call_id = self.calls.pop(n % len(self.calls)) if self.calls else CALL_IDS[n % len(CALL_IDS)]
                self.dispatch(s.tool_result(call_id, '{"ok": true}', self.now))
            case ("mute", on):
                s.muted = on
            case _:
                raise AssertionError(f"unknown action {action!r}")
        self.check(action, active_before, written_before)

    def close(self) -> None:
        """The end of ``App.run``: flush what is still audible, then close the session."""
        self.step_effects = []
        audible = self.session.audible_items
        played = self.player.flush(audible) if audible else None
        self.dispatch(self.session.close(self.now, played))
        self.check(("close",), self.session.active_response, self.session.written)
        s = self.session
        assert s.phase is Phase.CLOSED
        assert s.written == len(s.transcript()), "close writes out every turn"
        assert s.turns_from(0) == [(t, True) for t in self.written]
        assert not s.audible_items
        self.check_order()
        for turn in self.written:  # (audio arriving after its turn was written is not counted)
            if turn.role == "assistant":
                assert turn.audio_ms <= self.received[turn.item_id] * 1000 // WIRE_RATE, turn

    # ---- invariants -------------------------------------------------------------------------

    def check(self, action: Action, active_before: str | None, written_before: int) -> None:
        s = self.session
        sends = [e.event for e in self.step_effects if isinstance(e, fx.Send)]
        kinds = [e["type"] for e in sends]
        event = action[1] if action[0] == "ev" else None

        # One response at a time: a create only when none is active (or this event ended it),
        # and never a second before the server answered the first.
        creates = kinds.count("response.create")
        assert creates <= 1, kinds
        if creates:
            ended = isinstance(event, ev.ResponseDone) and event.response.id == active_before
            assert active_before is None or ended, (active_before, action)
            assert s.active_response is None
            assert self.creates_unanswered == 0, "a second response.create before the first was answered"
            self.creates_unanswered = 1
        if isinstance(event, ev.ResponseCreated) or (
            isinstance(event, ev.ErrorEvent) and event.code == "conversation_already_has_active_response"
        ):
            self.creates_unanswered = 0

        # Cancel only what is active, and never on the server's own speech detection.
        if "response.cancel" in kinds:
            assert active_before is not None, action
            assert not isinstance(event, ev.SpeechStarted), "the server cancels on its own speech detection"

        # A barge-in silences the response it interrupted: no audio of it plays afterwards.
        barge_in = action[0] in ("image", "interrupt") or (action[0] == "say" and action[1].strip()) or (
            action[0] == "push_to_talk" and s.talking
        ) or (isinstance(event, ev.SpeechStarted) and self.config.server_interrupts)
        if barge_in and active_before is not None and s.ready:
            self.talked_over.add(active_before)
        for effect in self.step_effects:
            if isinstance(effect, fx.Play):
                assert effect.response_id not in self.talked_over, ("audio of an interrupted response", effect)
            if isinstance(effect, fx.Flush):
                assert not set(effect.item_ids) & set(s.audible_items), "flushed items are no longer audible"

        # The speaker is never left held without the session knowing (it would stay silent).
        assert s.paused or not self.player.buffer.paused, "the player is paused, the session thinks not"

        # Truncate at what was played, never past what was received.
        for e in sends:
            if e["type"] == "conversation.item.truncate":
                item_id, end_ms = e["item_id"], e["audio_end_ms"]
                received_ms = self.received[item_id] * 1000 // WIRE_RATE
                played_ms = self.reported.get(item_id, 0) * 1000 // WIRE_RATE
                assert self.received[item_id] > 0, ("truncate of an item with no audio", e)
                assert 0 <= end_ms <= min(received_ms, played_ms), (e, received_ms, played_ms)

        # For every item the player knows: played <= received; and it invents no audio. (Per item
        # the player may credit a resampler's tail to the next item, so received is compared in sum.)
        if action[0] in ("block", "close") or any(isinstance(e, fx.Play | fx.Flush) for e in self.step_effects):
            position = self.player.buffer.consumed_total
            tracker = self.player.tracker
            for item_id in self.received:
                assert 0 <= tracker.played_wire_samples(item_id, position) <= tracker.received_wire_samples(item_id)
            assert sum(tracker.received_wire_samples(i) for i in self.received) <= sum(self.received.values())

        # Written turns: each once, a prefix of the transcript, never changed afterwards.
        assert s.written >= written_before
        assert s.written == len(self.written), (s.written, len(self.written))
        transcript = s.transcript()
        assert transcript[: s.written] == self.written, "a written turn changed after it was written"
        self.order = [t.item_id for t in transcript]
        for item_id in set(self.order):  # twice only where the server used the id for a new item
            assert self.order.count(item_id) <= max(1, len(self.uses.get(item_id, ()))), "an item appears twice"
        _ = (s.activity, s.busy, s.paused)

    def note_use(self, event: Any) -> None:
        """Who used an item id: each response whose events name it, the user's events, each
        announcement of it (the session may give a reused id an entry per use, not more)."""
        if isinstance(event, ev.ResponseDone):  # items a server announces only here
            for done in event.response.output:
                self.uses.setdefault(done.id, set()).add(event.response.id)
            return
        item = getattr(event, "item", None)
        item_id = item.id if item is not None else getattr(event, "item_id", None)
        if not isinstance(item_id, str):
            return
        response_id = getattr(event, "response_id", None)
        if isinstance(event, ev.ItemAdded):
            self.uses.setdefault(item_id, set()).add(f"added at step {self.steps}")
        else:  # a response's item, or the user's (speech, its transcript)
            self.uses.setdefault(item_id, set()).add(response_id if isinstance(response_id, str) else "the user")

    def check_order(self) -> None:
        """Items stand after the item the server said they follow (when it was known by then)."""
        for item_id, previous in self.follows:
            if item_id in self.order and previous in self.order:
                assert self.order.index(previous) < self.order.index(item_id), (item_id, previous, self.order)


scenarios = st.tuples(
    st.sampled_from(range(len(CONFIGS))),
    st.booleans(),  # push-to-talk mode (live --vad none)
    st.sampled_from((24_000, 24_000, 48_000)),  # device rate
    st.sampled_from((0, 0, 0, 7, 100_000)),  # over-reported played samples
    st.sampled_from((True, True, True, True, False)),  # the usual handshake first
    # A step is one number: its kind (intent, event, turn, reply) and its grammar's seed.
    st.lists(st.integers(0, 2**34 - 1).map(lambda n: (STEP_KINDS[n % 4], n >> 2)), max_size=10),
)


def run_scenario(scenario: tuple[Any, ...], log: list[str] | None = None) -> Harness:
    config, ptt, rate, overreport, handshake, steps = scenario
    h = Harness(CONFIGS[config], ptt, rate, overreport)
    if handshake:
        h.step(_ev(ev.SessionCreated("e", {"id": "sess_1"})))
        h.step(_ev(ev.SessionUpdated("e", {"id": "sess_1"})))
    for kind, seed in steps:
        for action in expand(kind, seed):
            if log is not None:
                log.append(describe(action))
            h.step(action)
    h.close()
    return h


def describe(action: Action) -> str:
    """One line per action for a failure report (audio as a sample count, defaults left out)."""
    if action[0] != "ev":
        return repr(action)
    event = action[1]
    fields = []
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if name == "event_id" or value in (None, (), ""):
            continue
        fields.append(f"{name}=<{len(value) // 2} samples>" if isinstance(value, bytes) else f"{name}={value!r}")
    return f"{type(event).__name__}({', '.join(fields)})"


def test_session_survives_any_event_sequence() -> None:
    seen = Counter[str]()

    @fuzz_settings(EXAMPLES)
    @given(scenarios)
    def converse(scenario: tuple[Any, ...]) -> None:
        seen["sequences"] += 1
        try:
            h = run_scenario(scenario)
        except Exception:
            log: list[str] = []
            try:
                run_scenario(scenario, log)
            finally:
                note("actions, in order:\n  " + "\n  ".join(log))
            raise
        seen["steps"] += h.steps
        seen["turns"] += len(h.written)
        seen["truncates"] += sum(e["type"] == "conversation.item.truncate" for e in h.sent)
        seen["creates"] += sum(e["type"] == "response.create" for e in h.sent)
        seen["barge_ins"] += len(h.talked_over)

    converse()
    print(seen)
    assert seen["sequences"] >= EXAMPLES, seen
    # The grammar reaches the interesting paths, not just the trivial ones.
    assert seen["turns"] > EXAMPLES and seen["truncates"] > EXAMPLES // 100 and seen["creates"] > EXAMPLES // 10, seen


# ==== regressions the fuzzers found ===================================================================


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"input_audio_buffer.speech_started","item_id":"i","audio_start_ms":NaN}',
        '{"type":"input_audio_buffer.speech_started","item_id":"i","audio_start_ms":Infinity}',
        '{"type":"input_audio_buffer.speech_stopped","item_id":"i","audio_end_ms":-1e999}',
        '{"type":"conversation.item.truncated","item_id":"i","audio_end_ms":1e999}',
        '{"type":"error","n":' + "1" * 5000 + "}",  # past Python's int-string limit: ValueError in json
    ],
)
def test_non_finite_and_overlong_numbers_are_malformed(frame: str) -> None:
    with pytest.raises(codec.MalformedEvent):
        codec.decode_server(frame)
    # Out of range, a number is read as null (no reader can use it), never as a crash later on.
    assert None in codec.decode_client(frame).values()


def test_lists_of_the_wrong_type_are_read_as_empty() -> None:
    done = codec.decode_server('{"type":"response.done","response":{"id":"r","status":"completed","output":5,'
                               '"usage":{"input_tokens":1e999,"output_tokens":NaN,"total_tokens":3}}}')
    assert isinstance(done, ev.ResponseDone)
    assert done.response.output == () and done.response.usage == ev.Usage(total_tokens=3)
    added = codec.decode_server('{"type":"conversation.item.added","item":{"id":"i","type":"message","content":3}}')
    assert isinstance(added, ev.ItemAdded) and added.item.content == ()
    limits = codec.decode_server('{"type":"rate_limits.updated","rate_limits":7}')
    assert isinstance(limits, ev.RateLimitsUpdated) and limits.rate_limits == ()


def _ready(config: SessionConfig) -> Session:
    s = Session(config)
    s.handle(ev.SessionCreated("e", {"id": "sess_1"}), 0.0)
    s.handle(ev.SessionUpdated("e", {"id": "sess_1"}), 0.0)
    assert s.ready
    return s


def _creates(effects: list[fx.Effect]) -> int:
    return sum(isinstance(e, fx.Send) and e.event["type"] == "response.create" for e in effects)


def test_an_item_said_to_follow_itself_is_placed_without_a_crash() -> None:
    s = _ready(SessionConfig())
    item = ev.Item("item_1", "message", "user", "completed", (ev.ContentPart("input_text", text="hi"),))
    s.handle(ev.ItemAdded("e", item, previous_item_id="item_1"), 1.0)  # was: ValueError from list.index
    out = s.handle(ev.ItemDone("e", item, previous_item_id="item_1"), 1.0)
    assert [t.item_id for t in s.transcript()] == ["item_1"]
    assert [e.turn.text for e in out if isinstance(e, fx.TurnFinished)] == ["hi"]


def test_a_transcript_after_its_turn_was_written_leaves_the_turn_as_written() -> None:
    s = _ready(SessionConfig(transcribe_model="whisper-1"))
    item = ev.Item("item_u1", "message", "user", "completed", (ev.ContentPart("input_audio"),))
    s.handle(ev.ItemAdded("e", item, None), 1.0)
    s.handle(ev.ItemDone("e", item, None), 1.0)
    written = [e.turn for e in s.tick(7.0) if isinstance(e, fx.TurnFinished)]  # gave up waiting
    assert [(t.text, t.note) for t in written] == [("", "no transcript")]
    s.handle(ev.InputTranscriptCompleted("e", "item_u1", 0, "hello"), 9.0)  # ASR later than the wait
    assert s.transcript() == written and s.turns_from(0) == [(written[0], True)]


def test_a_cancel_after_the_reply_was_written_leaves_the_turn_as_written() -> None:
    s = _ready(SessionConfig())
    s.handle(ev.ResponseCreated("e", ev.Response("resp_1", "in_progress")), 1.0)
    added = ev.Item("item_a1", "message", "assistant", "in_progress")
    s.handle(ev.OutputItemAdded("e", "resp_1", 0, added), 1.0)
    s.handle(ev.AudioDelta("e", "resp_1", "item_a1", 0, 0, b"\x01\x00" * 2400), 1.0)
    done = ev.Item("item_a1", "message", "assistant", "completed", (ev.ContentPart("output_audio", transcript="hi"),))
    s.handle(ev.ItemDone("e", done, None), 1.1)
    written = [e.turn for e in s.playback_drained() if isinstance(e, fx.TurnFinished)]
    assert [(t.text, t.interrupted) for t in written] == [("hi", False)]
    s.handle(ev.ResponseDone("e", ev.Response("resp_1", "cancelled", "turn_detected", (done,))), 1.2)
    assert s.transcript() == written


def test_a_repeated_response_done_does_not_send_a_second_create() -> None:
    s = _ready(SessionConfig())
    s.handle(ev.ResponseCreated("e", ev.Response("resp_1", "in_progress")), 1.0)
    s.say("first", 1.1)  # talks over resp_1: cancel, then a reply once it is done
    assert _creates(s.handle(ev.ResponseDone("e", ev.Response("resp_1", "cancelled")), 1.2)) == 1
    assert _creates(s.say("second", 1.3)) == 0  # the first create is not answered yet: queued
    assert _creates(s.handle(ev.ResponseDone("e", ev.Response("resp_1", "cancelled")), 1.4)) == 0  # was: 1
    s.handle(ev.ResponseCreated("e", ev.Response("resp_2", "in_progress")), 1.5)
    assert _creates(s.handle(ev.ResponseDone("e", ev.Response("resp_2", "completed")), 1.6)) == 1  # now "second"


def test_audio_with_half_a_sample_plays_the_whole_samples() -> None:
    s = _ready(SessionConfig())
    s.handle(ev.ResponseCreated("e", ev.Response("resp_1", "in_progress")), 1.0)
    out = s.handle(ev.AudioDelta("e", "resp_1", "item_a1", 0, 0, b"\x01\x00\x02\x00\x03"), 1.0)
    plays = [e for e in out if isinstance(e, fx.Play)]
    assert [p.pcm for p in plays] == [b"\x01\x00\x02\x00"]
    Player(24_000).play("item_a1", plays[0].pcm)  # was: ValueError from numpy on 5 bytes
