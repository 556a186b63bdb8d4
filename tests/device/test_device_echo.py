"""Device tier: the assistant's voice leaks into the microphone, through real PortAudio streams.

The room: on the headless PulseAudio, ``voicechat talk`` plays into the ``echo`` null sink
(``PULSE_SINK``) and records that sink's monitor (``PULSE_SOURCE=echo.monitor``); the user's
speech is played into the same sink. So the microphone hears the assistant at full level (a
0 dB echo path, delayed only by the devices) mixed with the user: a laptop at its worst. The
local server runs in this process, its records stamped with this process's clock; its echo
brain answers every turn with the turn's own audio. Two recordings share that clock:
``echo.monitor`` (what the microphone hears) and the client's playback alone (``parecord
--monitor-stream``: the speaker without the user in it).

* ``--echo off`` (the control): one utterance; its answer reaches the server through the
  microphone, the server's VAD takes it for the user, and the assistant interrupts itself.
  This shows the room really leaks; without it the other cases would prove nothing.
* ``--echo gate`` and ``--echo aec`` (where the extra is installed): an answer plays to its
  end with no ``speech_started`` while it plays and no truncate; then the user talks over a
  second answer 1.5 s into it, and that is exactly one barge-in (one ``speech_started``, one
  truncate with ``audio_end_ms > 0`` that matches what the speaker played); the barge-in's own
  answer plays out whole, and the transcript marks only the second answer interrupted.
* local onset: ``--echo gate`` against a server whose VAD is slow (as the real service's VAD
  and network are, next to the local server's): the client's own onset detector must pause the
  answer before the server says ``speech_started``.

Levels at the microphone (RMS of the speech-like test audio): every utterance, and so the
echo of every answer, is -24 dBFS. The barge-in is louder than the echo by ``BARGE_DB[mode]``:
the gate passes only a microphone clearly above the echo it expects (6 dB over the loudest
recent speaker block), so its barge-in is +10 dB (-14 dBFS); the canceller removes the echo
instead, so its barge-in is as loud as the echo (0 dB, -24 dBFS).

The gate still lets an answer's opening through now and then (its learned echo-path gain sits
below the loudest syllables); ``aec``, the default, does not: both are strict here, and a failure
names how the opening leaked (``opening_leak``).

Reported per run (``pytest -s`` prints them; also attached as user properties): how many
``speech_started`` came while answers played, the talk-over time (the barge-in's first sample
at the microphone → the answer's last sample at the speaker), the server VAD's share of it
(``vad_ms``), the truncation error, and ``silent_after_speech_started_ms``, negative when the
speaker fell silent before the server said ``speech_started`` (only a local onset can do that).
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.devices import (
    RATE,
    TIMEUNIT,
    Blob,
    PlaybackRecorder,
    Recorder,
    ServerThread,
    blobs,
    locate,
    sigint_and_collect,
    sink_inputs_of,
    voiced,
    wait_for,
)
from voicechat.audio.wav import write_wav
from voicechat.server import ServerOptions
from voicechat.server import vad as server_vad

pytestmark = pytest.mark.device

LEVEL = 3000  # voiced() level of an utterance: -24 dBFS RMS, peaks at -15 dBFS
BARGE_DB = {"gate": 10.0, "aec": 0.0}  # the barge-in's level over the echo, per mode
SILENCE_MS = 300  # --silence-duration-ms
PREFIX_MS = 300  # server VAD prefix padding: speech_started's audio_start_ms is this early
BARGE_AFTER_S = 1.5  # the second answer has been audible this long when the user cuts in
ECHO_TAIL_S = 0.5  # after an answer falls silent, its echo and the server's VAD settle within this
OPENING_S = 0.5  # a speech_started this soon after an answer became audible: its opening leaked
SERVER = ServerOptions(recognizer="none", seed=7, speed=4.0)  # answers stream 4x real time

# Bounds, loose: they catch gross regressions on a loaded 2-core machine, not jitter.
# Barge-in at the mic → answer silent at the speaker: the first of the local onset detector
# (60 ms of speech) and the server's VAD (40 ms and a loopback hop) acts, then the device's
# buffered audio plays out. Measured: gate (+10 dB) 105-147 ms, aec (0 dB) 233-250 ms.
TALK_OVER_BOUND_MS = 400
# The same with a slow server, so that the client's local onset detector decides (60 ms of
# speech, then the device's buffered audio); DESIGN.md's target is 150 ms. Measured: 106-143 ms.
LOCAL_TALK_OVER_BOUND_MS = 250
SLOW_VAD_MS = 250  # speech the slow server's VAD wants before speech_started (the local one: 40 ms)
TRUNCATION_TOLERANCE_MS = 40  # |audio_end_ms - what the speaker played|. Measured: about -1 ms
CLOCK_SLACK_MS = 25  # the recording clock may read up to a sink latency early


def dbfs(x: np.ndarray) -> float:
    """RMS level of int16 audio in dBFS."""
    power = float(np.mean(x.astype(np.float64) ** 2)) if x.size else 0.0
    return float(10 * np.log10(max(power, 1e-12) / 32768.0**2))


@dataclass
class Call:
    """One ``voicechat talk`` in the echo room, its server and its recordings."""

    server: ServerThread
    mic: Recorder  # echo.monitor: what the client's microphone hears
    env: dict[str, str]
    tmp_path: Path
    talk: subprocess.Popen[str]
    spk: PlaybackRecorder | None = None  # the client's playback alone
    players: list[subprocess.Popen[bytes]] = field(default_factory=list)
    user: list[tuple[float, float]] = field(default_factory=list)  # when the user was talking
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""

    def alive(self, value: Any) -> Any:
        if self.talk.poll() is not None:
            raise AssertionError(f"voicechat talk exited early with status {self.talk.returncode}")
        return value

    def say(self, name: str, audio: np.ndarray, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """Play ``audio`` into the room (followed by half a second of quiet)."""
        path = self.tmp_path / f"{name}.wav"
        write_wav(path, np.concatenate([audio, np.zeros(RATE // 2, np.int16)]), RATE)
        start = time.monotonic()
        player = subprocess.Popen(["paplay", "-d", "echo", str(path)], env=self.env)
        self.players.append(player)
        self.user.append((start, start + audio.size / RATE + 0.5))
        if wait:
            assert player.wait(timeout=30 * TIMEUNIT) == 0, f"paplay {name} failed"
        return player

    # ---- what the server saw and sent --------------------------------------------------------

    def items(self) -> list[str]:
        """Assistant items that carried audio, in order."""
        seen: list[str] = []
        for _, e in self.server.emitted.events("response.output_audio.delta"):
            if e["item_id"] not in seen:
                seen.append(e["item_id"])
        return seen

    def item(self, n: int, timeout: float = 20) -> str:
        items = wait_for(lambda: self.alive(len(self.items()) > n and self.items()), timeout, f"answer {n + 1}")
        return str(items[n])

    def first_delta_at(self, item_id: str) -> float:
        return next(t for t, e in self.server.emitted.events("response.output_audio.delta") if e["item_id"] == item_id)

    def answer(self, item_id: str) -> np.ndarray:
        """The exact audio the server sent for ``item_id``."""
        chunks = [base64.b64decode(e["delta"]) for _, e in self.server.emitted.events("response.output_audio.delta")
                  if e["item_id"] == item_id]
        return np.frombuffer(b"".join(chunks), dtype="<i2")

    def sent(self) -> np.ndarray:
        """Everything the client appended to the input buffer (the server's input timeline)."""
        chunks = [base64.b64decode(e["audio"]) for _, e in self.server.received.events("input_audio_buffer.append")]
        return np.frombuffer(b"".join(chunks), dtype="<i2")

    def dones(self) -> int:
        return len(self.server.emitted.events("response.done"))

    def speech_started(self) -> list[tuple[float, dict[str, Any]]]:
        return self.server.emitted.events("input_audio_buffer.speech_started")

    # ---- what the speaker played ---------------------------------------------------------------

    def audible_from(self, start: int) -> int | None:
        """First clearly audible speaker sample at or after index ``start``."""
        assert self.spk is not None
        loud = np.flatnonzero(np.abs(self.spk.samples()[start:].astype(np.int32)) > 1000)
        return start + int(loud[0]) if loud.size else None

    def heard(self, item_id: str, timeout: float = 20) -> int:
        """Speaker index where ``item_id`` became audible (waits for it)."""
        assert self.spk is not None
        start = self.spk.index_at(self.first_delta_at(item_id))
        return int(wait_for(lambda: self.alive(self.audible_from(start)), timeout, f"{item_id} at the speaker"))

    def play_out(self, item_id: str) -> None:
        """Wait until ``item_id`` has had time to play to its end, and its echo to settle."""
        assert self.spk is not None
        spk = self.spk
        end = self.heard(item_id) + self.answer(item_id).size + int(ECHO_TAIL_S * RATE)
        wait_for(lambda: self.alive(len(spk) > end), 30, f"{item_id} to play out")

    # ---- diagnostics -------------------------------------------------------------------------------

    def story(self) -> str:
        """The conversation as a timeline (seconds after the client's first audio), for failures."""
        appends = self.server.received.events("input_audio_buffer.append")
        if not appends:
            return "(no audio from the client)"
        t0 = appends[0][0]
        lines = [f"{a - t0:7.3f} user speaks into the room ({b - a - 0.5:.1f} s)" for a, b in self.user]
        shown = set()
        for t, e in self.server.emitted.stamped():
            kind = e["type"]
            if kind == "response.output_audio.delta" and e["item_id"] not in shown:
                shown.add(e["item_id"])
                lines.append(f"{t - t0:7.3f} server: first audio of {e['item_id']}")
            elif kind.startswith("input_audio_buffer.speech") or kind in ("response.done", "error"):
                lines.append(f"{t - t0:7.3f} server: {kind} {e.get('audio_start_ms', e.get('audio_end_ms', ''))}")
        for t, e in self.server.received.stamped():
            if e["type"] not in ("input_audio_buffer.append", "session.update"):
                lines.append(f"{t - t0:7.3f} client: {e['type']} {e.get('audio_end_ms', '')}")
        if self.spk is not None and len(self.spk):
            for b in blobs(self.spk.samples()):
                lines.append(f"{self.spk.time_of(b.start) - t0:7.3f} speaker sounds for {b.ms:.0f} ms")
        return "\n".join(sorted(lines, key=lambda line: float(line.split()[0])))

    def opening_leak(self) -> str | None:
        """How an answer's opening echo got to the server's VAD, or None if none did."""
        assert self.spk is not None
        onsets = [self.spk.time_of(b.start) for b in blobs(self.spk.samples())]
        sent = self.sent()
        mic = self.mic.samples()
        for t, e in self.speech_started():
            if any(a <= t <= b for a, b in self.user):
                continue  # the user was talking
            since = [t - on for on in onsets if on <= t]
            if since and min(since) <= OPENING_S:
                at = (e["audio_start_ms"] + PREFIX_MS) * RATE // 1000  # the onset the server heard
                heard = mic[self.mic.index_at(t - 0.1) : self.mic.index_at(t)]
                return (f"speech_started {min(since) * 1000:.0f} ms after an answer became audible, with no user "
                        f"speech; the microphone heard {dbfs(heard):.1f} dBFS of echo and the client sent "
                        f"{dbfs(sent[at : at + RATE // 25]):.1f} dBFS from the onset the server heard")
        return None


@contextlib.contextmanager
def echo_room(pulse: dict[str, str], tmp_path: Path, mode: str) -> Iterator[Call]:
    """A conversation in the echo room; SIGINTs the client and stops the recordings on exit."""
    chat = tmp_path / "chat.jsonl"
    env = dict(pulse, OPENAI_API_KEY="sk-test-device", VOICECHAT_CONFIG_DIR=str(tmp_path),
               PULSE_SINK="echo", PULSE_SOURCE="echo.monitor")
    with ServerThread(SERVER) as st:
        mic = Recorder("echo.monitor", pulse)
        call: Call | None = None
        try:
            wait_for(lambda: len(mic) > RATE // 10, 10, "the microphone recorder to run")
            talk = subprocess.Popen(
                [sys.executable, "-m", "voicechat", "talk", "--base-url", st.server.http_base_url, "--echo", mode,
                 "--silence-duration-ms", str(SILENCE_MS), "--no-transcribe", "--transcript", str(chat)],
                env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )
            call = Call(st, mic, pulse, tmp_path, talk)
            c = call
            wait_for(lambda: c.alive(len(st.received.events("input_audio_buffer.append")) >= 10), 30,
                     "the client's microphone to stream")
            wait_for(lambda: c.alive(sink_inputs_of(talk.pid, pulse)), 10, "the client's playback stream")
            call.spk = spk = PlaybackRecorder(talk.pid, "echo.monitor", pulse)
            wait_for(lambda: len(spk) > RATE // 10, 10, "the speaker recorder to run")
            yield call
        except BaseException as exc:
            if call is not None:
                _stop(call)
                exc.add_note(f"timeline:\n{call.story()}\nvoicechat talk stderr:\n{call.stderr}")
            raise
        else:
            assert call is not None
            _stop(call)
        finally:
            mic.stop()
            write_wav(tmp_path / "microphone.wav", mic.samples(), RATE)  # for a look after a failure
            if call is not None:
                for player in call.players:
                    if player.poll() is None:
                        player.kill()
                        player.wait(timeout=10)
                if call.spk is not None:
                    call.spk.stop()
                    write_wav(tmp_path / "speaker.wav", call.spk.samples(), RATE)


def _stop(call: Call) -> None:
    """SIGINT the client (as Ctrl-C would) and collect its exit status and output."""
    if call.returncode is None:
        call.returncode, call.stdout, call.stderr = sigint_and_collect(call.talk)


def _report(name: str, m: dict[str, Any], record_property: Any) -> None:
    for key, value in m.items():
        record_property(key, round(value, 1) if isinstance(value, float) else value)
    print(f"\n{name}: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))


def test_without_echo_handling_the_assistant_interrupts_itself(
    pulse: dict[str, str], tmp_path: Path, record_property: Any
) -> None:
    """``--echo off``: the answer's own echo is taken for the user (the room leaks)."""
    with echo_room(pulse, tmp_path, "off") as call:
        assert call.spk is not None
        spk = call.spk
        call.say("utterance", voiced(1.5, seed=31, level=LEVEL))
        answer = call.item(0)
        wait_for(lambda: call.alive(call.server.received.events("conversation.item.truncate")), 15,
                 "the assistant to interrupt itself")
        more = len(spk) + 2 * RATE  # two seconds more: the echo goes on answering itself
        wait_for(lambda: call.alive(len(spk) > more), 10, "two more seconds")

    assert call.returncode == 130, (call.returncode, call.stderr)
    assert "Traceback" not in call.stderr, call.stderr
    story = call.story()
    t_first = call.first_delta_at(answer)
    starts = [t for t, _ in call.speech_started() if t > t_first]  # the user said nothing more
    truncates = call.server.received.events("conversation.item.truncate")
    t_truncate, truncate = truncates[0]
    segments = blobs(spk.samples())
    assert segments, "the speaker played nothing"
    t_heard = spk.time_of(segments[0].start)
    t_silent = spk.time_of(segments[0].end)
    m: dict[str, Any] = {
        "speech_started_during_answers": len(starts),
        "self_interruptions": len(truncates),
        "answers": len(call.items()),
        "first_audio_end_ms": truncate["audio_end_ms"],
        "first_answer_ms": call.answer(answer).size * 1000 / RATE,
        "echo_level_dbfs": dbfs(call.mic.samples()[call.mic.index_at(t_heard) : call.mic.index_at(t_silent)]),
        "heard_before_cut_ms": (t_silent - t_heard) * 1000,  # the first answer at the speaker
        "vad_after_heard_ms": (starts[0] - t_heard) * 1000 if starts else float("nan"),
        "silent_after_truncate_ms": (t_silent - t_truncate) * 1000,
    }
    _report("echo off", m, record_property)

    assert truncate["item_id"] == answer, story
    assert 0 < truncate["audio_end_ms"] < m["first_answer_ms"] - 500, f"{m}\n{story}"
    assert starts and starts[0] < t_truncate, f"no speech_started during the answer: {m}\n{story}"
    assert m["heard_before_cut_ms"] < 1000, f"{m}\n{story}"  # it stopped itself within its first words


def _talk_over(call: Call, n: int, barge_in: np.ndarray) -> tuple[str, str, float]:
    """The user talks over answer ``n`` (0-based) ``BARGE_AFTER_S`` into it; returns once the
    answer to the barge-in has played out: the two items and the cut-in time."""
    assert call.spk is not None
    spk = call.spk
    answer = call.item(n)
    audible = call.heard(answer)
    wait_for(lambda: call.alive(len(spk) >= audible + int(BARGE_AFTER_S * RATE)), 20,
             f"answer {n + 1} to play for a while")
    t_barge = time.monotonic()
    player = call.say("barge-in", barge_in, wait=False)
    reply = call.item(n + 1, timeout=30)
    wait_for(lambda: call.alive(call.dones() >= n + 2), 30, "the answer to the barge-in")
    assert player.wait(timeout=30 * TIMEUNIT) == 0
    call.play_out(reply)
    return answer, reply, t_barge


def _converse(call: Call, barge_in: np.ndarray, chat: Path) -> tuple[str, str, str, float]:
    """An answer heard out, a second one talked over, the third heard out; the items and the cut-in time."""
    call.say("first", voiced(2.0, seed=21, level=LEVEL))
    first = call.item(0)
    wait_for(lambda: call.alive(call.dones() >= 1), 20, "the first answer to be sent")
    call.play_out(first)
    call.say("second", voiced(3.0, seed=22, level=LEVEL))
    second, third, t_barge = _talk_over(call, 1, barge_in)
    wait_for(lambda: chat.exists() and len(chat.read_text().splitlines()) >= 6, 10, "six transcript turns")
    return first, second, third, t_barge


def _cut_in(call: Call, item: str, cut: Blob, after: str, t_barge: float, barge_in: np.ndarray) -> dict[str, Any]:
    """Measure a barge-in: ``barge_in`` started playing at ``t_barge`` over ``item`` (heard as
    ``cut`` at the speaker); ``after`` is the answer to it (its echo comes later)."""
    assert call.spk is not None
    spk = call.spk
    # When the barge-in reached the microphone: where its opening sits in the recording,
    # searched for before its own answer (the same audio) could play.
    mic = call.mic.samples()
    lo = call.mic.index_at(t_barge) - RATE // 10
    pos, match = locate(barge_in[: RATE * 3 // 10], mic[lo : call.mic.index_at(call.first_delta_at(after))])
    t_onset = call.mic.time_of(lo + pos)
    t_silent = spk.time_of(cut.end)
    m: dict[str, Any] = {
        "echo_level_dbfs": dbfs(mic[call.mic.index_at(spk.time_of(cut.start)) + RATE // 5 : lo + pos]),
        "barge_in_level_dbfs": dbfs(barge_in),
        "onset_match": match,
        "speaker_streams": len(spk.parts),  # more than one: the device was re-prepared (an xrun)
        "talk_over_ms": (t_silent - t_onset) * 1000,  # barge-in at the mic → answer silent at the speaker
    }
    assert match > 0.5, f"the barge-in is not in the microphone recording: {m}\n{call.story()}"
    t_speech = next((t for t, _ in call.speech_started() if t > t_onset - CLOCK_SLACK_MS / 1000), None)
    truncates = [(t, e) for t, e in call.server.received.events("conversation.item.truncate") if e["item_id"] == item]
    if t_speech is None or not truncates:
        return m
    t_truncate, truncate = truncates[0]
    m["vad_ms"] = (t_speech - t_onset) * 1000  # barge-in at the mic → speech_started sent
    m["reaction_ms"] = (t_truncate - t_speech) * 1000  # speech_started sent → truncate received
    # Negative: the speaker fell silent before the server said speech_started (a local onset
    # paused it). Positive proves nothing: a pause shortly before speech_started also ends up here.
    m["silent_after_speech_started_ms"] = (t_silent - t_speech) * 1000
    m["audio_end_ms"] = truncate["audio_end_ms"]
    # The truncation: what the speaker played of the answer against audio_end_ms.
    m["truncation_error_ms"] = truncate["audio_end_ms"] - _played_ms(call.answer(item), spk.samples(), cut)
    return m


def _played_ms(answer: np.ndarray, speaker: np.ndarray, cut: Blob) -> float:
    """How much of ``answer`` the speaker played before falling silent at ``cut.end``.

    Where the speaker's last 150 ms before its fade-out sit in the answer, not the span from the
    answer's first sound: on a busy machine the device underruns now and then, and each gap it
    plays (silence the client never handed it) lengthens the span, not what was played."""
    fade, window = RATE // 20, RATE * 15 // 100
    needle = speaker[cut.end - fade - window : cut.end - fade]
    if needle.size == window and np.any(needle):
        at, score = locate(needle, answer)
        if score > 0.8:
            return (at + window + fade) * 1000 / RATE
    u = int(np.flatnonzero(np.abs(answer.astype(np.int32)) > 1000)[0])  # a silent stretch: the span
    start = max(0, cut.start - RATE // 10)
    at, _ = locate(answer[u : u + RATE * 3 // 10], speaker[start : cut.start + RATE // 2])
    return (cut.end - (start + at - u)) * 1000 / RATE


def _no_opening_leak(call: Call, mode: str) -> None:
    leak = call.opening_leak()
    assert leak is None, f"--echo {mode} let an answer's opening echo through: {leak}"


@pytest.mark.parametrize("mode", ["gate", "aec"])
def test_echo_handling_keeps_the_answer_and_lets_a_barge_in_through(
    pulse: dict[str, str], tmp_path: Path, mode: str, record_property: Any
) -> None:
    if mode == "aec":
        from voicechat.audio.aec import INSTALL_HINT, aec_available

        if not aec_available():
            pytest.skip(f"echo cancellation is an optional extra ({INSTALL_HINT})")
    barge_in = voiced(1.0, seed=23, level=LEVEL * 10 ** (BARGE_DB[mode] / 20))
    chat = tmp_path / "chat.jsonl"
    with echo_room(pulse, tmp_path, mode) as call:
        try:
            first, second, third, t_barge = _converse(call, barge_in, chat)
        except AssertionError:
            _no_opening_leak(call, mode)
            raise

    assert call.returncode == 130, (call.returncode, call.stderr)
    assert call.spk is not None
    spk = call.spk
    story = call.story()
    _no_opening_leak(call, mode)
    problems = [line for line in call.stderr.splitlines()
                if ("error" in line or "warning" in line) and "interrupted by SIGINT" not in line]
    assert "Traceback" not in call.stderr and not problems, call.stderr
    assert not call.server.emitted.events("error"), story
    assert call.items()[:3] == [first, second, third], story

    # The speaker: the first answer whole, the second cut, the third whole.
    segments = blobs(spk.samples())
    assert len(segments) == 3, f"expected three answers at the speaker, got {segments}\n{story}"
    t_silent = {item: spk.time_of(seg.end) for item, seg in zip((first, second, third), segments, strict=True)}
    starts = [t for t, _ in call.speech_started()]
    during = {item: sum(call.first_delta_at(item) <= t <= t_silent[item] + ECHO_TAIL_S for t in starts)
              for item in (first, second, third)}
    truncates = call.server.received.events("conversation.item.truncate")

    m: dict[str, Any] = {
        "barge_db": BARGE_DB[mode],
        "speech_started_during_answers": sum(during.values()),
        "during": "/".join(str(during[item]) for item in (first, second, third)),
        "truncates": len(truncates),
        **_cut_in(call, second, segments[1], third, t_barge, barge_in),
    }
    _report(f"echo {mode}", m, record_property)

    # The echo alone never reached the server's VAD: no speech_started while the first and
    # third answers played, and only the barge-in's during the second.
    assert during[first] == 0 and during[third] == 0, f"the assistant's echo got through: {m}\n{story}"
    assert during[second] == 1, f"expected exactly one barge-in: {m}\n{story}"
    assert len(starts) == 3, f"expected one speech_started per utterance and no other: {m}\n{story}"
    assert len(truncates) == 1 and truncates[0][1]["item_id"] == second, f"expected one truncate: {m}\n{story}"
    assert 0 < m["audio_end_ms"] < call.answer(second).size * 1000 / RATE - 500, m
    assert abs(m["truncation_error_ms"]) <= TRUNCATION_TOLERANCE_MS, m
    assert -CLOCK_SLACK_MS <= m["talk_over_ms"] <= TALK_OVER_BOUND_MS, m
    # The first answer played to its end with no pause (a false local onset would leave a gap).
    loud = np.flatnonzero(np.abs(call.answer(first).astype(np.int32)) > 40)
    assert abs(segments[0].ms - (loud[-1] - loud[0]) * 1000 / RATE) < 100, (segments[0], m)

    # The conversation went on: three turns each way, only the second answer interrupted.
    records = [json.loads(line) for line in chat.read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant"] * 3, records
    assert [r["interrupted"] for r in records[1::2]] == [False, True, False], records


def test_local_onset_pauses_the_answer_before_a_slow_server_hears_the_user(
    pulse: dict[str, str], tmp_path: Path, record_property: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--echo gate`` against a server whose VAD wants ``SLOW_VAD_MS`` of speech, about what the
    real service's VAD and network add over the local server's: the client's own onset detector
    pauses the answer before the server says ``speech_started``, and the truncate that follows
    says what was heard up to the pause. The barge-in is +10 dB over the echo, as for the gate.
    """
    monkeypatch.setattr(server_vad, "MIN_SPEECH_MS", SLOW_VAD_MS)
    barge_in = voiced(1.0, seed=23, level=LEVEL * 10 ** (BARGE_DB["gate"] / 20))
    with echo_room(pulse, tmp_path, "gate") as call:
        assert call.spk is not None
        spk = call.spk
        try:
            call.say("question", voiced(3.0, seed=22, level=LEVEL))
            answer, reply, t_barge = _talk_over(call, 0, barge_in)
        except AssertionError:
            _no_opening_leak(call, "gate")
            raise

    assert call.returncode == 130, (call.returncode, call.stderr)
    story = call.story()
    _no_opening_leak(call, "gate")
    segments = blobs(spk.samples())
    assert len(segments) == 2, f"expected the cut answer and the reply at the speaker, got {segments}\n{story}"
    truncates = call.server.received.events("conversation.item.truncate")
    m: dict[str, Any] = {
        "server_vad_ms": SLOW_VAD_MS,
        "speech_started": len(call.speech_started()),
        "truncates": len(truncates),
        **_cut_in(call, answer, segments[0], reply, t_barge, barge_in),
    }
    _report("local onset (gate)", m, record_property)

    assert len(truncates) == 1 and truncates[0][1]["item_id"] == answer, f"{m}\n{story}"
    assert m["speech_started"] == 2, f"expected one speech_started per utterance: {m}\n{story}"
    assert m["silent_after_speech_started_ms"] < 0, f"the speaker waited for the server: {m}\n{story}"
    assert -CLOCK_SLACK_MS <= m["talk_over_ms"] <= LOCAL_TALK_OVER_BOUND_MS, f"{m}\n{story}"
    assert abs(m["truncation_error_ms"]) <= TRUNCATION_TOLERANCE_MS, m
    loud = np.flatnonzero(np.abs(call.answer(reply).astype(np.int32)) > 40)
    assert abs(segments[1].ms - (loud[-1] - loud[0]) * 1000 / RATE) < 100, (segments[1], m)  # no pause
