"""Acoustic echo cancellation for ``--echo aec``: WebRTC's audio processing module (AEC3).

The canceller comes from the ``livekit`` package, a default dependency: a binary wheel for
Linux, macOS and Windows whose native library carries WebRTC's audio processing module. It was
chosen over ``aec-audio-processing`` (the other maintained binding), which ships source only and
needs a C++ toolchain to install. It is imported only when an `EchoCanceller` is built (or
`aec_available` asks), so a broken install still starts (``--echo auto`` falls back to the
gate) and ``--help`` never pays its import (~0.1 s, plus ~40 MB of resident native code and a few idle native
threads once the first canceller exists).

What the module does with the audio, measured with ``bench/erle.py``:

* It finds the speaker-to-mic delay by itself, from 0 to about 0.5 s. The delay hint given to
  the library is not needed for that; `set_delay_ms` still matters for longer paths (below).
* The output is the input delayed by about 8–10 ms (the canceller's own processing delay) and
  high-pass filtered below ~100 Hz (the library forces that filter on with echo cancellation).
* During double talk its residual-echo suppressor ducks the near-end speech by a few dB (about
  4–7 dB when the user is as loud as the echo), so a barge-in still gets through, quieter.

Two conventions of this adapter:

* Blocks of any length go in; the library works in 10 ms frames, so samples short of a whole
  frame wait for the next call. The output always has the input's length. Blocks of whole
  10 ms frames (20 ms blocks included) never lag; from the first block that leaves a part
  frame over, the output lags the input by one frame less a sample for good (`lag_samples`),
  and that much silence is inserted there, once.
* Echo paths longer than the library searches (Bluetooth speakers, large device buffers) are
  handled with the delay hint: the reference is held back by the hint less a margin, so the
  library only has to find what is left.

Not thread-safe: one consumer (the event loop) calls `process`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import numpy.typing as npt

from voicechat.errors import AudioError

INSTALL_HINT = "reinstall voicechat, or: pip install 'livekit>=1.2,<2'"

SUPPORTED_RATES = (8000, 16000, 24000, 32000, 44100, 48000, 96000)
"""Sample rates the canceller runs at directly (each measured by ``bench/erle.py``)."""

SEARCH_MS = 500
"""Echo delays the library finds by itself (measured: up to ~520 ms); also its hint ceiling."""

MARGIN_MS = 200
"""How far the real delay may be below the hint when the reference is held back."""

HYSTERESIS_MS = 40
"""A hold-back change smaller than this is ignored, so jittery hints do not disturb the filter."""

_EMPTY = np.zeros(0, dtype=np.int16)


def _backend() -> ModuleType:
    """Import the extra's module, or raise `AudioError` with the install hint."""
    try:
        return importlib.import_module("livekit.rtc")
    except Exception as e:  # missing, or installed but broken (native library, protobuf)
        raise AudioError(
            f"echo cancellation needs the livekit package ({e})", hint=INSTALL_HINT
        ) from e


def aec_available() -> bool:
    """True when the ``aec`` extra is installed and imports (imports it on first call)."""
    try:
        _backend()
    except AudioError:
        return False
    return True


def _as_block(x: npt.NDArray[np.int16], name: str) -> npt.NDArray[np.int16]:
    arr = np.asarray(x)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D int16, got {arr.dtype} with shape {arr.shape}")
    return arr


class EchoCanceller:
    """Cancels the speaker's echo from the microphone; both int16 mono at `rate`."""

    def __init__(self, rate: int, *, delay_ms: int = 0, noise_suppression: bool = False) -> None:
        """Start a canceller at ``rate`` with an initial speaker-to-mic delay hint.

        Raises:
            AudioError: the ``aec`` extra is missing or failed to start, or ``rate`` is not one
                of `SUPPORTED_RATES`.
        """
        if rate not in SUPPORTED_RATES:
            rates = ", ".join(str(r) for r in SUPPORTED_RATES)
            raise AudioError(
                f"echo cancellation does not run at {rate} Hz",
                hint=f"supported rates: {rates}; the 24000 Hz wire rate always works",
            )
        rtc = _backend()
        self.rate = int(rate)
        self._frame = self.rate // 100
        try:
            self._apm = rtc.AudioProcessingModule(
                echo_cancellation=True, noise_suppression=noise_suppression
            )
            # The module processes these frames in place; their bytearrays are reused.
            self._mic_frame = rtc.AudioFrame(bytearray(2 * self._frame), self.rate, 1, self._frame)
            self._ref_frame = rtc.AudioFrame(bytearray(2 * self._frame), self.rate, 1, self._frame)
        except Exception as e:  # the native library can fail in ways only it knows
            raise AudioError(f"echo cancellation failed to start: {e}", hint=INSTALL_HINT) from e
        # Samples short of a whole frame, waiting for the next call.
        self._mic_rest = np.zeros(self._frame, dtype=np.int16)
        self._ref_rest = np.zeros(self._frame, dtype=np.int16)
        self._rest = 0
        self._out = _EMPTY  # processed samples not yet returned
        self._lag = 0
        self._hold = np.zeros(0, dtype=np.int16)  # the reference held back (delay line)
        self._hint_ms = -1
        self._delay_ms = 0
        self.set_delay_ms(delay_ms)

    @property
    def lag_samples(self) -> int:
        """How far this adapter's output lags its input (excludes the library's own ~8–10 ms)."""
        return self._lag

    @property
    def delay_ms(self) -> int:
        """The last delay hint given."""
        return self._delay_ms

    def set_delay_ms(self, ms: int) -> None:
        """Hint the speaker-to-mic delay: output latency plus input latency, in ms.

        Hints up to `SEARCH_MS` - `MARGIN_MS` change nothing: the library finds any delay up to
        `SEARCH_MS` itself. Beyond that the reference is held back by ``ms - MARGIN_MS`` (whole
        10 ms frames), which works while the real delay lies between ``ms - MARGIN_MS`` and
        ``ms - MARGIN_MS + SEARCH_MS``.

        Raises:
            ValueError: ``ms`` is negative.
        """
        if ms < 0:
            raise ValueError(f"delay must not be negative, got {ms} ms")
        ms = self._delay_ms = int(ms)
        hold_ms = 0 if ms <= SEARCH_MS - MARGIN_MS else (ms - MARGIN_MS) // 10 * 10
        held_ms = self._hold.size * 1000 // self.rate
        if hold_ms != held_ms and (hold_ms == 0 or abs(hold_ms - held_ms) >= HYSTERESIS_MS):
            want = hold_ms * self.rate // 1000
            if want > self._hold.size:  # hold back further: the reference jumps back (silence)
                pad = np.zeros(want - self._hold.size, dtype=np.int16)
                self._hold = np.concatenate([pad, self._hold])
            else:  # hold back less: skip the oldest held samples
                self._hold = self._hold[self._hold.size - want :].copy()
            held_ms = hold_ms
        hint = min(max(self._delay_ms - held_ms, 0), SEARCH_MS)
        if hint != self._hint_ms:
            self._apm.set_stream_delay_ms(hint)
            self._hint_ms = hint

    def process(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Cancel the echo of ``ref`` from ``mic``; returns the cleaned mic, ``len(mic)`` samples.

        ``mic`` is a captured block and ``ref`` what the speaker was handed over the same stretch
        of time (zeros when nothing played), of equal length. See the module docstring for the
        lag when blocks are not whole 10 ms frames.

        Raises:
            ValueError: the blocks are not 1-D int16 or differ in length.
            AudioError: the library reported an error.
        """
        mic = _as_block(mic, "mic")
        ref = _as_block(ref, "ref")
        n = mic.shape[0]
        if ref.shape[0] != n:
            raise ValueError(f"mic and ref differ in length: {n} != {ref.shape[0]}")
        if n == 0:
            return _EMPTY.copy()
        if self._hold.size:
            joined = np.concatenate([self._hold, ref])
            ref, self._hold = joined[:n], joined[n:]
        if self._rest:
            mic = np.concatenate([self._mic_rest[: self._rest], mic])
            ref = np.concatenate([self._ref_rest[: self._rest], ref])
        f = self._frame
        whole = mic.shape[0] // f * f
        rest = mic.shape[0] - whole
        self._mic_rest[:rest] = mic[whole:]
        self._ref_rest[:rest] = ref[whole:]
        self._rest = rest
        done = self._run(mic[:whole], ref[:whole]) if whole else _EMPTY
        if rest and not self._lag:
            # The first part frame: from here on the output runs a frame less a sample late,
            # which covers any part frame later blocks leave (silence fills the gap, once).
            self._lag = f - 1
            self._out = np.concatenate([self._out, np.zeros(self._lag, dtype=np.int16)])
        if self._out.size:
            done = np.concatenate([self._out, done])
        self._out = done[n:]
        return done[:n]

    def _run(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        f = self._frame
        out = np.empty(mic.shape[0], dtype=np.int16)
        mic_frame, ref_frame = self._mic_frame, self._ref_frame
        try:
            for i in range(0, mic.shape[0], f):
                np.frombuffer(ref_frame.data, dtype=np.int16)[:] = ref[i : i + f]
                self._apm.process_reverse_stream(ref_frame)
                np.frombuffer(mic_frame.data, dtype=np.int16)[:] = mic[i : i + f]
                self._apm.process_stream(mic_frame)
                out[i : i + f] = np.frombuffer(mic_frame.data, dtype=np.int16)
        except RuntimeError as e:
            raise AudioError(f"echo cancellation failed: {e}") from e
        return out
