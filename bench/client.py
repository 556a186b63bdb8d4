"""One instrumented ``voicechat.app.talk`` run against a server URL, reduced to raw figures.

``run_instrumented(spec)`` is picklable-in, JSON-out so it can run in a spawn child (the jitter
conditions run side by side, one client process each) or in the bench process itself.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import audio as A
from bench.probe import Probe, clock, install
from voicechat.protocol.constants import WIRE_RATE

BLOCK_S = 0.020


def build_script(script: dict[str, Any]) -> np.ndarray:
    kind = script["kind"]
    if kind == "barge_in":
        return A.barge_in_script(script["cycles"])
    if kind == "turns":
        return A.turns_script(script["turns"], script.get("speech_s", 3.0), script.get("gap_s", 4.2),
                              script.get("recorded", False))
    raise ValueError(f"unknown script {kind!r}")


def talk_over_onsets(script: dict[str, Any]) -> list[int]:
    """Mic samples where the script's talk-over turns start (none for polite turns)."""
    return A.barge_in_onsets(script["cycles"]) if script["kind"] == "barge_in" else []


def user_onsets(script: dict[str, Any]) -> list[int]:
    """Mic samples where every user turn of the script starts."""
    if script["kind"] == "barge_in":
        return [int(0.3 * WIRE_RATE), *A.barge_in_onsets(script["cycles"])]
    return A.turns_onsets(script["turns"], script.get("speech_s", 3.0), script.get("gap_s", 4.2),
                          script.get("recorded", False))


def run_instrumented(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: base_url, script, silence_ms (default 400), device_rate (default 24000),
    prebuffer_ms (what-if, default: the Player's own), start_at (wall clock to start at),
    echo (the ``echo`` setting, default: the client's own, ``auto``), echo_gain and
    echo_delay_ms (the file device leaks its output into the mic), local_onset (default True),
    max_tail_ms (end the conversation that long after the input file, default: the app's own)."""
    samples = build_script(spec["script"])
    start_at = spec.get("start_at")
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(_run(spec, samples))


async def _run(spec: dict[str, Any], samples: np.ndarray) -> dict[str, Any]:
    from voicechat.app import Output, talk
    from voicechat.audio.wav import load_wav_at
    from voicechat.config import resolve
    from voicechat.transcript import StreamSink

    with tempfile.TemporaryDirectory(prefix="vc-bench-") as tmp:
        wav = A.write(Path(tmp) / "in.wav", samples)
        flags: dict[str, Any] = {
            "base_url": spec["base_url"], "input_file": wav, "silence_duration_ms": spec.get("silence_ms", 400),
            # The bench servers run without a recogniser: ask for no input transcription,
            # or the client would wait its 5 s transcript grace period after every turn.
            "transcribe_model": "",
        }
        if spec.get("echo"):
            flags["echo"] = spec["echo"]
        settings = resolve(flags=flags, environ={"OPENAI_API_KEY": "sk-bench"})
        out = Output(sinks=[StreamSink(io.StringIO())], status=io.StringIO())
        with install(spec.get("device_rate", WIRE_RATE), spec.get("prebuffer_ms"),
                     echo_gain=spec.get("echo_gain", 0.0), echo_delay_ms=spec.get("echo_delay_ms", 60),
                     local_onset=spec.get("local_onset", True), max_tail_ms=spec.get("max_tail_ms")) as probe:
            audio = probe.file_audio(load_wav_at(wav, WIRE_RATE))  # as talk builds it for --input-file
            t0 = clock()
            await talk(settings, out, audio=audio, observer=probe)
            wall = clock() - t0
    result = analyse(probe)
    result.update(talk_over(probe, talk_over_onsets(spec["script"])))
    result.update(unprompted_stops(probe, user_onsets(spec["script"])))
    result["wall_s"] = round(wall, 3)
    result["input_s"] = round(samples.size / WIRE_RATE, 3)
    return result


def analyse(p: Probe) -> dict[str, Any]:
    """Raw per-event figures (ms) from one run; pooling and summaries happen in ``bench.run``."""
    ms = 1000.0
    rate = p.device_rate
    # First audio: first delta of a response received -> first frame of its item handed over.
    first_audio, skipped_busy, never_played = [], 0, 0
    for t, item, queued in p.response_first.values():
        if queued:
            skipped_busy += 1  # other audio was still queued ahead of it: not a first-audio delay
        elif item not in p.item_first:
            never_played += 1  # interrupted before it started playing
        else:
            first_audio.append((p.item_first[item] - t) * ms)

    # Barge-in: speech_started received -> last block with real audio of the flushed items.
    cuts, flushed_before_playing, ended_before_speech, silenced_locally = [], 0, 0, 0
    for t_flush, items, _played in p.flushes:
        starts = [t for t, _ in p.speech_started if t <= t_flush]
        if not starts:
            continue  # not a speech barge-in
        t_speech = starts[-1]
        lasts = [p.item_last[i] for i in items if i in p.item_last]
        if not lasts:
            flushed_before_playing += 1
            continue
        last = max(lasts)
        if last < t_speech:
            if any(last - 3 * BLOCK_S <= t <= last for t in p.pauses):
                silenced_locally += 1  # a local onset had already paused it: nothing left to cut
            else:
                ended_before_speech += 1  # nothing of it was sounding any more when the user spoke
            continue
        cuts.append((last - t_speech) * ms)

    # Truncation: audio_end_ms sent vs. the item's frames the device was handed (fade included).
    trunc_err, trunc_signed, past_received = [], [], 0
    for tr in p.truncates:
        played_ms = p.item_frames.get(tr["item_id"], 0) * ms / rate
        trunc_err.append(abs(tr["audio_end_ms"] - played_ms))
        trunc_signed.append(tr["audio_end_ms"] - played_ms)
        if tr["audio_end_ms"] > tr["received_ms"] + 1.0:
            past_received += 1

    # Harness health: how late each block-clock tick ran against an ideal 20 ms grid.
    lateness: list[float] = []
    if p.ticks:
        t0 = p.ticks[0]
        raw = [(t - t0 - k * BLOCK_S) * ms for k, t in enumerate(p.ticks)]
        base = min(raw)
        lateness = [x - base for x in raw]

    buf = p.buffer
    assistant_frames = buf.consumed_total if buf is not None else 0  # device frames
    conv = p.conversation
    echo = conv.echo if conv is not None else None
    session = conv.session if conv is not None else None
    player = conv.player if conv is not None else None
    targets = [f for _, f in p.prebuffer_frames]
    if buf is not None:
        targets.append(buf.prebuffer)
    gaps = [(b[0] - a[0]) * ms for a, b in zip(p.arrivals, p.arrivals[1:], strict=False)]
    return {
        "first_audio_ms": first_audio,
        "first_audio_skipped_busy": skipped_busy,
        "first_audio_never_played": never_played,
        "barge_in_cut_ms": cuts,
        "barge_in_flushed_before_playing": flushed_before_playing,
        "barge_in_ended_before_speech": ended_before_speech,
        "barge_in_silenced_by_local_onset": silenced_locally,
        "speech_started": len(p.speech_started),
        "flushes": len(p.flushes),
        "truncation_error_ms": trunc_err,
        "truncation_signed_ms": trunc_signed,
        "truncation_past_received": past_received,
        "truncates": len(p.truncates),
        "cancels_sent": p.cancels,
        "mic_to_wire_ms": [x * ms for x in p.mic_to_wire],
        "tick_lateness_ms": lateness,
        "ticks": len(p.ticks),
        "underruns": buf.underruns if buf is not None else 0,
        "underrun_ms": (buf.underrun_frames if buf is not None else 0) * ms / rate,
        "overflow_frames": buf.overflow_frames if buf is not None else 0,
        "assistant_played_s": assistant_frames / rate,
        "device_rate": rate,
        "unattributed_frames": p.unattributed_frames,
        "cut_short": p.cut_short,
        "responses": len(p.response_first),
        "max_delta_gap_ms": max(gaps) if gaps else None,
        "events": dict(p.event_counts),
        # echo path and local onset
        "echo_mode": echo.mode if echo is not None else None,
        "echo_onsets": echo.onsets if echo is not None else 0,
        "echo_gated_blocks": echo.gated_blocks if echo is not None else 0,
        "echo_erl_db": round(echo.erl_db, 1) if echo is not None else None,
        "local_onsets": session.local_onsets if session is not None else 0,
        "false_onsets": session.false_onsets if session is not None else 0,
        "pauses": len(p.pauses),
        "resumes": len(p.resumes),
        "speech_started_during_reply": sum(1 for _, active in p.speech_started if active),
        # adaptive prebuffer
        "prebuffer_end_ms": round(player.prebuffer_ms, 1) if player is not None else None,
        "prebuffer_max_ms": round(max(targets) * ms / rate, 1) if targets else None,
        "prebuffer_changes": len(p.prebuffer_frames),
    }


USER_ONSET_WINDOW_S = 0.5  # a pause or speech_started this soon after a user turn starts is the user's


def unprompted_stops(p: Probe, onsets: list[int]) -> dict[str, Any]:
    """Local-onset pauses and server speech_started that no user turn explains (echo, noise).

    A user turn explains what happens from one block before its first speech block is handed to
    the loop until ``USER_ONSET_WINDOW_S`` after (local onset needs 60 ms of speech, the local
    server's VAD 40 ms, a distant server a round trip more).
    """
    block = WIRE_RATE * 20 // 1000
    starts = [p.ticks[s // block] for s in onsets if s // block < len(p.ticks)]

    def explained(t: float) -> bool:
        return any(u - BLOCK_S <= t <= u + USER_ONSET_WINDOW_S for u in starts)

    return {
        "unprompted_pauses": sum(1 for t in p.pauses if not explained(t)),
        "unprompted_speech_started": sum(1 for t, _ in p.speech_started if not explained(t)),
        "unprompted_speech_started_during_reply": sum(1 for t, active in p.speech_started
                                                      if active and not explained(t)),
        "user_turns": len(onsets),
        "user_turns_heard": sum(1 for u in starts
                                if any(u - BLOCK_S <= t <= u + USER_ONSET_WINDOW_S for t, _ in p.speech_started)),
    }


def talk_over(p: Probe, onsets: list[int]) -> dict[str, Any]:
    """Each talk-over turn: its first speech block handed to the loop -> the reply silent at the device.

    ``onsets`` are mic samples; mic block ``k`` (20 ms at 24 kHz) is handed over at tick ``k``.
    The reply "playing" is the item(s) handed real frames both before and after that tick; the
    end is the last device read that still handed them real frames (the fade). Which mechanism
    stopped it: a local onset's pause before the flush, or the server's speech_started (flush).
    """
    ms = 1000.0
    block = WIRE_RATE * 20 // 1000
    silence_ms: list[float] = []
    from_speech_started: list[float] = []  # signed: negative = silent before the server spoke
    speech_started_after: list[float] = []
    by_local = by_server = not_playing = not_stopped = 0
    for sample in onsets:
        k = sample // block
        if k >= len(p.ticks):
            continue
        t0 = p.ticks[k]
        playing = [i for i, first in p.item_first.items() if first <= t0 < p.item_last[i]]
        if not playing:
            not_playing += 1  # the reply had not started or had already ended: no talk-over
            continue
        flush_t = next((t for t, items, _ in p.flushes if t >= t0 and set(items) & set(playing)), None)
        if flush_t is None:
            not_stopped += 1  # played on to its end (a missed barge-in)
            continue
        last = max(p.item_last[i] for i in playing)
        pause_t = next((t for t in p.pauses if t0 - BLOCK_S <= t <= flush_t), None)
        if pause_t is not None:
            by_local += 1
        else:
            by_server += 1
        silence_ms.append((last - t0) * ms)
        ss = next((t for t, _ in p.speech_started if t >= t0 - BLOCK_S), None)
        if ss is not None:
            speech_started_after.append((ss - t0) * ms)
            from_speech_started.append((last - ss) * ms)
    return {
        "talk_over_ms": silence_ms,
        "talk_over_from_speech_started_ms": from_speech_started,
        "talk_over_speech_started_after_ms": speech_started_after,
        "talk_over_by_local_onset": by_local,
        "talk_over_by_server": by_server,
        "talk_over_not_playing": not_playing,
        "talk_over_not_stopped": not_stopped,
        "talk_over_attempts": len(onsets),
    }
