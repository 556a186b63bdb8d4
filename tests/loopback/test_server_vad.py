"""Server VAD: the pure detector, and full voice turns over the wire (order, ids, pacing, barge-in)."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.server import pcm, server_and_client, silence, speech, types
from voicechat.server import ScriptedBrain, ScriptedReply
from voicechat.server.vad import EnergyVad, VadParams, threshold_rms

AUDIO_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
AUDIO_DONE = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]
DELTAS = {"response.output_audio.delta", "response.output_audio_transcript.delta"}


def run_vad(samples: np.ndarray, chunk: int, **params: int | float) -> list[tuple[str, int]]:
    vad = EnergyVad(VadParams(**params))  # type: ignore[arg-type]
    events = []
    for i in range(0, samples.size, chunk):
        events += [(e.kind, e.sample) for e in vad.process(samples[i : i + chunk])]
    return events


def test_threshold_maps_to_rising_rms_levels() -> None:
    levels = [threshold_rms(t) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert levels == sorted(levels) and 500 < threshold_rms(0.5) < 700


def test_detector_positions() -> None:
    audio = np.concatenate([silence(500), speech(1000), silence(600)])
    events = run_vad(audio, 960, silence_duration_ms=200)
    assert [k for k, _ in events] == ["start", "stop"]
    assert abs(events[0][1] - 500 * 24) <= 240
    assert abs(events[1][1] - 1700 * 24) <= 480


def test_threshold_decides_what_counts_as_speech() -> None:
    quiet = np.concatenate([silence(200), speech(800, level=150), silence(400)])
    assert run_vad(quiet, 480, threshold=0.5) == []
    assert [k for k, _ in run_vad(quiet, 480, threshold=0.1)] == ["start", "stop"]
    loud = np.concatenate([silence(200), speech(800), silence(400)])
    assert run_vad(loud, 480, threshold=1.0) == []


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=5000))
def test_events_do_not_depend_on_chunking(chunk: int) -> None:
    audio = np.concatenate([silence(300), speech(600), silence(400), speech(300), silence(500)])
    assert run_vad(audio, chunk) == run_vad(audio, audio.size)


async def test_voice_turn_sequence_ids_and_echoed_audio() -> None:
    user = np.concatenate([silence(300), speech(1000), silence(500)])
    async with server_and_client(speed=50.0) as (_, c):
        await c.append(user)
        events = await c.until("response.done")
    names = [t for t in types(events) if t not in DELTAS]
    assert names == AUDIO_TURN + AUDIO_DONE, names
    started, stopped, committed = events[0], events[1], events[2]
    user_id = started["item_id"]
    assert stopped["item_id"] == committed["item_id"] == user_id
    assert started["audio_start_ms"] == 0  # 300 ms of silence, all of it prefix padding
    assert abs(stopped["audio_end_ms"] - 1500) <= 20  # speech end + 200 ms silence
    assert committed["previous_item_id"] is None
    user_added = events[3]
    assert user_added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    response_id = events[5]["response"]["id"]
    assistant = events[7]["item"]
    assert response_id.startswith("resp_") and len(response_id) == 5 + 21
    assert assistant["id"].startswith("item_") and len(assistant["id"]) == 5 + 21
    assert events[8]["previous_item_id"] == user_id
    body = [e for e in events if e["type"].startswith("response.") and e["type"] not in ("response.created", "response.done")]
    assert all(e["response_id"] == response_id for e in body)
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert all(e["item_id"] == assistant["id"] and e["output_index"] == 0 and e["content_index"] == 0 for e in deltas)
    assert len({len(e["delta"]) for e in deltas}) > 1, "delta sizes must vary"
    reply = np.concatenate([pcm(e["delta"]) for e in deltas])
    committed_ms = stopped["audio_end_ms"] - started["audio_start_ms"]
    np.testing.assert_array_equal(reply, user[: committed_ms * 24])
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    done = events[-1]["response"]
    assert transcript == "(echo of 1.5 s of your audio)" == done["output"][0]["content"][0]["transcript"]
    assert done["status"] == "completed" and done["conversation_id"].startswith("conv_")
    usage = done["usage"]
    assert usage["input_token_details"]["audio_tokens"] == 15
    assert usage["output_token_details"]["audio_tokens"] == 30
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_audio_streams_faster_than_real_time_but_is_paced() -> None:
    brain = ScriptedBrain([ScriptedReply("a reply of two seconds", audio_ms=2000)])
    async with server_and_client(speed=5.0, brain=brain) as (_, c):
        start = time.monotonic()  # the server cannot start streaming before it has the turn
        await c.append(np.concatenate([speech(300), silence(300)]))
        events = await c.until("response.done")
        elapsed = time.monotonic() - start
    audio_s = sum(pcm(e["delta"]).size for e in events if e["type"] == "response.output_audio.delta") / 24000
    assert audio_s == 2.0
    assert audio_s / 5.0 <= elapsed  # paced: never sooner than the speed allows (how much later is load)


async def test_barge_in_cancels_the_active_response() -> None:
    brain = ScriptedBrain([ScriptedReply("a long reply " * 10, audio_ms=8000), "second"])
    async with server_and_client(speed=4.0, brain=brain) as (_, c):
        await c.append(np.concatenate([speech(400), silence(300)]))
        first = await c.until("response.output_audio.delta")
        response_id = next(e for e in first if e["type"] == "response.created")["response"]["id"]
        await c.append(speech(300))
        events = await c.until("response.done")
    names = [t for t in types(events) if t not in DELTAS]
    assert names[0] == "input_audio_buffer.speech_started"
    assert names[1:] == AUDIO_DONE
    done = events[-1]["response"]
    assert done["id"] == response_id and done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    item_done = next(e for e in events if e["type"] == "response.output_item.done")
    assert item_done["item"]["status"] == "incomplete"


async def test_no_cancel_when_interrupt_response_is_false() -> None:
    # A reply long enough (4 s at 4x) that the speech over it is heard while it streams, however
    # busy the machine (at 2 s it finished first once, with both cores busy).
    brain = ScriptedBrain([ScriptedReply("a reply", audio_ms=16000)])
    async with server_and_client(speed=4.0, brain=brain) as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "interrupt_response": False}}}}})
        await c.expect("session.updated")
        await c.append(np.concatenate([speech(400), silence(300)]))
        await c.until("response.output_audio.delta")
        await c.append(speech(300))
        events = await c.until("response.done")
    assert "input_audio_buffer.speech_started" in types(events)
    assert events[-1]["response"]["status"] == "completed"


async def test_create_response_false_commits_without_responding() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "create_response": False}}}}})
        await c.expect("session.updated")
        await c.append(np.concatenate([speech(400), silence(400)]))
        events = await c.until("conversation.item.done")
        assert types(events)[-3:] == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
        await c.quiet()


async def test_semantic_vad_waits_by_eagerness() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}}})
        await c.expect("session.updated")
        await c.append(np.concatenate([speech(500), silence(1000)]))
        await c.expect("input_audio_buffer.speech_started")
        await c.quiet()  # 1000 ms of silence is not enough for eagerness "low" (1200 ms)
        await c.append(silence(400))
        stopped = (await c.until("input_audio_buffer.speech_stopped"))[-1]
        assert abs(stopped["audio_end_ms"] - (500 + 1200)) <= 20


async def test_clear_drops_the_turn_in_progress() -> None:
    async with server_and_client() as (_, c):
        await c.append(speech(500))
        await c.expect("input_audio_buffer.speech_started")
        await c.send({"type": "input_audio_buffer.clear"})
        await c.expect("input_audio_buffer.cleared")
        await c.append(silence(600))
        await c.quiet()
