"""Measuring through the real audio devices of a headless PulseAudio, shared by the device tests
and the bench.

* ``headless_pulse_env`` / ``stop_pulse``: start ``scripts/headless-audio.sh`` in a private
  directory and get the client environment; stop it afterwards.
* ``Recorder``: ``parecord`` of one source into memory, every chunk stamped with
  ``time.monotonic()`` on arrival, so a sample index maps to this process's clock; with
  ``monitor_stream``, of one playback stream alone (found with ``sink_inputs_of``).
* ``PlaybackRecorder``: everything one process plays, alone, on the same clock (it follows
  the process from stream to stream).
* ``ServerThread``: a ``LocalServer`` on its own asyncio loop in a background thread, whose
  ``received``/``emitted`` records are stamped with the same clock.
* ``blobs`` (sounding segments of a recording) and ``locate`` (where a piece of audio sits in
  another).

Why arrival stamps give a usable clock: a null sink renders on ``CLOCK_MONOTONIC`` (the clock
of ``time.monotonic()``) at exactly its nominal rate, and its monitor hands each rendered block
to the recorder at once. Data can arrive late (scheduling) but never before it is rendered,
so the lower envelope of ``arrival - samples / rate`` over all chunks is the time of sample 0;
the error is bounded by how far ahead of its nominal time the sink renders (its latency,
~10 ms with a low-latency recorder attached).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicechat.server import LocalServer, ServerOptions

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "headless-audio.sh"
TIMEUNIT = float(os.environ.get("VOICECHAT_TEST_TIMEUNIT", "1"))
RATE = 24_000


def headless_pulse_env(pulse_dir: Path) -> dict[str, str]:
    """Start a private headless PulseAudio in ``pulse_dir``; its client environment."""
    env = dict(os.environ, VOICECHAT_PULSE_DIR=str(pulse_dir), VOICECHAT_PULSE_KEEPALIVE="1")
    out = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"headless PulseAudio did not start: {out.stderr.strip()}")
    for line in out.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'\"")
    return env


def stop_pulse(env: dict[str, str]) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=30)


# ---- recording with a clock ---------------------------------------------------------------


class Recorder:
    """``parecord`` of ``source`` (s16 at ``rate``, mono unless ``channels=2``: the rooms' left/right
    pair) into memory, chunks stamped on arrival.

    ``monitor_stream``: record only what that sink input (one playback stream) contributes to
    the sink whose monitor ``source`` is, before it is mixed with the sink's other streams.
    The recording ends when that stream closes.
    """

    def __init__(
        self, source: str, env: dict[str, str], rate: int = RATE, latency_ms: int = 10,
        monitor_stream: int | None = None, channels: int = 1,
    ) -> None:
        self.rate = rate
        self.channels = channels
        self._frame = 2 * channels  # bytes per frame
        only = [] if monitor_stream is None else [f"--monitor-stream={monitor_stream}"]
        if channels == 2:
            only.append("--channel-map=front-left,front-right")
        self._data = bytearray()
        self._stamps: list[tuple[float, int]] = []  # (arrival time, bytes received so far)
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["parecord", "--raw", "-d", source, "--format=s16le", f"--rate={rate}", f"--channels={channels}",
             f"--latency-msec={latency_ms}", "--client-name=voicechat-test-recorder", *only],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0,
        )
        self._thread = threading.Thread(target=self._read, name=f"rec-{source}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            now = time.monotonic()
            if not chunk:
                return
            with self._lock:
                self._data += chunk
                self._stamps.append((now, len(self._data)))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data) // self._frame

    def samples(self) -> np.ndarray:
        """Mono: one sample per frame; stereo: frames × 2."""
        with self._lock:
            data = bytes(self._data[: len(self._data) // self._frame * self._frame])
        x = np.frombuffer(data, dtype="<i2")
        return x if self.channels == 1 else x.reshape(-1, self.channels)

    def time_of(self, index: float) -> float:
        """``time.monotonic()`` at which sample ``index`` was rendered (see the module docstring)."""
        with self._lock:
            stamps = list(self._stamps)
        assert stamps, "the recorder got no audio"
        origin = min(t - (n // self._frame) / self.rate for t, n in stamps)
        return origin + index / self.rate

    def index_at(self, t: float) -> int:
        """The sample index rendered at ``time.monotonic()`` value ``t`` (inverse of ``time_of``)."""
        return max(0, round((t - self.time_of(0)) * self.rate))

    def arrival_spread_ms(self) -> float:
        """How late chunks arrived relative to the lower envelope, 95th percentile (diagnostic)."""
        with self._lock:
            stamps = list(self._stamps)
        lag = np.array([t - (n // self._frame) / self.rate for t, n in stamps])
        return float(np.percentile(lag - lag.min(), 95) * 1000) if lag.size else float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._thread.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def sink_inputs_of(pid: int, env: dict[str, str]) -> list[int]:
    """Indexes of the playback streams (sink inputs) that process ``pid`` has open."""
    out = subprocess.run(["pactl", "list", "sink-inputs"], env=dict(env, LC_ALL="C"),
                         capture_output=True, text=True, timeout=10)
    found = []
    for block in re.split(r"\n(?=Sink Input #)", out.stdout):
        head = re.match(r"Sink Input #(\d+)", block)
        if head and f'application.process.id = "{pid}"' in block:
            found.append(int(head.group(1)))
    return found


class PlaybackRecorder:
    """What process ``pid`` plays into the sink whose monitor is ``source``, before mixing.

    One ``Recorder`` with ``monitor_stream`` per playback stream of the process. ALSA's pulse
    plugin replaces its stream whenever PortAudio re-prepares the device (after an underrun,
    for one), so new streams are picked up as ``pactl subscribe`` announces them, and the
    pieces are laid out on one timeline by their clocks, with silence in the gaps between
    them. (Checked by stopping the client for 150-300 ms: the new stream was followed, and
    what it played afterwards sat on the timeline where the sink's monitor heard it, to 1 ms.)
    Offers the ``Recorder`` reading interface: ``len``, ``samples``, ``time_of``, ``index_at``.
    """

    def __init__(self, pid: int, source: str, env: dict[str, str], rate: int = RATE) -> None:
        self.pid = pid
        self.source = source
        self.env = env
        self.rate = rate
        self.parts: list[Recorder] = []
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self._events = subprocess.Popen(
            ["pactl", "subscribe"], env=dict(env, LC_ALL="C"), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        self._thread = threading.Thread(target=self._follow, name=f"follow-{pid}", daemon=True)
        self._thread.start()
        self._attach()  # the streams already open

    def wait_attached(self, timeout: float) -> bool:
        """Until a stream of the process is followed. A stream that appears before ``pactl
        subscribe`` has subscribed is announced to nobody, so this looks again itself."""
        deadline = time.monotonic() + timeout
        while True:
            self._attach()
            with self._lock:
                if self.parts:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def _attach(self) -> None:
        for index in sink_inputs_of(self.pid, self.env):
            with self._lock:
                if index not in self._seen:
                    self._seen.add(index)
                    self.parts.append(Recorder(self.source, self.env, self.rate, monitor_stream=index))

    def _follow(self) -> None:
        assert self._events.stdout is not None
        for line in self._events.stdout:
            if "'new' on sink-input" in line:
                self._attach()

    def _layout(self) -> list[tuple[int, Recorder]]:
        """(offset on the common timeline, part) for every part that recorded something."""
        with self._lock:
            parts = [part for part in self.parts if len(part)]
        if not parts:
            return []
        origin = parts[0].time_of(0)
        return [(max(0, round((part.time_of(0) - origin) * self.rate)), part) for part in parts]

    def __len__(self) -> int:
        return max((offset + len(part) for offset, part in self._layout()), default=0)

    def samples(self) -> np.ndarray:
        layout = self._layout()
        out = np.zeros(max((offset + len(part) for offset, part in layout), default=0), dtype=np.int16)
        for offset, part in layout:
            x = part.samples()
            out[offset : offset + x.size] = x[: out.size - offset]
        return out

    def time_of(self, index: float) -> float:
        layout = self._layout()
        assert layout, "the recorder got no audio"
        return layout[0][1].time_of(0) + index / self.rate

    def index_at(self, t: float) -> int:
        return max(0, round((t - self.time_of(0)) * self.rate))

    def stop(self) -> None:
        self._events.terminate()
        self._events.wait(timeout=10)
        self._thread.join(timeout=10)
        if self._events.stdout is not None:
            self._events.stdout.close()
        with self._lock:
            parts = list(self.parts)
        for part in parts:
            part.stop()


# ---- the local server on a thread, with stamped records -------------------------------------


class StampedLog(deque):  # type: ignore[type-arg]
    """A deque that also notes ``time.monotonic()`` of every append (thread-safe snapshots)."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self._times: deque[float] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, item: Any) -> None:
        with self._lock:
            self._times.append(time.monotonic())
            super().append(item)

    def stamped(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(zip(self._times, self, strict=True))

    def events(self, etype: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.stamped() if e.get("type") == etype]


class ServerThread:
    """``with ServerThread(opts) as st:`` → ``st.server`` listening on 127.0.0.1, records stamped."""

    def __init__(self, opts: ServerOptions) -> None:
        self.opts = opts
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.server = LocalServer(opts, host="127.0.0.1", port=0)
        self.received = StampedLog(opts.record_limit)
        self.emitted = StampedLog(opts.record_limit)
        self.server.received = self.received
        self.server.emitted = self.emitted
        self._thread = threading.Thread(target=self._run, name="local-server", daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.server.start()
        self._ready.set()
        await self._stop.wait()
        await self.server.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(30 * TIMEUNIT), "the local server did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15 * TIMEUNIT)



# ---- analysis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """A sounding stretch of a recording: samples ``[start, end)``."""

    start: int
    end: int

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000 / RATE


def blobs(x: np.ndarray, threshold: int = 40, min_gap_ms: int = 200, rate: int = RATE) -> list[Blob]:
    """Stretches where ``|x| > threshold``, merging those separated by less than ``min_gap_ms``."""
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > threshold)
    if loud.size == 0:
        return []
    gap = min_gap_ms * rate // 1000
    breaks = np.flatnonzero(np.diff(loud) > gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return [Blob(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _correlate(signal: np.ndarray, template: np.ndarray) -> np.ndarray:
    """``out[k] = sum(signal[k + j] * template[j])`` for every full overlap (FFT)."""
    n = signal.size + template.size
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(template, size))
    return np.fft.irfft(spec, size)[: signal.size - template.size + 1]


def locate(template: np.ndarray, signal: np.ndarray) -> tuple[int, float]:
    """Offset in ``signal`` where ``template`` fits best, and the normalised correlation there."""
    t = template.astype(np.float64)
    s = signal.astype(np.float64)
    if s.size < t.size or not np.any(t):
        raise ValueError("template longer than the signal, or silent")
    raw = _correlate(s, t)
    energy = np.concatenate([[0.0], np.cumsum(s * s)])
    window = energy[t.size :] - energy[: s.size - t.size + 1]
    score = raw / np.sqrt(np.maximum(window, 1e-9) * float(np.dot(t, t)))
    best = int(np.argmax(score))
    return best, float(score[best])
