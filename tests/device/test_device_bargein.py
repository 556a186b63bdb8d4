"""Device tier: barge-in through the real PortAudio path, judged from the recorded speaker.

The local server runs in this process, so its records can be read and stamped with this
process's clock; ``voicechat talk`` runs as a subprocess on the headless PulseAudio (its
microphone is ``mic.monitor``, its speaker the ``spk`` sink). Both monitors are recorded
with arrival stamps (see ``device_helpers``), which puts the speaker, the microphone and the
server on one clock. The echo brain answers a long first utterance with that same audio;
while the answer plays, a short second utterance talks over it. Then:

* truncation: the ``audio_end_ms`` the client sent equals how much of the answer the speaker
  sink really played (found by aligning the recording with the exact audio the server sent
  for that item) to within one device block, and is never past what was sent;
* cut: the answer falls silent at the speaker soon after the server announced the user's
  speech (``input_audio_buffer.speech_started``), and not before the user began to speak;
* the conversation goes on: the second utterance gets its own full answer, and the
  transcript marks the first answer interrupted and the second not.

Two server pacings: an answer streamed 4x faster than real time (complete on the wire long
before the user cuts in, as with the real service), and one still streaming when the user
cuts in (the server cancels it; late deltas must not play). The measured values are
printed (``pytest -s``) and attached to the report as user properties.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.devices import (
    RATE,
    TIMEUNIT,
    Recorder,
    ServerThread,
    StampedLog,
    blobs,
    locate,
    sigint_and_collect,
    voiced,
    wait_for,
)
from voicechat.audio.wav import write_wav
from voicechat.server import ServerOptions

pytestmark = pytest.mark.device

BLOCK_MS = 20  # the app's device block (DeviceAudio block_ms)
PREFIX_MS = 300  # server VAD prefix padding (default): the echo starts with this much silence
SILENCE_MS = 300  # --silence-duration-ms: the echo ends with this much silence
FIRST_S = 4.0  # the long first utterance
SECOND_S = 1.0  # the short one that talks over the answer
BARGE_AFTER_S = 1.5  # how long the answer has been audible when the second utterance starts

# Truncation error, |audio_end_ms - played|: the DESIGN.md target is one device block. The
# measurement adds about 1 ms (audio_end_ms is whole ms, rounded down; the last samples of
# the 5 ms fade fall under the recording threshold). Measured: -0.8 to -1.0 ms.
TRUNCATION_TOLERANCE_MS = BLOCK_MS
# speech_started sent → truncate received: one loopback hop each way plus the client's flush.
# DESIGN.md gives speech_started → last sample handed to the device 30 ms. Measured: 0-2 ms.
REACTION_BOUND_MS = 30
# speech_started sent → last answer sample rendered by the speaker sink: the reaction above
# plus the audio the device already held (PortAudio + PulseAudio buffers) plus the clock
# estimate's error (under the sink latency). Measured: 44-63 ms, also with both cores busy;
# PortAudio reports 40 ms output latency (two 20 ms blocks) for this stream on this path.
CUT_BOUND_MS = 150
# user speech at the mic → answer silent at the speaker, with the server's VAD deciding (it
# needs 40 ms of speech, then a network hop); DESIGN.md's 150 ms is for local onset
# detection. Loose: it only catches gross regressions. Measured: 117-154 ms.
TALK_OVER_BOUND_MS = 400
CLOCK_SLACK_MS = 25  # the recording clock may read up to a sink latency early


@dataclass
class Run:
    server: ServerThread
    spk: Recorder
    mic: Recorder
    returncode: int | None
    stdout: str
    stderr: str
    chat: Path
    done_before_barge_in: bool  # the first response was complete on the wire before the cut


def _sent_audio(emitted: list[tuple[float, dict[str, Any]]], item_id: str) -> np.ndarray:
    """The exact audio the server sent for ``item_id`` (its deltas, concatenated)."""
    parts = [np.frombuffer(base64.b64decode(e["delta"]), dtype="<i2") for _, e in emitted
             if e["type"] == "response.output_audio.delta" and e["item_id"] == item_id]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def _audible_after(rec: Recorder, start: int) -> int | None:
    """Index of the first clearly audible recorded sample at or after ``start``."""
    x = rec.samples()[start:]
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > 1000)
    return start + int(loud[0]) if loud.size else None


def _stop(talk: subprocess.Popen[str] | None) -> tuple[int | None, str, str]:
    """SIGINT the client (as Ctrl-C would) and collect its exit status and output."""
    return (None, "", "") if talk is None else sigint_and_collect(talk)


def _converse(pulse: dict[str, str], tmp_path: Path, opts: ServerOptions) -> Run:
    """Talk, talk over the answer, let the second answer play out, SIGINT."""
    for name, seconds, seed in (("first", FIRST_S, 11), ("second", SECOND_S, 12)):
        audio = np.concatenate([voiced(seconds, seed=seed), np.zeros(RATE // 2, np.int16)])
        write_wav(tmp_path / f"{name}.wav", audio, RATE)
    chat = tmp_path / "chat.jsonl"
    env = dict(pulse, OPENAI_API_KEY="sk-test-device", VOICECHAT_CONFIG_DIR=str(tmp_path))

    with ServerThread(opts) as st:
        spk = Recorder("spk.monitor", pulse)
        mic = Recorder("mic.monitor", pulse)
        talk: subprocess.Popen[str] | None = None
        barge: subprocess.Popen[bytes] | None = None
        emitted: StampedLog = st.emitted

        def alive(value: Any) -> Any:
            if talk is not None and talk.poll() is not None:
                raise AssertionError(f"voicechat talk exited early with status {talk.returncode}")
            return value

        try:
            wait_for(lambda: len(spk) > RATE // 10 and len(mic) > RATE // 10, 10, "the recorders to run")
            talk = subprocess.Popen(
                [sys.executable, "-m", "voicechat", "talk", "--base-url", st.server.http_base_url,
                 "--silence-duration-ms", str(SILENCE_MS), "--no-transcribe", "--transcript", str(chat)],
                env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )
            wait_for(lambda: alive(len(st.received.events("input_audio_buffer.append")) >= 10), 30,
                     "the client's microphone to stream")
            mark = len(spk)
            subprocess.run(["paplay", "-d", "mic", str(tmp_path / "first.wav")], env=pulse, check=True,
                           timeout=30 * TIMEUNIT)
            audible = wait_for(lambda: alive(_audible_after(spk, mark)), 20, "the first answer at the speaker")
            wait_for(lambda: alive(len(spk) >= audible + int(BARGE_AFTER_S * RATE)), 20,
                     "the first answer to play for a while")
            done_before = bool(emitted.events("response.done"))
            barge = subprocess.Popen(["paplay", "-d", "mic", str(tmp_path / "second.wav")], env=pulse)
            wait_for(lambda: alive(len(emitted.events("response.done")) >= 2), 30,
                     "the answer to the second utterance")
            barge.wait(timeout=30 * TIMEUNIT)
            # Let the second answer play out: its length is known; add a quiet margin.
            second = emitted.events("response.done")[1][1]["response"]["output"][0]["id"]
            length = _sent_audio(emitted.stamped(), second).size
            sent_at = next(t for t, e in emitted.events("response.output_audio.delta") if e["item_id"] == second)
            audible2 = wait_for(lambda: alive(_audible_after(spk, spk.index_at(sent_at))), 20,
                                "the second answer at the speaker")
            wait_for(lambda: alive(len(spk) > audible2 + length + RATE // 2), 20, "the second answer to play out")
            wait_for(lambda: chat.exists() and len(chat.read_text().splitlines()) >= 4, 10, "four transcript turns")
        except BaseException as exc:
            exc.add_note("voicechat talk stderr:\n" + _stop(talk)[2])
            raise
        else:
            returncode, stdout, stderr = _stop(talk)
        finally:
            if barge is not None and barge.poll() is None:
                barge.kill()
                barge.wait(timeout=10)
            spk.stop()
            mic.stop()
            write_wav(tmp_path / "speaker.wav", spk.samples(), RATE)  # for a look after a failure
            write_wav(tmp_path / "microphone.wav", mic.samples(), RATE)
    return Run(st, spk, mic, returncode, stdout, stderr, chat, done_before)


def _tail_in_answer(x: np.ndarray, end: int, answer: np.ndarray) -> tuple[int, float]:
    """The recording index of the answer's sample 0, from where the speaker's last sounds before
    ``end`` sit in the answer, and how well they match. The last 300 ms are tried first, then
    shorter stretches: on a busy machine the device can underrun inside the 300 ms (a gap the
    client never handed it), which spoils that match but not a shorter one after the gap."""
    best = (0, 0.0)
    for window in (RATE * 3 // 10, RATE * 15 // 100, RATE * 8 // 100):
        tail_at = end - window
        pos, match = locate(x[tail_at : end - RATE // 100], answer)
        if match > 0.9:
            return tail_at - pos, match
        best = max(best, (tail_at - pos, match), key=lambda found: found[1])
    return best


def _measure(run: Run) -> dict[str, Any]:
    """Check the wire events and measure the cut against the recordings."""
    emitted = run.server.emitted.stamped()
    received = run.server.received.stamped()
    m: dict[str, Any] = {}

    truncates = [(t, e) for t, e in received if e["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1, [e["type"] for _, e in received if e["type"] != "input_audio_buffer.append"]
    t_truncate, truncate = truncates[0]
    audio_end_ms = truncate["audio_end_ms"]
    assert not [e for _, e in emitted if e["type"] == "error"]
    assert [e["audio_end_ms"] for _, e in emitted if e["type"] == "conversation.item.truncated"] == [audio_end_ms]
    assert not [e for _, e in received if e["type"] == "response.cancel"], \
        "the server cancels by itself on speech_started: the client must not send response.cancel"

    answer = _sent_audio(emitted, truncate["item_id"])
    t_first_delta = next(t for t, e in emitted
                         if e["type"] == "response.output_audio.delta" and e["item_id"] == truncate["item_id"])
    m["sent_ms"] = answer.size * 1000 / RATE
    m["audio_end_ms"] = audio_end_ms
    assert 0 < audio_end_ms <= answer.size * 1000 // RATE, "audio_end_ms is past the audio the server sent"
    # The second utterance's speech_started: the first one after the answer began.
    t_speech = next(t for t, e in emitted
                    if e["type"] == "input_audio_buffer.speech_started" and t > t_first_delta)

    # What the speaker sink played: the cut answer, then the second answer, nothing else.
    x = run.spk.samples()
    segments = blobs(x)
    assert len(segments) == 2, f"expected the cut answer and the second answer, got {segments}"
    cut = segments[0]
    loud = np.flatnonzero(np.abs(answer.astype(np.int32)) > 1000)
    u = int(loud[0])  # the answer's first clearly audible sample (after the VAD's prefix padding)
    lo = max(0, cut.start - RATE // 10)
    pos, match_start = locate(answer[u : u + RATE * 3 // 10], x[lo : cut.start + RATE // 2])
    lag_start = lo + pos - u  # recording index of the answer's sample 0
    # Where the recorded tail sits in the answer; an underrun gap would shift it from lag_start.
    lag_end, match_end = _tail_in_answer(x, cut.end, answer)
    assert match_start > 0.9 and match_end > 0.9, f"the recording does not match the answer: {m}"
    heard = cut.end - lag_end  # answer samples played, up to the last audible one
    m["heard_ms"] = heard * 1000 / RATE
    m["error_ms"] = audio_end_ms - m["heard_ms"]
    m["gap_ms"] = (lag_end - lag_start) * 1000 / RATE
    ref = answer[u : heard - RATE // 100].astype(np.float64)
    m["gain"] = float(np.dot(x[lag_end + u : cut.end - RATE // 100], ref) / np.dot(ref, ref))

    # Times, all on this process's monotonic clock.
    t_stop = run.spk.time_of(cut.end)
    mic_segments = blobs(run.mic.samples())
    assert len(mic_segments) == 2, f"expected two utterances at the microphone, got {mic_segments}"
    t_onset = run.mic.time_of(mic_segments[1].start)
    m["cut_ms"] = (t_stop - t_speech) * 1000  # speech_started sent → answer silent at the speaker
    m["reaction_ms"] = (t_truncate - t_speech) * 1000  # speech_started sent → truncate received
    m["device_tail_ms"] = (t_stop - t_truncate) * 1000  # truncate received → silent at the speaker
    m["vad_ms"] = (t_speech - t_onset) * 1000  # user speech at the mic → speech_started sent
    m["talk_over_ms"] = (t_stop - t_onset) * 1000  # user speech at the mic → answer silent
    m["first_audio_ms"] = (run.spk.time_of(lag_start) - t_first_delta) * 1000  # first delta sent → heard
    m["clock_spread_ms"] = max(run.spk.arrival_spread_ms(), run.mic.arrival_spread_ms())
    return m


@pytest.mark.parametrize(
    "opts",
    [
        pytest.param(ServerOptions(recognizer="none", seed=5, speed=4.0), id="streamed-ahead"),
        pytest.param(ServerOptions(recognizer="none", seed=6, speed=1.3, delta_ms=(20, 60)), id="still-streaming"),
    ],
)
def test_barge_in_cuts_the_speaker_and_truncates_at_what_was_played(
    pulse: dict[str, str], tmp_path: Path, opts: ServerOptions, record_property: Any
) -> None:
    run = _converse(pulse, tmp_path, opts)
    assert run.returncode == 130, (run.returncode, run.stderr)
    problems = [line for line in run.stderr.splitlines()
                if ("error" in line or "warning" in line) and "interrupted by SIGINT" not in line]
    assert "Traceback" not in run.stderr and not problems, run.stderr

    m = _measure(run)
    for key, value in m.items():
        record_property(key, round(value, 1) if isinstance(value, float) else value)
    print(f"\nbarge-in at {opts.speed}x: " + ", ".join(
        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))

    # What the client said was played is what the speaker played.
    assert abs(m["error_ms"]) <= TRUNCATION_TOLERANCE_MS, m
    assert m["heard_ms"] < m["sent_ms"] - 500, m  # it really was cut, well before its end
    # The answer stopped soon after the server heard the user, and not before the user spoke.
    assert m["reaction_ms"] <= REACTION_BOUND_MS, m
    assert m["cut_ms"] <= CUT_BOUND_MS, m
    assert -CLOCK_SLACK_MS <= m["talk_over_ms"] <= TALK_OVER_BOUND_MS, m
    assert m["first_audio_ms"] > -CLOCK_SLACK_MS, f"the recording clock is off: {m}"

    # The conversation went on: two user turns, the first answer interrupted, the second not.
    records = [json.loads(line) for line in run.chat.read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant", "user", "assistant"], records
    assert not records[3]["interrupted"], records
    assert abs(records[3]["audio_ms"] - (PREFIX_MS + SECOND_S * 1000 + SILENCE_MS)) < 100, records[3]
    # Interrupted even when the answer had finished streaming first (its turn is held while it is
    # heard): the streamed-ahead case must really be that case.
    assert run.done_before_barge_in or opts.speed < 4.0, "the answer had not finished streaming"
    assert records[1]["interrupted"], records
    assert run.stdout.splitlines()[1].endswith(("[interrupted]", "[interrupted before any words]")), run.stdout
