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

WIRE_RATE = 24000
BLOCK_S = 0.020


def build_script(script: dict[str, Any]) -> np.ndarray:
    kind = script["kind"]
    if kind == "barge_in":
        return A.barge_in_script(script["cycles"])
    if kind == "turns":
        return A.turns_script(script["turns"], script.get("speech_s", 3.0), script.get("gap_s", 4.2))
    raise ValueError(f"unknown script {kind!r}")


def run_instrumented(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: base_url, script, silence_ms (default 400), device_rate (default 24000),
    prebuffer_ms (what-if, default: the Player's own), start_at (wall clock to start at)."""
    samples = build_script(spec["script"])
    start_at = spec.get("start_at")
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(_run(spec, samples))


async def _run(spec: dict[str, Any], samples: np.ndarray) -> dict[str, Any]:
    from voicechat.app import Output, talk
    from voicechat.config import resolve
    from voicechat.transcript import StreamSink

    with tempfile.TemporaryDirectory(prefix="vc-bench-") as tmp:
        wav = A.write(Path(tmp) / "in.wav", samples)
        settings = resolve(
            flags={"base_url": spec["base_url"], "input_file": wav,
                   "silence_duration_ms": spec.get("silence_ms", 400),
                   # The bench servers run without a recogniser: ask for no input transcription,
                   # or the client would wait its 5 s transcript grace period after every turn.
                   "transcribe_model": ""},
            environ={"OPENAI_API_KEY": "sk-bench"},
        )
        out = Output(sinks=[StreamSink(io.StringIO())], status=io.StringIO())
        with install(spec.get("device_rate", WIRE_RATE), spec.get("prebuffer_ms")) as probe:
            t0 = clock()
            await talk(settings, out)
            wall = clock() - t0
    result = analyse(probe)
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
    cuts, flushed_before_playing, ended_before_speech = [], 0, 0
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
    gaps = [(b[0] - a[0]) * ms for a, b in zip(p.arrivals, p.arrivals[1:], strict=False)]
    return {
        "first_audio_ms": first_audio,
        "first_audio_skipped_busy": skipped_busy,
        "first_audio_never_played": never_played,
        "barge_in_cut_ms": cuts,
        "barge_in_flushed_before_playing": flushed_before_playing,
        "barge_in_ended_before_speech": ended_before_speech,
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
        "responses": len(p.response_first),
        "max_delta_gap_ms": max(gaps) if gaps else None,
        "events": dict(p.event_counts),
    }
