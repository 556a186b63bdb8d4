"""Echo through real devices: ``voicechat talk`` in a room, spoken to, silent, and talked over.

One `run_room` call is one conversation in one room (`bench.rooms`) on a headless PulseAudio:
the real client, its real PortAudio streams at the devices' rate, the local server on a thread
of this process answering every turn with a long espeak-ng reply (`SpeechBrain`), and the
user's speech played into the room. Trials, in a shuffled order fixed by the seed:

* ``silent``: the user asks a question, then stays silent while the whole reply plays and for
  ``TAIL_S`` after it. Every ``speech_started`` in that stretch is a self-interruption.
* ``barge``: the user asks, and 1.5-5 s into the reply talks over it at ``ste_db`` (speech to
  echo ratio: the user's level at the microphone against the echo's). It succeeds when the
  server says ``speech_started`` within 1 s of the user's speech onset *and* the speaker is
  silent within 300 ms of it. Also measured: talk-over (onset → speaker silent) and the onset
  lost (how much of the user's opening is missing from the audio the server received).

Clocks: the recorders stamp what they record with ``time.monotonic()`` and the server thread
its events (see `bench.devices`), so the speaker, the microphone and the server share one clock.
The first reply of a conversation is always a silent trial: it is what the canceller converges
on (a barge-in in its first seconds needs a louder voice, see ``voicechat/audio/echo.py``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import rooms, speech
from bench.devices import RATE, PlaybackRecorder, Recorder, ServerThread, locate, sink_inputs_of
from voicechat.audio.wav import write_wav
from voicechat.doctor.measure import measure_echo
from voicechat.server import ServerOptions
from voicechat.server.brain import Reply, Turn

TAIL_S = 1.0  # after a reply ends, its echo (and any reverb) has settled within this
BARGE_WINDOW_S = (1.5, 5.0)  # how far into a reply the user talks over it
HEARD_WITHIN_S = 1.0  # the server's speech_started after the user's onset, at most
SILENT_WITHIN_S = 0.3  # the speaker silent after the user's onset, at most
AUDIBLE = 300  # |sample| above this at the speaker counts as sounding (-40 dBFS)
NOT_HEARD_S = 10.0  # no reply this long after a barge-in ended: the server did not hear it
LEAD_S = 0.3  # silence before a barge-in, while its recorder attaches to the player's stream


class SpeechBrain:
    """The local server's brain for the echo trials: each turn gets the next spoken reply."""

    wants_transcript = False

    def __init__(self, replies: Sequence[np.ndarray]) -> None:
        self._replies = list(replies)
        self._next = 0

    def reply(self, turn: Turn) -> Reply:
        audio = self._replies[self._next % len(self._replies)]
        self._next += 1
        return Reply(f"(spoken reply {self._next}, {audio.size / RATE:.1f} s)", audio)


@dataclass
class Trial:
    kind: str  # "silent" or "barge"
    ste_db: float | None = None
    item: str = ""
    self_interruptions: int = 0
    heard: bool = False  # barge: speech_started within HEARD_WITHIN_S
    stopped: bool = False  # barge: speaker silent within SILENT_WITHIN_S
    talk_over_ms: float | None = None
    heard_ms: float | None = None
    onset_lost_ms: float | None = None
    note: str = ""

    @property
    def success(self) -> bool:
        return self.heard and self.stopped


@dataclass
class RoomResult:
    room: str
    mode: str
    trials: list[Trial] = field(default_factory=list)
    cpu_s_per_min: float = float("nan")
    suppression_db: float = float("nan")  # echo at the mic against what reached the server
    exit_status: int | None = None
    stderr_tail: str = ""

    def summary(self) -> dict[str, Any]:
        silent = [t for t in self.trials if t.kind == "silent"]
        out: dict[str, Any] = {
            "room": self.room,
            "mode": self.mode,
            "replies": len(self.trials),
            "silent_replies": len(silent),
            "self_interruptions": sum(t.self_interruptions for t in self.trials),
            "self_interruptions_per_reply": sum(t.self_interruptions for t in self.trials) / max(1, len(self.trials)),
            "cpu_s_per_min": self.cpu_s_per_min,
            "echo_mic_dbfs": self.echo_mic_dbfs,
            "echo_sent_dbfs": self.echo_sent_dbfs,
            "erle_db": self.echo_mic_dbfs - self.echo_sent_dbfs,
        }
        for ste in sorted({t.ste_db for t in self.trials if t.kind == "barge"}, reverse=True):
            barges = [t for t in self.trials if t.kind == "barge" and t.ste_db == ste]
            key = f"{ste:+.0f}dB"
            out[f"barge_{key}_n"] = len(barges)
            out[f"barge_{key}_success"] = sum(t.success for t in barges) / len(barges)
            out[f"barge_{key}_talk_over_ms"] = _median([t.talk_over_ms for t in barges])
            out[f"barge_{key}_heard_ms"] = _median([t.heard_ms for t in barges])
            out[f"barge_{key}_onset_lost_ms"] = _median([t.onset_lost_ms for t in barges])
        return out


def _median(values: Sequence[float | None]) -> float:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else float("nan")


def _dbfs(x: np.ndarray) -> float:
    power = float(np.mean(x.astype(np.float64) ** 2)) if x.size else 0.0
    return 10 * float(np.log10(max(power, 1e-12) / 32768.0**2))


class _Call:
    """The client in the room, its server and its recordings."""

    def __init__(self, st: ServerThread, room: rooms.Room, env: dict[str, str], talk: subprocess.Popen[str],
                 mic: Recorder, spk: PlaybackRecorder, workdir: Path) -> None:
        self.st, self.room, self.env, self.talk = st, room, env, talk
        self.mic, self.spk, self.workdir = mic, spk, workdir
        self.players: list[subprocess.Popen[bytes]] = []

    def alive(self) -> None:
        if self.talk.poll() is not None:
            raise RuntimeError(f"voicechat talk exited early with status {self.talk.returncode}")

    def wait(self, cond: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.02)

    def play(self, name: str, audio: np.ndarray) -> tuple[float, subprocess.Popen[bytes]]:
        path = self.workdir / f"{name}.wav"
        if not path.exists():
            write_wav(path, audio, RATE)
        t = time.monotonic()
        player = subprocess.Popen(["paplay", "-d", self.room.user_sink, str(path)], env=self.env)
        self.players.append(player)
        return t, player

    def items(self) -> list[str]:
        seen: list[str] = []
        for _, e in self.st.emitted.events("response.output_audio.delta"):
            if e["item_id"] not in seen:
                seen.append(e["item_id"])
        return seen

    def first_delta_at(self, item: str) -> float:
        return next(t for t, e in self.st.emitted.events("response.output_audio.delta") if e["item_id"] == item)

    def answer(self, item: str) -> np.ndarray:
        chunks = [base64.b64decode(e["delta"]) for _, e in self.st.emitted.events("response.output_audio.delta")
                  if e["item_id"] == item]
        return np.frombuffer(b"".join(chunks), dtype="<i2")

    def done(self, item: str) -> bool:
        """The server has sent all of ``item`` (its response is done)."""
        return any(item in [o.get("id") for o in e["response"].get("output", [])]
                   for _, e in self.st.emitted.events("response.done"))

    def length_s(self, item: str) -> float:
        """The whole reply's duration (waits for its response to finish streaming)."""
        self.wait(lambda: self.done(item), 60, f"{item} to be sent whole")
        return self.answer(item).size / RATE

    def sent(self) -> np.ndarray:
        chunks = [base64.b64decode(e["audio"]) for _, e in self.st.received.events("input_audio_buffer.append")]
        return np.frombuffer(b"".join(chunks), dtype="<i2")

    def speech_started(self) -> list[float]:
        return [t for t, _ in self.st.emitted.events("input_audio_buffer.speech_started")]

    def audible_after(self, t: float) -> float | None:
        """Monotonic time of the first audible speaker sample at or after ``t``."""
        start = self.spk.index_at(t)
        loud = np.flatnonzero(np.abs(self.spk.samples()[start:].astype(np.int32)) > AUDIBLE)
        return self.spk.time_of(start + int(loud[0])) if loud.size else None

    def last_audible_before(self, t0: float, t1: float) -> float | None:
        x = self.spk.samples()
        a, b = self.spk.index_at(t0), min(x.size, self.spk.index_at(t1))
        loud = np.flatnonzero(np.abs(x[a:b].astype(np.int32)) > AUDIBLE)
        return self.spk.time_of(a + int(loud[-1]) + 1) if loud.size else None


def _ask(call: _Call, question: np.ndarray, n: int, name: str) -> tuple[str, float]:
    """Play a question; wait for the reply to become audible. Returns (item, audible time)."""
    call.play(name, question)[1].wait(timeout=30)
    items = call.wait(lambda: len(call.items()) > n and call.items(), 30, f"reply {n + 1}")
    item = str(items[n])
    t_audible = call.wait(lambda: call.audible_after(call.first_delta_at(item)), 20, f"reply {n + 1} at the speaker")
    return item, float(t_audible)


def _silent(call: _Call, trial: Trial, item: str, t_audible: float) -> None:
    length_s = call.length_s(item)
    t_end = t_audible + length_s
    call.wait(lambda: time.monotonic() > t_end + TAIL_S + 0.3, length_s + 30, "the reply to play out")
    trial.self_interruptions = sum(t_audible < t <= t_end + TAIL_S for t in call.speech_started())
    if call.st.received.events("conversation.item.truncate") and any(
        e["item_id"] == item for _, e in call.st.received.events("conversation.item.truncate")
    ):
        trial.note = "truncated"


def _barge(call: _Call, trial: Trial, item: str, t_audible: float, utterance: np.ndarray, echo_db: float,
           rng: random.Random, n: int) -> None:
    time.sleep(max(0.0, t_audible + rng.uniform(*BARGE_WINDOW_S) - time.monotonic()))
    user = _scaled(utterance, echo_db + float(trial.ste_db or 0.0))
    lead = np.zeros(int(LEAD_S * RATE), dtype=np.int16)  # the user's recorder attaches meanwhile
    _, player = call.play(f"barge-{n}-{trial.ste_db:+.0f}", np.concatenate([lead, user]))
    voice = PlaybackRecorder(player.pid, call.room.user_sink + ".monitor", call.env)
    voice.wait_attached(LEAD_S)
    try:
        player.wait(timeout=30)
        time.sleep(0.1)
    finally:
        voice.stop()
    try:
        nxt = call.wait(lambda: len(call.items()) > n + 1 and call.items(), NOT_HEARD_S, "a reply")[n + 1]
        t_next = call.first_delta_at(nxt)
    except TimeoutError:  # the server never took the user's words for a turn: not heard
        t_next = time.monotonic()
    # The user's onset: their own stream, recorded alone on the common clock (a correlation in
    # the microphone would be thrown by the echo at -6 dB and below).
    said = voice.samples()
    if not said.size or not np.any(said):
        trial.note = "the user's stream was not recorded"
        return
    t_onset = voice.time_of(speech.onset_ms(said, RATE) * RATE / 1000)
    onset_in_user = int(speech.onset_ms(user, RATE) * RATE / 1000)
    trial.self_interruptions = sum(t_audible < t < t_onset - 0.05 for t in call.speech_started())
    starts = [t for t in call.speech_started() if t >= t_onset - 0.05]
    if starts:
        trial.heard_ms = (starts[0] - t_onset) * 1000
        trial.heard = starts[0] - t_onset <= HEARD_WITHIN_S
    # The last sound of the reply: before the onset too when the user came in during a pause
    # (then the talk-over is negative: the speaker never sounded again).
    t_silent = call.last_audible_before(t_onset - 2.0, min(t_next, t_onset + 5.0))
    if t_silent is not None:
        trial.talk_over_ms = (t_silent - t_onset) * 1000
        trial.stopped = t_silent - t_onset <= SILENT_WITHIN_S
    trial.onset_lost_ms = onset_lost_ms(call.sent(), user, onset_in_user)


def _scaled(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` at an active-speech level of ``dbfs``."""
    y = x.astype(np.float64) * 10 ** ((dbfs - speech.level_dbfs(x)) / 20)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def onset_lost_ms(sent: np.ndarray, user: np.ndarray, onset: int) -> float | None:
    """ms from the user's onset (sample ``onset`` of ``user``) to the first 10 ms of the server's
    input ``sent`` that carries the user (within 12 dB of the user's own level in the same 10 ms),
    found by locating the utterance in the last 30 s of the input. None: not found at all."""
    if sent.size < user.size:
        return None
    tail = sent[-(user.size + 30 * RATE) :] if sent.size > user.size + 30 * RATE else sent
    pos, score = locate(user, tail)
    if score < 0.3:
        return None
    frame = RATE // 100
    at = pos + onset
    for k in range(0, int(0.5 * RATE), frame):
        u = user[onset + k : onset + k + frame]
        s = tail[at + k : at + k + frame]
        if u.size < frame or s.size < frame:
            break
        if _dbfs(u) > -60 and _dbfs(s) >= _dbfs(u) - 12:
            return k * 1000 / RATE
    return 500.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _schedule(silent: int, barges: dict[float, int], seed: int) -> list[Trial]:
    rest = [Trial("silent") for _ in range(silent - 1)]
    rest += [Trial("barge", ste) for ste, n in barges.items() for _ in range(n)]
    random.Random(seed).shuffle(rest)
    return [Trial("silent"), *rest]


@contextlib.contextmanager
def _client(env: dict[str, str], room: rooms.Room, st: ServerThread, mode: str, workdir: Path,
            extra: Sequence[str] = ()) -> Iterator[_Call]:
    mic = Recorder(room.mic_source, env)
    talk = None
    spk = None
    call = None
    try:
        cenv = dict(env, OPENAI_API_KEY="sk-bench-echo", VOICECHAT_CONFIG_DIR=str(workdir),
                    PULSE_SINK=room.client_sink, PULSE_SOURCE=room.client_source)
        talk = subprocess.Popen(
            [sys.executable, "-m", "voicechat", "talk", "--base-url", st.server.http_base_url, "--echo", mode,
             "--silence-duration-ms", "400", "--no-transcribe", "--transcript", str(workdir / "chat.jsonl"), *extra],
            env=cenv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(workdir / "talk.stderr", "w"), text=True,  # noqa: SIM115 (closed with the process)
        )
        deadline = time.monotonic() + 30
        while not sink_inputs_of(talk.pid, env):
            if talk.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("voicechat talk did not open its speaker")
            time.sleep(0.05)
        spk = PlaybackRecorder(talk.pid, room.client_sink + ".monitor", env)
        call = _Call(st, room, env, talk, mic, spk, workdir)
        call.wait(lambda: len(st.received.events("input_audio_buffer.append")) >= 10, 30, "the microphone to stream")
        yield call
    finally:
        if talk is not None and talk.poll() is None:
            talk.send_signal(signal.SIGINT)
            try:
                talk.wait(timeout=30)
            except subprocess.TimeoutExpired:
                talk.kill()
                talk.wait(timeout=10)
        mic.stop()
        if spk is not None:
            spk.stop()
        if call is not None:
            for p in call.players:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)


def run_room(room_name: str, env: dict[str, str], workdir: Path, *, mode: str = "auto", silent: int = 20,
             barges: dict[float, int] | None = None, reply_s: float = 12.0, seed: int = 0,
             echo_level_dbfs: float = -22.0, extra_args: Sequence[str] = ()) -> RoomResult:
    """One conversation in ``room_name``: ``silent`` heard-out replies and ``barges`` (speech to
    echo ratio in dB → count) talked-over ones, in the seed's order (the first always silent)."""
    barges = {0.0: 20, -6.0: 10} if barges is None else barges
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    trials = _schedule(silent, barges, seed)
    replies = [speech.reply(seed * 100 + i, seconds=reply_s, level_dbfs=echo_level_dbfs) for i in range(6)]
    questions = [speech.utterance(seed * 100 + 50 + i) for i in range(4)]
    barge_ins = [speech.utterance(seed * 100 + 70 + i) for i in range(4)]
    result = RoomResult(room_name, mode)
    opts = ServerOptions(brain=SpeechBrain(replies), recognizer="none", seed=seed, speed=4.0, record_limit=200_000)
    with rooms.room(room_name, env) as room, ServerThread(opts) as st, _client(env, room, st, mode, workdir, extra_args) as call:
        # The user speaks at the echo's level (a headset has none: at the reply's own level).
        echo_db = echo_level_dbfs + (room.echo_gain_db if np.isfinite(room.echo_gain_db) else 0.0)
        cpu0, t0 = _cpu_seconds(call.talk.pid), time.monotonic()
        n = 0  # replies so far
        current: tuple[str, float] | None = None  # a reply playing now: (item, when it became audible)
        for i, trial in enumerate(trials):
            if current is None:
                question = questions[i % len(questions)]
                q = _scaled(question, echo_db)
                current = _ask(call, q, n, f"question-{i % len(questions)}")
            item, t_audible = current
            trial.item = item
            if trial.kind == "silent":
                _silent(call, trial, item, t_audible)
                n += 1
                current = None
            else:
                _barge(call, trial, item, t_audible, barge_ins[i % len(barge_ins)], echo_db, rng, n)
                n += 1
                if len(call.items()) > n:
                    nxt = call.items()[n]
                    current = (nxt, call.wait(lambda r=nxt: call.audible_after(call.first_delta_at(r)), 20,
                                              "the reply to the barge-in at the speaker"))
                else:  # not heard: the reply it was talked over plays on; let it end
                    t_done = t_audible + call.length_s(item) + TAIL_S
                    call.wait(lambda t=t_done: time.monotonic() > t, 60, "the reply to play out")
                    current = None
            result.trials.append(trial)
        if current is not None:  # let the last reply play out
            item, t_audible = current
            t_done = t_audible + call.length_s(item) + TAIL_S
            call.wait(lambda: time.monotonic() > t_done, 60, "the last reply to play out")
        result.cpu_s_per_min = (_cpu_seconds(call.talk.pid) - cpu0) / (time.monotonic() - t0) * 60
        result.echo_mic_dbfs, result.echo_sent_dbfs = _echo_levels(call, [t for t in result.trials if t.kind == "silent"])
    result.exit_status = call.talk.returncode
    result.stderr_tail = (workdir / "talk.stderr").read_text(errors="replace")[-2000:]
    return result


def _echo_levels(call: _Call, silent: list[Trial]) -> tuple[float, float]:
    """The echo at the microphone and what the server received meanwhile, over heard-out
    replies, in dBFS (-120: digital silence)."""
    mic = call.mic.samples()
    heard, sent = [], []
    for trial in silent:
        t0 = call.first_delta_at(trial.item)
        t1 = t0 + call.length_s(trial.item)
        heard.append(mic[call.mic.index_at(t0) : call.mic.index_at(t1)])
        sent += [base64.b64decode(e["audio"]) for t, e in call.st.received.events("input_audio_buffer.append")
                 if t0 + 0.2 <= t <= t1]
    if not heard or not sent:
        return float("nan"), float("nan")
    return (max(-120.0, _dbfs(np.concatenate(heard))),
            max(-120.0, _dbfs(np.frombuffer(b"".join(sent), dtype="<i2"))))


def echo_lags_ms(record: Path, window_s: float = 2.0) -> list[float]:
    """From a ``voicechat talk --record`` file (microphone left, reference right, as the echo
    path saw them): for each ``window_s`` stretch where the reference is loud and its echo is
    found (the doctor's `measure_echo`, in the speech band, over -200…+500 ms), how far the
    microphone's echo trails the reference, in ms. Negative: the echo came before its
    reference, which no canceller can take out."""
    with wave.open(str(record)) as w:
        rate = w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    n = int(window_s * rate)
    out = []
    for a in range(0, frames.shape[0] - n + 1, n):
        mic, ref = frames[a : a + n, 0], frames[a : a + n, 1]
        if _dbfs(ref) < -40:
            continue
        m = measure_echo(ref, mic, rate, band=(150.0, 4000.0), min_delay_ms=-200.0, max_delay_ms=500.0)
        if m.found:
            out.append(round(m.delay_ms, 1))
    return out
