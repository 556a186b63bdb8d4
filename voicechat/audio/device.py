"""Real audio devices through sounddevice/PortAudio: the only module that imports sounddevice.

Devices open at their own default rate (forcing 24 kHz fails on many devices); conversion to
and from the 24 kHz wire rate happens on the event loop with streaming resamplers. Capture and
playback are a pair of streams started together (a single duplex stream ran at wrong rates on
PulseAudio here). The callbacks only copy: capture puts a copy of the block in the bounded queue
of the microphone pipeline (``capture.py``, which also does the echo handling, resampling and
chunking on the loop); playback reads already-resampled samples from the ring and copies what
it played into the echo reference tap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicechat.audio.capture import QUIET_CHUNK_MS, Capture
from voicechat.audio.echo import EchoPath
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.reftap import RefTap
from voicechat.errors import AudioError, PortAudioMissing

log = logging.getLogger(__name__)

IDLE_TICK_S = 0.1  # the conversation's housekeeping while nothing plays
PLAYING_TICK_BLOCKS = 2  # ... and while the speaker plays: every this many blocks
LOST_LIMIT_S = 60.0  # how long a lost device may stay away before talk ends (exit 4)
RETRY_S = 0.5  # how often PortAudio's device list is read again while one is away

INSTALL_HINT = (
    "install PortAudio: Debian/Ubuntu `sudo apt-get install libportaudio2`, "
    "Fedora `sudo dnf install portaudio`, macOS `brew install portaudio`"
)


def load_sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio library into an actionable error."""
    try:
        import sounddevice
    except OSError as exc:  # raised by sounddevice when libportaudio cannot be loaded
        raise PortAudioMissing(
            f"the PortAudio library is not installed ({exc})", hint=INSTALL_HINT
        ) from None
    return sounddevice


def portaudio_version() -> str:
    """The PortAudio library's version text (loading it first: `PortAudioMissing` if absent)."""
    sd = load_sounddevice()
    return str(sd.get_portaudio_version()[1])


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_rate: int
    default_input: bool
    default_output: bool


def list_devices() -> list[DeviceInfo]:
    sd = load_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise AudioError(f"cannot list audio devices: {exc}", hint=NO_DEVICE_HINT) from None
    return [
        DeviceInfo(
            index=i,
            name=d["name"],
            hostapi=hostapis[d["hostapi"]]["name"],
            inputs=d["max_input_channels"],
            outputs=d["max_output_channels"],
            default_rate=int(d["default_samplerate"]),
            default_input=i == default_in,
            default_output=i == default_out,
        )
        for i, d in enumerate(devices)
    ]


def find_device(spec: str | int | None, kind: str) -> int | None:
    """A device index from an index, a name, or a case-insensitive name substring (None = default).

    A name may carry the host API as ``voicechat devices`` shows it (``USB Mic (ALSA)``). A
    substring that several devices share is refused, naming them, unless it is one device's
    whole name: picking one of them silently could open the wrong microphone.
    """
    if spec is None or spec == "":
        return None
    devices = list_devices()
    usable = [d for d in devices if (d.inputs if kind == "input" else d.outputs) > 0]
    if isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        if any(d.index == index for d in usable):
            return index
        raise AudioError(
            f"no {kind} device with index {index}", hint="list them with: voicechat devices"
        )
    wanted = str(spec).strip().casefold()
    matches = [d for d in usable if wanted in d.name.casefold() or wanted in shown_name(d).casefold()]
    exact = [d for d in matches if wanted in (d.name.casefold(), shown_name(d).casefold())]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0].index
    if not matches:
        raise AudioError(
            f"no {kind} device matches {spec!r}", hint="list them with: voicechat devices"
        )
    named = "; ".join(f"{d.index}: {shown_name(d)}" for d in matches[:8]) + ("; …" if len(matches) > 8 else "")
    raise AudioError(f"{len(matches)} {kind} devices match {spec!r} ({named})",
                     hint="give the index, or more of the name")


def shown_name(d: DeviceInfo) -> str:
    """A device as ``voicechat devices`` names it: its name and host API (``USB Mic (ALSA)``)."""
    return f"{d.name} ({d.hostapi})"


def describe_device(index: int | None, kind: str) -> str:
    """The device ``index`` (None: the default of ``kind``) as ``shown_name`` says it, for the
    status line saying what was opened; ``(default)`` when PortAudio cannot say."""
    try:
        for d in list_devices():
            if d.index == index or (index is None and (d.default_input if kind == "input" else d.default_output)):
                return shown_name(d)
    except AudioError:
        pass
    return "(default)"


NO_DEVICE_HINT = ("connect one, or check that the sound server runs (`pactl info` for PulseAudio/PipeWire); "
                  "without audio devices, talk through files: --input-file question.wav")


def _stream_error(exc: Exception, kind: str, device: int | None, rate: int) -> AudioError:
    text = str(exc)
    where = f"{kind} device {device if device is not None else '(default)'}"
    if device is None and ("querying device -1" in text or "No Default" in text or "-9996" in text):
        # PortAudio's "no device" index: the machine has no (default) device of this kind.
        return AudioError(f"no {kind} audio device found", hint=NO_DEVICE_HINT)
    if "Invalid sample rate" in text:
        return AudioError(
            f"{where} does not support {rate} Hz", hint="try --sample-rate 48000 or 44100"
        )
    if "Device unavailable" in text or "busy" in text.lower():
        return AudioError(f"{where} is busy or unavailable", hint="close other programs using it")
    if "Invalid number of channels" in text:
        return AudioError(
            f"{where} has no {kind} channels",
            hint="pick another with --input-device/--output-device",
        )
    return AudioError(f"cannot open {where}: {text}")


class DeviceAudio:
    """Microphone and speaker as a pair of PortAudio streams at the device's own rate."""

    def __init__(
        self,
        *,
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        sample_rate: int | None = None,
        block_ms: int = 20,
    ) -> None:
        self.sd = load_sounddevice()
        self.input_device = find_device(input_device, "input")
        self.output_device = find_device(output_device, "output")
        if sample_rate is None:
            try:
                info = self.sd.query_devices(self.output_device, "output")
            except self.sd.PortAudioError as exc:
                raise _stream_error(exc, "output", self.output_device, 0) from None
            sample_rate = int(info["default_samplerate"])
        self.rate = sample_rate
        self.block = max(1, self.rate * block_ms // 1000)
        self.overflows = 0
        self.underflows = 0
        self.input_done = False  # a microphone never runs out
        self.tail_ms = 0
        self._lost: str | None = None  # which stream stopped by itself (set from PortAudio's thread)
        self._closing = False  # the streams' finished callbacks also run when we close them
        self._generation = 0  # a late callback of closed streams says nothing about the new ones
        self.lost: str | None = None  # while paused: the kind of device that went away
        self.report: Callable[[str, str], None] | None = None  # (level, text) for the panel's notices
        # a device the user named is looked for again by name (indices change); else the default
        self._names = {"input": self._name_of(self.input_device), "output": self._name_of(self.output_device)}
        self.echo: EchoPath | None = None  # set by the conversation before run()
        self.tap = RefTap(self.rate * 2, rate=self.rate)  # what the speaker was handed, for the echo path
        self.capture: Capture | None = None  # the microphone pipeline of the current run()

    async def run(
        self, buffer: PlaybackBuffer, on_mic: Callable[[bytes], None], on_block: Callable[[], bool]
    ) -> None:
        """Play and capture until ``on_block`` says stop. A device that goes away pauses both
        streams (nothing is sent, the ring is held: what was played is what was heard) and is
        reopened when it, or the system default, is back; `AudioError` after `LOST_LIMIT_S`."""
        capture = self.capture = Capture(self.rate, on_mic, echo=self.echo, active=lambda: buffer.active,
                                         quiet_chunk_ms=QUIET_CHUNK_MS,
                                         reference=lambda n, mark: self.tap.take(n, mark),
                                         mark=lambda: self.tap.written)
        capture.bind(asyncio.get_running_loop())

        def capture_callback(indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            capture.put_threadsafe(indata[:, 0].copy())

        def playback_callback(outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
            if status.output_underflow:
                self.underflows += 1
            buffer.read_into(outdata[:, 0])
            self.tap.write(outdata[:, 0], time.outputBufferDacTime, status.output_underflow)

        callbacks = {"input": capture_callback, "output": playback_callback}
        streams = self._start(callbacks)
        while True:
            try:
                going = await self._converse(buffer, on_block)
            finally:
                self._close(streams)
            if not going:
                return
            capture.drop()  # half a block from before the loss is not the start of a turn
            reopened = await self._wait_for_devices(callbacks, on_block)
            if reopened is None:
                return
            streams = reopened

    async def _converse(self, buffer: PlaybackBuffer, on_block: Callable[[], bool]) -> bool:
        """Tick the conversation while the streams run: False when it ends, True on a lost device.

        While the speaker has something the loop ticks every `PLAYING_TICK_BLOCKS` blocks and
        drains the microphone on that tick (the capture callback wakes nobody then); when idle it
        ticks a tenth of a second and the capture callback wakes it for the microphone's blocks.
        """
        xruns = self._xruns()
        capture = self.capture
        assert capture is not None  # run() made it
        loop = asyncio.get_running_loop()
        period = PLAYING_TICK_BLOCKS * self.block / self.rate
        due = loop.time()
        while True:
            capture.polled = buffer.active
            if capture.polled:  # ticks on a fixed grid: a late tick does not push the later ones back
                due = max(due + period, loop.time() - period)
                await asyncio.sleep(due - loop.time())
            else:
                await asyncio.sleep(IDLE_TICK_S)
                due = loop.time()
            capture.drain()  # what waits (while polled, all of it; else what came since the last wake)
            if self._lost is not None:
                return True
            if not on_block():
                return False
            if self._xruns() != xruns:
                xruns = self._xruns()
                log.debug("device: %d speaker underruns, %d microphone overruns, %d blocks dropped by a late loop",
                          *xruns)

    def _xruns(self) -> tuple[int, int, int]:
        return self.underflows, self.overflows, self.capture.overflows if self.capture is not None else 0

    def _start(self, callbacks: dict[str, Callable[..., None]]) -> list[Any]:
        """Open and start both streams of a new generation (a fresh echo reference tap)."""
        self._generation += 1
        self._lost = None
        self.tap = RefTap(self.rate * 2, rate=self.rate)  # an earlier run's or device's speaker is not this one's
        generation = self._generation

        def lost(kind: str) -> Callable[[], None]:
            def finished_callback() -> None:  # also runs when _close closes the stream
                if self._lost is None and generation == self._generation and not self._closing:
                    self._lost = kind

            return finished_callback

        streams: list[Any] = []
        try:
            for kind in ("input", "output"):
                streams.append(self._open(kind, callbacks[kind], lost(kind)))
            canceller = getattr(self.echo, "canceller", None)
            if canceller is not None:  # speaker-to-mic delay hint: both streams' latencies
                canceller.set_delay_ms(min(500, int((streams[0].latency + streams[1].latency) * 1000)))
            for stream in streams:
                stream.start()
        except BaseException:
            self._close(streams)
            raise
        return streams

    def _close(self, streams: list[Any]) -> None:
        self._closing = True
        try:
            for stream in streams:
                stream.close(ignore_errors=True)
        finally:
            self._closing = False

    async def _wait_for_devices(
        self, callbacks: dict[str, Callable[..., None]], on_block: Callable[[], bool]
    ) -> list[Any] | None:
        """Keep the conversation ticking while no device plays; the reopened streams, or None
        when the conversation ended meanwhile. `AudioError` once `LOST_LIMIT_S` have passed."""
        kind = self._lost or "output"
        self._say("warning", f"device lost: the {kind} audio device stopped; paused, waiting up to "
                             f"{LOST_LIMIT_S:g} s for it or the default device")
        self.lost = kind
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOST_LIMIT_S
        next_try = loop.time() + RETRY_S
        try:
            while True:
                await asyncio.sleep(IDLE_TICK_S)
                if not on_block():
                    return None
                if loop.time() >= next_try:
                    streams = await self._reopen(callbacks)
                    if streams is not None:
                        self._say("info", f"device back: microphone {describe_device(self.input_device, 'input')}, "
                                          f"speaker {describe_device(self.output_device, 'output')}")
                        return streams
                    next_try = loop.time() + RETRY_S
                if loop.time() >= deadline:
                    raise AudioError(f"the {kind} audio device stopped (unplugged?)",
                                     hint=f"none came back within {LOST_LIMIT_S:g} s; the transcript so far is kept")
        finally:
            self.lost = None

    async def _reopen(self, callbacks: dict[str, Callable[..., None]]) -> list[Any] | None:
        """Re-read PortAudio's device list (it is cached at initialisation; no stream is open
        now) and open the devices by name, or the defaults; None while that fails."""
        await asyncio.to_thread(self._reenumerate)
        try:
            return self._start(callbacks)
        except AudioError as exc:
            log.debug("devices not back yet: %s", exc)
            return None

    def _reenumerate(self) -> None:
        self.sd._terminate()
        self.sd._initialize()
        self.input_device = self._by_name(self._names["input"], "input")
        self.output_device = self._by_name(self._names["output"], "output")

    def _by_name(self, name: str | None, kind: str) -> int | None:
        """The index of the named device now, else None (the system default, which follows a change)."""
        if name is None:
            return None
        try:
            return next((d.index for d in list_devices()
                         if d.name == name and (d.inputs if kind == "input" else d.outputs) > 0), None)
        except AudioError:
            return None

    def _say(self, level: str, text: str) -> None:
        log.info("%s", text)
        if self.report is not None:
            self.report(level, text)

    def _open(self, kind: str, callback: Callable[..., None], finished: Callable[[], None]) -> Any:
        device = self.input_device if kind == "input" else self.output_device
        cls = self.sd.InputStream if kind == "input" else self.sd.OutputStream
        try:
            return cls(
                samplerate=self.rate, blocksize=self.block, device=device, channels=1, dtype="int16",
                callback=callback, finished_callback=finished,
            )
        except self.sd.PortAudioError as exc:
            raise _stream_error(exc, kind, device, self.rate) from None

    def _name_of(self, index: int | None) -> str | None:
        if index is None:
            return None
        return str(self.sd.query_devices(index)["name"])

    def check_open(self, kind: str) -> None:
        """Open the ``input`` or ``output`` stream as `run` would, then close it (`AudioError` if it fails)."""

        def idle(data: np.ndarray, frames: int, time: Any, status: Any) -> None:
            if kind == "output":
                data.fill(0)

        self._open(kind, idle, lambda: None).close(ignore_errors=True)

    def close(self) -> None:
        pass
