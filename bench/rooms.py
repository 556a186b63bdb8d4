"""Four rooms on the headless PulseAudio (``scripts/headless-audio.sh``) for the echo tests and bench.

A room says which sink ``voicechat talk`` plays into (``PULSE_SINK``: `Room.client_sink`),
which source it records (``PULSE_SOURCE``: `Room.client_source`), where the test plays the
user's speech (``paplay -d``: `Room.user_sink`), what to record to hear the client's
microphone (`Room.mic_source`) and what the client played alone, before the room
(`Room.speaker_source`), and what the echo is meant to be (`Room.echo_gain_db`,
`Room.echo_delay_ms`, `Room.rt60_s`, `Room.clip`). ``with room(name, env) as r:`` builds it
for the block; `measure` checks it with a sweep.

* ``worst`` — a laptop at its worst, or a speakerphone with the microphone in the grille: the
  speaker *is* the microphone. The client plays into the ``echo`` null sink and records its
  monitor; the user speaks into the same sink. 0 dB, no added delay (the two ends of one null
  sink: 0 ms), no reverberation. Nothing to build.
* ``laptop`` — a laptop's speakers a few centimetres from its microphone, in a furnished room:
  the echo -6 dB re what was played (over its whole response), 40 ms after it (a laptop's
  output and input buffers), with the room's reverberant tail (RT60 0.3 s). The client plays
  into ``room_spk`` and records ``room_mic.monitor``; the user speaks into ``room_mic``; the
  relay carries the echo from ``room_spk.monitor`` into ``room_mic``.
* ``loud-laptop`` — the same laptop with its volume up: 0 dB, through the small speaker's
  nonlinearity, a soft clip (tanh) with its ceiling at -3 dBFS.
* ``headset`` — headphones: the client plays into ``spk`` and records ``mic.monitor`` with
  nothing between them; the user speaks into ``mic``. No echo (digital silence).

How the laptop rooms are built, and why. `room` loads, for the block, a stereo null sink
``room`` at 24 kHz and two mono ``module-remap-sink`` on it: ``room_spk`` (its left channel,
the speaker) and ``room_mic`` (its right channel, the microphone). Two null sinks (``spk``
into ``mic``) would not do: each runs its own timer, and they drift apart by tens of ppm, so an
echo relayed between them moved by 1-2 ms a minute (measured: +1.1 ms/min, and -2.3 ms/min
with the earlier ``parec | ... | pacat`` relay), and PulseAudio's latency reports are too
coarse to correct it (they swing by 5-10 ms whenever a client attaches to a sink). On one sink
the speaker and the microphone share one sample clock, and at the relay's own rate nothing is
resampled on its way: the relay's delay is then a whole number of samples that nothing
changes (measured: the same to the microsecond over 3 minutes with both cores busy). ``room.monitor`` is a stereo
recording of both, sample-aligned: `measure` and the relay's calibration use it.

The relay (``python -m bench.rooms relay``, a subprocess of `room`; PulseAudio's modules
cannot reverberate or clip without LADSPA plugins that are no Debian dependency here) records
``room_spk.monitor`` and plays into ``room_mic`` through libpulse's simple API
(``libpulse-simple.so.0``, in ``libpulse0``, which ``pulseaudio-utils`` needs anyway), s16 mono
at 24 kHz in 10 ms blocks. Each block is convolved with the room impulse response (`Convolver`:
FFT overlap-add, equal to one whole convolution, so no seams between blocks), scaled, and in
``loud-laptop`` soft-clipped. The playback stream has no pre-buffer, so it never stops on an
underrun: a stall of the relay (a busy CPU) loses that much echo but keeps its delay, where a
stream that stops and refills would make the echo later for good (measured with ``pacat``: a
50 ms stall made it 17 ms later, a 200 ms stall 176 ms). Calibration: at start the relay plays
a 0.5 s sweep into ``room_spk``, finds in ``room.monitor`` how late its echo arrives, drops or
inserts the difference to the intended delay, and checks again until it is within 0.25 ms;
then it prints ``ready``. Whatever it reports (a backlog above 50 ms: it fell behind, that
much echo was lost) goes to its stderr, ``bench.rooms relay: ...``, and into `Relay.events`.

The room impulse response (`rir`): a direct path, three early reflections (2.5, 5.1 and
8.7 ms: the desk, the lid, a wall) and an exponentially decaying Gaussian noise tail from 4 ms
(energy -60 dB at RT60), the direct sound 6 dB above the rest, normalised to unit energy so
that the relay's gain is the echo's overall level. Deterministic (a fixed seed).

`measure` plays a sweep (100 Hz-10 kHz, 1.5 s, -6 dBFS peak) into the client's sink with
``paplay`` while ``parecord`` records the speaker source and the microphone source (for the
laptop rooms: both at once, in ``room.monitor``; otherwise two recordings aligned on their
arrival times, `bench.devices.Recorder`), and reports the echo's energy re what was played, in
the sweep's band (``gain_db``), the echo path's direct-sound delay (``delay_ms``, from the
impulse response recovered by regularised deconvolution), the tail's RT60 from that response's
Schroeder decay (``rt60_s``, T20 extrapolated), and how much of the echo no linear response
explains (``distortion_db``: clipping shows there).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RELAY_RATE = 24_000
RELAY_BLOCK = RELAY_RATE // 100  # 10 ms
PLAY_BUFFER_MS = 60  # the relay's playback stream: room for the delay it holds
BEHIND_MS = 50.0  # a recording backlog this long: the relay fell behind (say so)
CALIBRATE_MS = 0.25  # how close the relay sets its delay before it says ready
ROOM_SINKS = ("room", "room_spk", "room_mic")  # the master and its speaker and microphone ends


@dataclass(frozen=True)
class Relay:
    """A room's relay process while `room`'s block runs."""

    proc: subprocess.Popen[str]
    events: list[str] = field(default_factory=list)  # what it reported on stderr

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass(frozen=True)
class Room:
    name: str
    client_sink: str  # PULSE_SINK for voicechat
    client_source: str  # PULSE_SOURCE for voicechat
    user_sink: str  # paplay -d: the user's speech
    mic_source: str  # record this to hear what the client's microphone hears
    echo_gain_db: float  # intended; -inf: no echo
    echo_delay_ms: float  # intended, speaker sink to microphone source
    rt60_s: float = 0.0
    clip: bool = False
    both_source: str | None = None  # stereo, sample-aligned: left the speaker, right the microphone
    relay: Relay | None = field(default=None, compare=False, repr=False)  # set by `room`

    @property
    def speaker_source(self) -> str:
        """Record this to hear what the client played alone, before the room."""
        return self.client_sink + ".monitor"


ROOMS = {
    "worst": Room("worst", "echo", "echo.monitor", "echo", "echo.monitor", 0.0, 0.0),
    "laptop": Room("laptop", "room_spk", "room_mic.monitor", "room_mic", "room_mic.monitor", -6.0, 40.0,
                   rt60_s=0.3, both_source="room.monitor"),
    "loud-laptop": Room("loud-laptop", "room_spk", "room_mic.monitor", "room_mic", "room_mic.monitor", 0.0, 40.0,
                        rt60_s=0.3, clip=True, both_source="room.monitor"),
    "headset": Room("headset", "spk", "mic.monitor", "mic", "mic.monitor", float("-inf"), 0.0),
}


# ---- the room's sound ---------------------------------------------------------------------------


def rir(rate: int = RELAY_RATE, rt60: float = 0.3, drr_db: float = 6.0, seed: int = 1) -> np.ndarray:
    """A room impulse response of unit energy: direct path, early reflections, decaying tail."""
    rng = np.random.default_rng(seed)
    n = int(rate * rt60 * 1.2)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB of energy at rt60
    tail[: int(0.004 * rate)] = 0.0
    for ms, gain in ((2.5, 0.5), (5.1, -0.35), (8.7, 0.25)):  # the desk, the lid, a wall
        tail[int(ms * rate / 1000)] += gain * np.sqrt(np.sum(tail**2)) / 4
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


class Convolver:
    """Streaming convolution with a fixed impulse response (FFT overlap-add): blockwise output
    equals the full convolution, with no seams between blocks."""

    def __init__(self, h: np.ndarray, block: int) -> None:
        self.block = block
        self.size = 1 << (block + h.size - 1).bit_length()
        self.H = np.fft.rfft(h, self.size)
        self.tail = np.zeros(self.size - block)

    def process(self, x: np.ndarray) -> np.ndarray:
        assert x.size == self.block
        y = np.fft.irfft(np.fft.rfft(x, self.size) * self.H, self.size)
        y[: self.tail.size] += self.tail
        self.tail = y[self.block :]
        return y[: self.block]


def soft_clip(x: np.ndarray, ceiling: float = 10 ** (-3 / 20)) -> np.ndarray:
    """A small speaker's nonlinearity: linear well below ``ceiling``, rounded off towards it."""
    return ceiling * np.tanh(x / ceiling)


# ---- libpulse's simple API ----------------------------------------------------------------------


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


PLAYBACK, RECORD = 1, 2
_S16LE, _DEFAULT = 3, 0xFFFFFFFF
_lib: ctypes.CDLL | None = None


def _pulse() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libpulse-simple.so.0")
        lib.pa_simple_new.restype = ctypes.c_void_p
        lib.pa_simple_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.c_char_p, ctypes.POINTER(_SampleSpec), ctypes.c_void_p,
                                      ctypes.POINTER(_BufferAttr), ctypes.POINTER(ctypes.c_int)]
        for name in ("pa_simple_read", "pa_simple_write"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
            getattr(lib, name).restype = ctypes.c_int
        lib.pa_simple_drain.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.pa_simple_free.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def _strerror(code: int) -> str:
    lib = ctypes.CDLL("libpulse.so.0")
    lib.pa_strerror.restype = ctypes.c_char_p
    lib.pa_strerror.argtypes = [ctypes.c_int]
    return (lib.pa_strerror(code) or b"?").decode()


class PulseStream:
    """One blocking s16le stream of libpulse's simple API (``pa_simple``), on the server the
    environment names (``PULSE_SERVER``)."""

    def __init__(self, direction: int, device: str, rate: int, channels: int = 1, *, tlength: int = _DEFAULT,
                 prebuf: int = _DEFAULT, minreq: int = _DEFAULT, fragsize: int = _DEFAULT, name: str = "relay") -> None:
        self.rate, self.channels = rate, channels
        spec = _SampleSpec(_S16LE, rate, channels)
        attr = _BufferAttr(_DEFAULT, tlength, prebuf, minreq, fragsize)
        err = ctypes.c_int(0)
        self._s: int | None = _pulse().pa_simple_new(None, b"voicechat-room-relay", direction, device.encode(),
                                                     name.encode(), ctypes.byref(spec), None, ctypes.byref(attr),
                                                     ctypes.byref(err))
        if not self._s:
            raise OSError(f"cannot open {device!r}: {_strerror(err.value)}")

    def read(self, frames: int) -> np.ndarray:
        """``frames`` frames (int16, shaped ``(frames, channels)`` when stereo); blocks until there."""
        n = 2 * frames * self.channels
        buf = ctypes.create_string_buffer(n)
        err = ctypes.c_int(0)
        if _pulse().pa_simple_read(self._s, buf, n, ctypes.byref(err)) < 0:
            raise OSError(f"pa_simple_read: {_strerror(err.value)}")
        x = np.frombuffer(buf.raw, dtype="<i2")
        return x if self.channels == 1 else x.reshape(frames, self.channels)

    def write(self, x: np.ndarray) -> None:
        data = np.ascontiguousarray(x, dtype="<i2").tobytes()
        err = ctypes.c_int(0)
        if data and _pulse().pa_simple_write(self._s, data, len(data), ctypes.byref(err)) < 0:
            raise OSError(f"pa_simple_write: {_strerror(err.value)}")

    def drain(self) -> None:
        err = ctypes.c_int(0)
        if _pulse().pa_simple_drain(self._s, ctypes.byref(err)) < 0:
            raise OSError(f"pa_simple_drain: {_strerror(err.value)}")

    def close(self) -> None:
        if self._s:
            _pulse().pa_simple_free(self._s)
            self._s = None


# ---- the relay ----------------------------------------------------------------------------------


def _say(msg: str) -> None:
    print(f"bench.rooms relay: {msg}", file=sys.stderr, flush=True)


class _Relay:
    """The relay's loop (a thread) and what calibration may ask of it."""

    def __init__(self, gain_db: float, rt60: float, clip: bool, source: str, sink: str) -> None:
        self.rate, self.block = RELAY_RATE, RELAY_BLOCK
        self.conv = Convolver(rir(self.rate, rt60) if rt60 > 0 else np.ones(1), self.block)
        self.gain = 10 ** (gain_db / 20)
        self.clip = clip
        self.rec = PulseStream(RECORD, source, self.rate, fragsize=2 * self.block)
        self.play: PulseStream | None = None
        self.sink = sink
        self.lock = threading.Lock()
        self.adjust = 0  # samples to drop (> 0) or insert (< 0), asked by calibration
        self.ready = False
        self.error: BaseException | None = None

    def start(self) -> None:
        # A new recording of an idle sink's monitor first hands out what the sink rendered
        # ahead (after a wait of up to 2 s): skip that, until reads wait for the sink.
        waited, start = 0, time.monotonic()
        while waited < 3 and time.monotonic() - start < 5:
            t = time.monotonic()
            self.rec.read(self.block)
            waited = waited + 1 if time.monotonic() - t > 0.5 * self.block / self.rate else 0
        # No pre-buffer: the stream never stops for an underrun (a stall loses audio, not time).
        self.play = PulseStream(PLAYBACK, self.sink, self.rate, tlength=2 * self.rate * PLAY_BUFFER_MS // 1000,
                                prebuf=0, minreq=2 * self.block)
        threading.Thread(target=self._run, name="relay", daemon=True).start()

    def _run(self) -> None:
        assert self.play is not None
        fifo = np.zeros(0)
        to_drop = 0
        count, earliest, behind = 0, math.inf, False
        try:
            while True:
                x = self.rec.read(self.block)
                # How late this block came, against the earliest any came (the sink renders on
                # time; the relay may not read on time): a backlog means it fell behind.
                count += self.block
                late = time.monotonic() - count / self.rate
                earliest = min(earliest, late)
                backlog_ms = (late - earliest) * 1000
                if backlog_ms > BEHIND_MS and not behind and self.ready:
                    _say(f"fell behind: {backlog_ms:.0f} ms of the speaker not yet relayed (that much echo is "
                         "lost; the delay holds)")
                behind = backlog_ms > BEHIND_MS / 2
                fifo = np.concatenate([fifo, x / 32768.0])
                with self.lock:
                    if self.adjust > 0:
                        to_drop += self.adjust
                    elif self.adjust < 0:
                        fifo = np.concatenate([np.zeros(-self.adjust), fifo])
                    self.adjust = 0
                if to_drop:
                    k = min(to_drop, fifo.size)
                    fifo, to_drop = fifo[k:], to_drop - k
                n = fifo.size // self.block
                if n:
                    y = np.concatenate([self.conv.process(b) for b in fifo[: n * self.block].reshape(n, self.block)])
                    fifo = fifo[n * self.block :]
                    y *= self.gain
                    if self.clip:
                        y = soft_clip(y)
                    self.play.write(np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16))
        except BaseException as e:  # reported by the main thread
            self.error = e


def _probe_delay_ms(probe_sink: str, both_source: str, rate: int) -> float:
    """Where the echo of a sweep played into ``probe_sink`` sits behind it, in ``both_source``."""
    both = PulseStream(RECORD, both_source, rate, 2, fragsize=4 * RELAY_BLOCK, name="calibration")
    frames: list[np.ndarray] = []
    stop = threading.Event()

    def record() -> None:
        while not stop.is_set():
            frames.append(both.read(RELAY_BLOCK))

    reader = threading.Thread(target=record, daemon=True)
    try:
        reader.start()
        time.sleep(0.1)
        out = PulseStream(PLAYBACK, probe_sink, rate, name="calibration")
        try:
            out.write(np.concatenate([np.zeros(rate // 10, dtype=np.int16), sweep(rate, seconds=0.5, peak_dbfs=-12.0)]))
            out.drain()
        finally:
            out.close()
        time.sleep(0.3)  # the echo's tail
    finally:
        stop.set()
        reader.join(timeout=5)
        both.close()
    x = np.concatenate(frames)
    m = analyse(x[:, 0], x[:, 1], rate)
    if not m.found:
        raise RuntimeError(f"calibration: no echo of the sweep in {both_source} ({m})")
    return m.delay_ms


def relay(gain_db: float, delay_ms: float, rt60: float, clip: bool, *, source: str, sink: str,
          probe_sink: str | None = None, both_source: str | None = None) -> int:
    """Carry ``source`` into ``sink`` through the room until killed. With ``probe_sink`` and
    ``both_source``, first set the delay to ``delay_ms`` by measurement (see the module
    docstring); then ``ready`` on stdout."""
    r = _Relay(gain_db, rt60, clip, source, sink)
    r.start()
    assert r.play is not None
    r.play.write(np.zeros(max(0, round(delay_ms * r.rate / 1000) - r.block), dtype=np.int16))  # about right
    if probe_sink and both_source:
        for _ in range(6):
            if r.error is not None:
                raise r.error
            measured = _probe_delay_ms(probe_sink, both_source, r.rate)
            error = measured - delay_ms
            _say(f"calibration: the echo is {measured:.2f} ms late (intended {delay_ms:.2f})")
            if abs(error) <= CALIBRATE_MS:
                break
            with r.lock:
                r.adjust += round(error * r.rate / 1000)
            time.sleep(0.1)
        else:
            raise RuntimeError(f"calibration: could not set the delay to {delay_ms} ms (last {measured:.2f} ms)")
    r.ready = True
    print("ready", flush=True)
    while r.error is None:
        time.sleep(0.2)
    raise r.error


# ---- the rooms ----------------------------------------------------------------------------------


def _pactl(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["pactl", *args], env=dict(env, LC_ALL="C"), check=True, capture_output=True, text=True,
                          timeout=30).stdout


def _unload_room_sinks(env: dict[str, str]) -> None:
    """Unload the modules of the ``room`` sinks (ours, or left by a run that was killed)."""
    mods = []
    for line in _pactl(env, "list", "short", "sinks").splitlines():
        fields = line.split("\t")
        if len(fields) > 1 and fields[1] in ROOM_SINKS:
            mods.append((ROOM_SINKS.index(fields[1]), fields[1]))
    for _, name in sorted(mods, reverse=True):  # the remap sinks before their master
        out = _pactl(env, "list", "sinks")
        for block in out.split("\n\n"):
            if f"Name: {name}\n" in block:
                for line in block.splitlines():
                    if line.strip().startswith("Owner Module:"):
                        with contextlib.suppress(subprocess.CalledProcessError):
                            _pactl(env, "unload-module", line.split(":", 1)[1].strip())


def _load_room_sinks(env: dict[str, str]) -> None:
    _unload_room_sinks(env)
    master, spk, mic = ROOM_SINKS
    _pactl(env, "load-module", "module-null-sink", f"sink_name={master}", f"rate={RELAY_RATE}", "channels=2",
           "channel_map=front-left,front-right", "sink_properties=device.description=voicechat-room")
    for name, channel in ((spk, "front-left"), (mic, "front-right")):
        _pactl(env, "load-module", "module-remap-sink", f"sink_name={name}", f"master={master}", "channels=1",
               f"master_channel_map={channel}", "channel_map=mono", "remix=no",
               f"sink_properties=device.description=voicechat-{name.replace('_', '-')}")


@contextlib.contextmanager
def room(name: str, env: dict[str, str]) -> Iterator[Room]:
    """The room ``name`` on the PulseAudio of ``env`` for the block: its sinks and its relay (one
    laptop room at a time on one PulseAudio)."""
    r = ROOMS[name]
    if r.both_source is None:
        yield r
        return
    args = [sys.executable, "-m", "bench.rooms", "relay", "--gain-db", str(r.echo_gain_db),
            "--delay-ms", str(r.echo_delay_ms), "--rt60", str(r.rt60_s), "--source", r.speaker_source,
            "--sink", r.user_sink, "--probe-sink", r.client_sink, "--both-source", r.both_source]
    try:
        _load_room_sinks(env)
        proc = subprocess.Popen(args + (["--clip"] if r.clip else []), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    except BaseException:
        _unload_room_sinks(env)
        raise
    handle = Relay(proc)

    def collect() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            handle.events.append(line.rstrip("\n"))
            sys.stderr.write(line)

    got: list[str] = []
    threads = [threading.Thread(target=collect, name=f"relay-{name}-stderr", daemon=True),
               threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)]  # type: ignore[union-attr]
    try:
        for t in threads:
            t.start()
        threads[1].join(timeout=30)
        if not got or got[0].strip() != "ready":
            threads[0].join(timeout=2)
            raise RuntimeError(f"the {name} room's relay did not start: {' | '.join(handle.events) or 'no output'}")
        yield dataclasses.replace(r, relay=handle)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        _unload_room_sinks(env)


# ---- measuring a room ---------------------------------------------------------------------------

SWEEP_BAND = (100.0, 10_000.0)  # within the relay's 12 kHz
FLAT_BAND = (200.0, 8_000.0)  # where the deconvolution's band taper is flat
DECONV_EPS = 1e-5  # regularisation, re the sweep's mean power in its band


@dataclass(frozen=True)
class Measured:
    """What `measure` found; ``gain_db, delay_ms, rt60_s = measure(...)`` unpacks the three."""

    gain_db: float  # the echo's energy re what the client played, in the sweep's band; -120: none
    delay_ms: float  # the echo path's direct sound after the speaker (nan: no echo)
    rt60_s: float  # the tail's RT60 from the Schroeder decay (nan: no echo, or no decay to -25 dB)
    found: bool  # an echo at all (its response's peak 30 dB over the deconvolution's noise)
    peak_dbfs: float  # the loudest sample the microphone heard
    distortion_db: float  # the part of the echo no linear response explains, re the echo

    def __iter__(self) -> Iterator[float]:
        return iter((self.gain_db, self.delay_ms, self.rt60_s))


def sweep(rate: int, seconds: float = 1.5, band: tuple[float, float] = SWEEP_BAND, peak_dbfs: float = -6.0) -> np.ndarray:
    """A linear sine sweep (a flat spectrum over ``band``) with 10 ms fades, int16."""
    t = np.arange(int(rate * seconds)) / rate
    x = np.sin(2 * np.pi * (band[0] * t + (band[1] - band[0]) * t * t / (2 * seconds)))
    ramp = int(rate * 0.01)
    x[:ramp] *= np.linspace(0, 1, ramp)
    x[-ramp:] *= np.linspace(1, 0, ramp)
    return np.round(x * 32767 * 10 ** (peak_dbfs / 20)).astype(np.int16)


def _band_taper(freqs: np.ndarray, lo: tuple[float, float], hi: tuple[float, float]) -> np.ndarray:
    w = np.zeros(freqs.size)
    w[(freqs >= lo[1]) & (freqs <= hi[0])] = 1.0
    up = (freqs > lo[0]) & (freqs < lo[1])
    w[up] = 0.5 - 0.5 * np.cos(np.pi * (freqs[up] - lo[0]) / (lo[1] - lo[0]))
    down = (freqs > hi[0]) & (freqs < hi[1])
    w[down] = 0.5 + 0.5 * np.cos(np.pi * (freqs[down] - hi[0]) / (hi[1] - hi[0]))
    return w


def schroeder_rt60(h: np.ndarray, rate: int) -> float:
    """RT60 of an impulse response from its Schroeder decay: the -5 to -25 dB slope (T20),
    extrapolated to 60 dB; nan when the decay never reaches -25 dB."""
    e = np.asarray(h, dtype=np.float64) ** 2
    edc = np.cumsum(e[::-1])[::-1]
    if edc[0] <= 0:
        return float("nan")
    db = 10 * np.log10(np.maximum(edc / edc[0], 1e-30))
    fit = (db <= -5) & (db >= -25)
    if not np.any(db < -25) or np.count_nonzero(fit) < 2:
        return float("nan")
    t = np.arange(e.size) / rate
    slope = float(np.polyfit(t[fit], db[fit], 1)[0])
    return -60.0 / slope if slope < 0 else float("nan")


def analyse(spk: np.ndarray, mic: np.ndarray, rate: int, tail_s: float = 0.6) -> Measured:
    """`Measured` from what the speaker played and what the microphone heard, on one timeline."""
    s = np.asarray(spk, dtype=np.float64)
    m = np.asarray(mic, dtype=np.float64)
    n = min(s.size, m.size)
    s, m = s[:n], m[:n]
    peak_dbfs = 20 * math.log10(max(1.0, float(np.abs(m).max(initial=0.0))) / 32768)
    size = 1 << (2 * n).bit_length()
    S, M = np.fft.rfft(s, size), np.fft.rfft(m, size)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    flat = (freqs >= FLAT_BAND[0]) & (freqs <= FLAT_BAND[1])
    e_spk = float(np.sum(np.abs(S[flat]) ** 2))
    if e_spk <= 0:
        raise ValueError("the speaker source recorded no sweep")
    e_mic = float(np.sum(np.abs(M[flat]) ** 2))
    gain_db = max(-120.0, 10 * math.log10(e_mic / e_spk)) if e_mic > 0 else -120.0
    power = np.abs(S) ** 2
    H = M * np.conj(S) / (power + DECONV_EPS * float(np.mean(power[flat])))  # regularised deconvolution
    taper = _band_taper(freqs, (SWEEP_BAND[0], FLAT_BAND[0]), (FLAT_BAND[1], SWEEP_BAND[1]))
    h = np.fft.irfft(H * taper, size)  # band-limited with smooth edges: a compact direct peak
    lags = np.arange(-int(0.02 * rate), int(0.5 * rate))
    a = np.abs(h[lags % size])
    i = int(np.argmax(a))
    noise = float(np.median(np.abs(h[size // 2 : size - int(0.05 * rate)])))  # far negative lags
    found = bool(a[i] > 0 and a[i] > 10 ** 1.5 * noise)
    if not found:
        return Measured(gain_db, float("nan"), float("nan"), False, peak_dbfs, float("nan"))
    frac = 0.0
    if 0 < i < a.size - 1:  # the peak between samples (parabola through three)
        den = a[i - 1] - 2 * a[i] + a[i + 1]
        frac = 0.5 * (a[i - 1] - a[i + 1]) / den if den else 0.0
    lag = int(lags[i])
    window = np.arange(lag - int(0.002 * rate), lag + int(tail_s * rate)) % size
    rt60 = schroeder_rt60(h[window], rate)
    # Distortion: in the sweep's band, the microphone less the echo the response (the room's
    # length of it) predicts: what no linear room explains, such as a clipping speaker's harmonics.
    g = np.zeros(size)
    g[window] = np.fft.irfft(H, size)[window]
    residual = M[flat] - np.fft.rfft(g)[flat] * S[flat]
    distortion_db = 10 * math.log10(max(float(np.sum(np.abs(residual) ** 2)) / e_mic, 1e-12))
    return Measured(gain_db, float((lag + frac) * 1000 / rate), rt60, True, peak_dbfs, distortion_db)


def measure(r: Room, env: dict[str, str], rate: int | None = None) -> Measured:
    """Play a sweep into the client's sink and `analyse` what the speaker source and the
    microphone source recorded (``parecord``; one stereo recording where the room has one),
    at ``rate`` (default: the laptop rooms' own 24 kHz, else 48 kHz)."""
    rate = rate or (RELAY_RATE if r.both_source else 48_000)
    from bench.devices import Recorder
    from voicechat.audio.wav import write_wav

    both = None if r.both_source is None else Recorder(r.both_source, env, rate, channels=2)
    recs: list[Recorder] = (
        [both] if both is not None else [Recorder(r.speaker_source, env, rate=rate), Recorder(r.mic_source, env, rate=rate)]
    )
    try:
        deadline = time.monotonic() + 10
        while any(len(x) < rate // 10 for x in recs) and time.monotonic() < deadline:
            time.sleep(0.02)  # every recording runs (100 ms in each)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sweep.wav"
            # Silence first: a sink rewinds when a stream starts, and its monitors may not
            # carry the first ~10 ms alike.
            quiet = np.zeros(rate // 4, dtype=np.int16)
            write_wav(path, np.concatenate([quiet, sweep(rate), quiet, quiet]), rate)
            subprocess.run(["paplay", "-d", r.client_sink, str(path)], env=env, check=True, timeout=30)
        time.sleep(0.8)  # the echo's tail
    finally:
        for x in recs:
            x.stop()
    if both is not None:
        x = both.samples()
        return analyse(x[:, 0], x[:, 1], rate)
    spk, mic = recs
    a, b = spk.samples(), mic.samples()
    # Both on the recorders' common clock: drop what each recorded before the later start.
    t0 = max(spk.time_of(0), mic.time_of(0))
    return analyse(a[spk.index_at(t0) :], b[mic.index_at(t0) :], rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rel = sub.add_parser("relay", help="carry a speaker into a microphone through a room (runs until killed)")
    rel.add_argument("--gain-db", type=float, required=True)
    rel.add_argument("--delay-ms", type=float, required=True)
    rel.add_argument("--rt60", type=float, default=0.0)
    rel.add_argument("--clip", action="store_true")
    rel.add_argument("--source", required=True, help="the speaker's monitor")
    rel.add_argument("--sink", required=True, help="the microphone's sink")
    rel.add_argument("--probe-sink", help="calibrate: play a sweep here (the speaker)")
    rel.add_argument("--both-source", help="calibrate: a stereo source, the speaker left, the microphone right")
    sub.add_parser("measure", help="build and measure every room on the PulseAudio of the environment")
    args = parser.parse_args(argv)
    if args.cmd == "measure":
        env = dict(os.environ)
        for name in ROOMS:
            with room(name, env) as r:
                print(name, measure(r, env), flush=True)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return relay(args.gain_db, args.delay_ms, args.rt60, args.clip, source=args.source, sink=args.sink,
                     probe_sink=args.probe_sink, both_source=args.both_source)
    except (OSError, RuntimeError) as e:
        _say(f"error: {e}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
