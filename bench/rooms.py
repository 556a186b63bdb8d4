"""Four rooms on the headless PulseAudio (``scripts/headless-audio.sh``) for the echo tests and bench.

Each room says which sink ``voicechat talk`` plays into (``PULSE_SINK``), which source it hears
(``PULSE_SOURCE``), where the user's speech is played, and what comes back:

* ``worst``: the speaker *is* the microphone. The client plays into the ``echo`` null sink and
  records its monitor; the user speaks into the same sink. 0 dB, no added delay.
* ``laptop``: a laptop's speakers next to its microphone: -6 dB, ~40 ms, and a room's
  reverberant tail (RT60 0.3 s). The client plays into ``spk`` and records ``mic.monitor``; a
  relay process (``python -m bench.rooms relay``: ``parec`` of ``spk.monitor`` → convolution with
  a room impulse response → ``pacat`` into ``mic``) carries the echo. A relay rather than
  PulseAudio's loopback module, because the module cannot add reverberation or clipping.
* ``loud-laptop``: ``laptop`` at 0 dB with a small speaker's soft clipping.
* ``headset``: ``spk`` and ``mic.monitor`` with nothing between them: no echo.

The room impulse response (`rir`) is a direct path, a few early reflections and an
exponentially decaying noise tail (RT60 0.3 s), the direct sound 6 dB above the reverberation
(speaker and microphone are centimetres apart on a laptop), normalised to unit energy so that
the gain says the echo's level. `measure` checks a room with a sweep: the gain and delay with
which what the client plays reaches what it hears.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

RELAY_RATE = 24_000
RELAY_BLOCK = RELAY_RATE // 100  # 10 ms
REC_LATENCY_MS = 5  # parec's buffer target
PLAY_LATENCY_MS = 30  # pacat's: enough that a late wake-up of the relay does not underrun it
# (an underrun shifts the echo's delay for good, and a canceller has to find it again)


@dataclass(frozen=True)
class Room:
    name: str
    client_sink: str
    client_source: str
    user_sink: str
    mic_source: str
    echo_gain_db: float  # intended; -inf: no echo
    echo_delay_ms: float  # intended total, speaker sink to microphone source
    rt60_s: float = 0.0
    clip: bool = False

    @property
    def speaker_source(self) -> str:
        return self.client_sink + ".monitor"


ROOMS = {
    "worst": Room("worst", "echo", "echo.monitor", "echo", "echo.monitor", 0.0, 0.0),
    "laptop": Room("laptop", "spk", "mic.monitor", "mic", "mic.monitor", -6.0, 40.0, rt60_s=0.3),
    "loud-laptop": Room("loud-laptop", "spk", "mic.monitor", "mic", "mic.monitor", 0.0, 40.0, rt60_s=0.3, clip=True),
    "headset": Room("headset", "spk", "mic.monitor", "mic", "mic.monitor", float("-inf"), 0.0),
}

# What the relay's own pipe adds (parec's and pacat's buffers, measured by tests/test_device_rooms.py);
# the relay pads the rest of the intended delay with silence.
RELAY_PIPE_MS = 9.0  # measured with the buffer targets above


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


def relay(gain_db: float, delay_ms: float, rt60: float, clip: bool, env: dict[str, str]) -> int:
    """Carry ``spk``'s monitor into ``mic`` through the room until stdin closes or a pipe breaks."""
    fmt = ["--raw", "--format=s16le", f"--rate={RELAY_RATE}", "--channels=1"]
    rec = subprocess.Popen(["parec", "-d", "spk.monitor", "--client-name=voicechat-room-relay", *fmt,
                            f"--latency-msec={REC_LATENCY_MS}"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    play = subprocess.Popen(["pacat", "--playback", "-d", "mic", "--client-name=voicechat-room-relay", *fmt,
                             f"--latency-msec={PLAY_LATENCY_MS}"], stdin=subprocess.PIPE, env=env)
    assert rec.stdout is not None and play.stdin is not None
    conv = Convolver(rir(RELAY_RATE, rt60) if rt60 > 0 else np.ones(1), RELAY_BLOCK)
    gain = 10 ** (gain_db / 20)
    pad = max(0, round((delay_ms - RELAY_PIPE_MS) * RELAY_RATE / 1000))
    try:
        play.stdin.write(np.zeros(pad, dtype="<i2").tobytes())
        pending = b""
        fd = rec.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 14)
            if not chunk:
                return 0
            pending += chunk
            n = len(pending) // (2 * RELAY_BLOCK)
            if n == 0:
                continue
            x = np.frombuffer(pending[: n * 2 * RELAY_BLOCK], dtype="<i2").astype(np.float64) / 32768.0
            pending = pending[n * 2 * RELAY_BLOCK :]
            y = np.concatenate([conv.process(b) for b in x.reshape(n, RELAY_BLOCK)]) * gain
            if clip:
                y = soft_clip(y)
            play.stdin.write(np.clip(np.round(y * 32768.0), -32768, 32767).astype("<i2").tobytes())
            play.stdin.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    finally:
        for p in (rec, play):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)


@contextlib.contextmanager
def room(name: str, env: dict[str, str]) -> Iterator[Room]:
    """The room ``name`` on the PulseAudio of ``env``; its relay runs while the block does."""
    r = ROOMS[name]
    proc = None
    if r.rt60_s > 0 or (r.client_sink != r.user_sink and np.isfinite(r.echo_gain_db)):
        args = [sys.executable, "-m", "bench.rooms", "relay", "--gain-db", str(r.echo_gain_db),
                "--delay-ms", str(r.echo_delay_ms), "--rt60", str(r.rt60_s)] + (["--clip"] if r.clip else [])
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL)
        time.sleep(0.5)  # its streams open
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} room's relay exited with status {proc.returncode}")
    try:
        yield r
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclass(frozen=True)
class Measured:
    gain_db: float  # echo energy against what the client played (doctor.measure_echo)
    delay_ms: float
    found: bool
    peak_dbfs: float  # the loudest sample the microphone heard


def measure(r: Room, env: dict[str, str], rate: int = 48_000) -> Measured:
    """Play a sweep into the client's sink; record the client's sink monitor and the microphone
    on one clock (`bench.devices.Recorder`); find the sweep's echo (`voicechat.doctor`)."""
    import tempfile
    from pathlib import Path

    from bench.devices import Recorder
    from voicechat.audio.wav import write_wav
    from voicechat.doctor import chirp, measure_echo

    sweep = chirp(rate)
    spk = Recorder(r.speaker_source, env, rate=rate)
    mic = Recorder(r.mic_source, env, rate=rate)
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sweep.wav"
            write_wav(path, np.concatenate([sweep, np.zeros(rate // 2, dtype=np.int16)]), rate)
            subprocess.run(["paplay", "-d", r.client_sink, str(path)], env=env, check=True, timeout=30)
        time.sleep(0.8)
    finally:
        spk.stop()
        mic.stop()
    a, b = spk.samples(), mic.samples()
    # Put both on the recorders' common clock: drop what each recorded before the later start.
    t0 = max(spk.time_of(0), mic.time_of(0))
    a = a[spk.index_at(t0) :]
    b = b[mic.index_at(t0) :]
    n = min(a.size, b.size)
    m = measure_echo(a[:n], b[:n], rate, min_delay_ms=-20, max_delay_ms=500)
    return Measured(m.echo_db, m.delay_ms, m.found, 20 * float(np.log10(max(1, np.abs(b[:n]).max()) / 32768)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rel = sub.add_parser("relay", help="carry spk.monitor into mic through a room (runs until killed)")
    rel.add_argument("--gain-db", type=float, required=True)
    rel.add_argument("--delay-ms", type=float, required=True)
    rel.add_argument("--rt60", type=float, default=0.0)
    rel.add_argument("--clip", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop parec and pacat with it
    return relay(args.gain_db, args.delay_ms, args.rt60, args.clip, dict(os.environ))


if __name__ == "__main__":
    raise SystemExit(main())
