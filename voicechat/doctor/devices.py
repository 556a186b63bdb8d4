"""The doctor's device probes: PortAudio, the devices ``talk`` would open, and one recording.

These go through the app's own code paths, so what the doctor sees is what ``talk`` will see:
`DeviceAudio` resolves and opens the devices and runs the capture/playback pair, and its echo
path hands over each microphone block with the reference block of the same stretch of time
(the alignment the echo handling works with). :func:`record` drives one run through its phases
(warm-up, microphone level, tone, gap, chirp, tail) by the audio clock, with wall-clock limits
so a stalled device ends the run; the ``judge_*`` functions turn the recording into checks with
the pure measurements of :mod:`voicechat.doctor.measure`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from voicechat.doctor.measure import (
    CHIRP_S,
    FAINT_ECHO_DB,
    TAIL_MS,
    TONE_HZ,
    TONE_S,
    Cancellation,
    EchoMeasurement,
    chirp,
    echo_advice,
    isolate,
    judge_levels,
    levels,
    measure_cancellation,
    measure_echo,
    tone,
)
from voicechat.doctor.report import (
    ECHO,
    FAIL,
    INPUT,
    MIC,
    OK,
    OUTPUT,
    PORTAUDIO,
    SKIP,
    SPEAKER,
    WARN,
    Check,
)
from voicechat.errors import AudioError

if TYPE_CHECKING:
    from voicechat.audio.device import DeviceAudio
    from voicechat.config import Settings

# ---- PortAudio and devices ------------------------------------------------------------------------


def check_portaudio() -> Check:
    from voicechat.audio.device import portaudio_version
    from voicechat.errors import PortAudioMissing

    try:
        version = portaudio_version()
    except PortAudioMissing as e:
        return Check(PORTAUDIO, FAIL, e.message, fix=e.hint)
    return Check(PORTAUDIO, OK, f"loaded ({version})")


def check_devices(settings: Settings) -> tuple[list[Check], DeviceAudio | None]:
    """One line per direction: which device, its default rate, and whether it opens at ``talk``'s rate.

    Returns the `DeviceAudio` ``talk`` would build when both directions open, else None.
    """
    from voicechat.audio.device import DeviceAudio, list_devices

    try:
        found = list_devices()
    except AudioError as e:
        return [Check(INPUT, FAIL, e.message, fix=e.hint), Check(OUTPUT, FAIL, e.message, fix=e.hint)], None
    resolved = {kind: _resolve(kind, name, spec, found) for kind, name, spec in (
        ("input", INPUT, settings.input_device), ("output", OUTPUT, settings.output_device))}
    described = {kind: r for kind, r in resolved.items() if isinstance(r, str)}
    if len(described) < 2:  # a direction did not resolve: report the other one without opening anything
        return [r if isinstance(r, Check) else Check(name, OK, r)
                for r, name in ((resolved["input"], INPUT), (resolved["output"], OUTPUT))], None
    try:
        audio = DeviceAudio(
            input_device=settings.input_device, output_device=settings.output_device, sample_rate=settings.sample_rate
        )
    except AudioError as e:
        return [Check(INPUT, FAIL, e.message, fix=e.hint), Check(OUTPUT, FAIL, e.message, fix=e.hint)], None
    result = []
    opened = True
    for kind, name in (("input", INPUT), ("output", OUTPUT)):
        try:
            audio.check_open(kind)
        except AudioError as e:
            result.append(Check(name, FAIL, f"{described[kind]}; {e.message}", fix=e.hint))
            opened = False
        else:
            result.append(Check(name, OK, f"{described[kind]}; opens at {audio.rate} Hz"))
    return result, audio if opened else None


def _resolve(kind: str, name: str, spec: str | None, found: list[Any]) -> Check | str:
    """Which device ``spec`` (or the default) names, described; a failed check when none."""
    from voicechat.audio.device import find_device

    flag = f"--{kind}-device"
    try:
        index = find_device(spec, kind)
    except AudioError as e:
        return Check(name, FAIL, f"{flag} {spec!r}: {e.message}", fix=e.hint)
    if index is None:
        info = next((d for d in found if (d.default_input if kind == "input" else d.default_output)), None)
        if info is None or (info.inputs if kind == "input" else info.outputs) == 0:
            return Check(name, FAIL, f"no default {kind} device",
                         fix=f"connect one, or pick one with {flag} (voicechat devices lists them)")
        chosen = "default"
    else:
        info = next(d for d in found if d.index == index)
        chosen = f"{flag} {spec!r}"
    return f"{chosen}: #{info.index} {info.name} ({info.hostapi}), default rate {info.default_rate} Hz"


# ---- the audible checks ----------------------------------------------------------------------------


@dataclass
class AudioRecording:
    """What one run of the devices gave: the level phase, the tone, and the echo phase."""

    rate: int
    level_mic: npt.NDArray[np.int16]
    tone_played: bool
    tone_underflows: int
    startup_underflows: int  # output underruns before the first phase (as the streams started)
    echo_ref: npt.NDArray[np.int16]
    echo_mic: npt.NDArray[np.int16]
    chirp_played: bool
    stalled_in: str | None = None  # the phase in which the devices stopped delivering audio


class _Script:
    """Drives one `DeviceAudio.run`: warm-up, microphone level, tone, gap, chirp, tail.

    The phases advance by microphone frames delivered (the audio clock), with wall-clock limits
    so a stalled device ends the run instead of hanging it.
    """

    def __init__(
        self, audio: DeviceAudio, buffer: Any, seconds: float, note: Callable[[str], None], *, sweep_only: bool = False
    ) -> None:
        self.audio = audio
        self.sweep_only = sweep_only
        self.buffer = buffer
        self.rate = audio.rate
        self.seconds = seconds
        self.note = note
        self.phase = "warmup"
        self.frames = 0  # microphone frames delivered in this phase
        self.level: list[npt.NDArray[np.int16]] = []
        self.ref: list[npt.NDArray[np.int16]] = []
        self.mic: list[npt.NDArray[np.int16]] = []
        self.tone_played = False
        self.chirp_played = False
        self.underflows_before = 0
        self.tone_underflows = 0
        self.startup_underflows = 0
        self.loop = asyncio.get_running_loop()
        self.phase_started = self.loop.time()
        self.stalled_in: str | None = None

    def on_blocks(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> None:
        """The echo path's recorder hook: each microphone block with its reference (on the loop)."""
        self.frames += mic.shape[0]
        if self.phase == "level":
            self.level.append(mic.copy())
        elif self.phase in ("chirp", "tail"):
            self.mic.append(mic.copy())
            self.ref.append(ref.copy())

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self.frames = 0
        self.phase_started = self.loop.time()

    def _elapsed(self) -> float:
        return self.loop.time() - self.phase_started

    def on_block(self) -> bool:
        """Called every device block; False ends the run (done, or stalled past the phase's limit)."""
        done, limit_s, advance = self._phases()[self.phase]
        if done():
            return advance()
        if self._elapsed() > limit_s:
            return self._stall()
        return True

    def _phases(self) -> dict[str, tuple[Callable[[], bool], float, Callable[[], bool]]]:
        """Each phase: when it is done, its wall-clock limit (s), and what starts the next one."""
        rate = self.rate
        return {
            # 0.2 s: past start-up; before a sweep alone, 1 s for the streams' latency to settle
            "warmup": (lambda: self.frames >= (rate if self.sweep_only else rate // 5), 6.0,
                       self._start_gap if self.sweep_only else self._start_level),
            "level": (lambda: self.frames >= int(self.seconds * rate), self.seconds + 5.0, self._start_tone),
            "tone": (lambda: not self.buffer.active, TONE_S + 3.0, self._start_gap),
            "gap": (lambda: self.frames >= rate * 3 // 10, 3.0, self._start_chirp),
            "chirp": (lambda: not self.buffer.active, CHIRP_S + 3.0, self._start_tail),
            "tail": (lambda: self.frames >= int(rate * TAIL_MS / 1000), TAIL_MS / 1000 + 3.0, lambda: False),
        }

    def _start_level(self) -> bool:
        self.note(f"measuring the microphone for {self.seconds:g} s: say something")
        self.startup_underflows = self.audio.underflows
        self._enter("level")
        return True

    def _start_tone(self) -> bool:
        self.note("playing a tone, then a sweep (the echo check)")
        self.underflows_before = self.audio.underflows
        self.buffer.write(tone(self.rate))
        self.buffer.mark_end()
        self._enter("tone")
        return True

    def _start_gap(self) -> bool:
        if self.phase == "tone":
            self.tone_played = True
            self.tone_underflows = self.audio.underflows - self.underflows_before
        self._enter("gap")
        return True

    def _start_chirp(self) -> bool:
        self._enter("chirp")
        self.buffer.write(chirp(self.rate))
        self.buffer.mark_end()
        return True

    def _start_tail(self) -> bool:
        self.chirp_played = True
        self._enter("tail")
        return True

    def _stall(self) -> bool:
        self.stalled_in = self.phase
        return False


async def record(
    audio: DeviceAudio, seconds: float, note: Callable[[str], None], *, sweep_only: bool = False
) -> AudioRecording:
    """Run the devices through the level, tone and chirp phases (``talk``'s own capture/playback);
    ``sweep_only``: the chirp alone, after the warm-up."""
    from voicechat.audio.echo import EchoPath
    from voicechat.audio.playback import PlaybackBuffer

    rate = audio.rate
    buffer = PlaybackBuffer(capacity_frames=rate * 10, prebuffer_frames=rate // 20, fade_frames=rate // 200)
    script = _Script(audio, buffer, seconds, note, sweep_only=sweep_only)
    echo = EchoPath("off", rate)
    echo.recorder = script.on_blocks
    audio.echo = echo
    await audio.run(buffer, lambda pcm: None, script.on_block)

    def joined(parts: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    return AudioRecording(
        rate=rate,
        level_mic=joined(script.level),
        tone_played=script.tone_played,
        tone_underflows=script.tone_underflows,
        startup_underflows=script.startup_underflows,
        echo_ref=joined(script.ref),
        echo_mic=joined(script.mic),
        chirp_played=script.chirp_played,
        stalled_in=script.stalled_in,
    )


NO_MIC = "not run: the microphone delivered no audio"


def judge_mic(rec: AudioRecording, seconds: float) -> Check:
    if rec.stalled_in in ("warmup", "level"):
        got = rec.level_mic.size / rec.rate
        when = "no audio" if rec.stalled_in == "warmup" else f"{got:.1f} s of the {seconds:g} s asked for"
        return Check(
            MIC, FAIL, f"the input stream stalled: the microphone delivered {when}",
            fix="check the input device (voicechat devices; --input-device), or close other programs using it",
        )
    return judge_levels(levels(rec.level_mic, rec.rate))


def judge_speaker(rec: AudioRecording) -> Check:
    what = f"a {TONE_S:g} s {TONE_HZ:.0f} Hz tone at {rec.rate} Hz"
    if rec.stalled_in in ("warmup", "level"):
        return Check(SPEAKER, SKIP, NO_MIC)
    if not rec.tone_played:
        return Check(
            SPEAKER, FAIL, f"the output stream did not play {what}",
            fix="check the output device (voicechat devices; --output-device)",
        )
    if rec.tone_underflows:
        return Check(
            SPEAKER, WARN, f"played {what} with {rec.tone_underflows} underrun(s): gaps are audible",
            fix="close other programs using the device, or try --sample-rate 48000 or 44100",
        )
    start = f"; {rec.startup_underflows} as the stream started" if rec.startup_underflows else ""
    return Check(SPEAKER, OK, f"played {what}, no underruns while playing{start} (you should have heard a beep)")


def judge_echo(rec: AudioRecording, *, aec: bool, configured: str) -> Check:
    if rec.stalled_in in ("warmup", "level"):
        return Check(ECHO, SKIP, NO_MIC)
    if rec.stalled_in in ("gap", "tail"):
        return Check(ECHO, FAIL, "not measured: the microphone stopped delivering audio",
                     fix="check the input device (voicechat devices; --input-device)")
    if not rec.chirp_played or rec.echo_ref.size == 0 or not np.any(rec.echo_ref):
        return Check(ECHO, FAIL, "not measured: the speaker did not play the sweep")
    if not np.any(rec.echo_mic):
        return Check(
            ECHO, WARN, "not measured: the microphone is silent",
            fix="check the input device or its mute/volume, then run voicechat doctor again",
        )
    m = measure_echo(isolate(rec.echo_ref, chirp(rec.rate)), rec.echo_mic, rec.rate)
    return echo_advice(m, aec=aec, configured=configured, startup_underruns=rec.startup_underflows,
                       cancellation=_cancellation(rec, m, aec))


def _cancellation(rec: AudioRecording, m: EchoMeasurement, aec: bool) -> Cancellation | None:
    """What the canceller makes of the sweep's echo, when there is one and the canceller loads."""
    if not (aec and m.found and m.echo_db >= FAINT_ECHO_DB):
        return None
    from voicechat.audio.aec import SUPPORTED_RATES, EchoCanceller

    if rec.rate not in SUPPORTED_RATES:
        return None
    return measure_cancellation(rec.echo_ref, rec.echo_mic, rec.rate, EchoCanceller)


def _removed_db(rec: AudioRecording, aec: bool) -> float | None:
    """How much the canceller removed from a recording's sweep; None when it was not measured or
    removed enough."""
    if not rec.chirp_played or rec.stalled_in or not np.any(rec.echo_ref) or not np.any(rec.echo_mic):
        return None
    m = measure_echo(isolate(rec.echo_ref, chirp(rec.rate)), rec.echo_mic, rec.rate)
    c = _cancellation(rec, m, aec)
    return None if c is None or c.works else c.erle_db


async def sweep_again(
    audio: DeviceAudio, rec: AudioRecording, aec: bool, note: Callable[[str], None], tries: int = 2
) -> AudioRecording:
    """``rec``, or a later sweep's recording in its place when the canceller removed too little of
    the first and more of a later one: a glitch on a busy machine (an overrun, the sound server
    moving its latency mid-sweep) spoils a sweep, now and then two in a row; a room that defeats
    the canceller spoils them all. Up to ``tries`` more sweeps, stopping at the first good one."""
    best, best_db = rec, _removed_db(rec, aec)
    for _ in range(tries):
        if best_db is None:
            break
        note("the canceller removed too little of the sweep: playing it once more")
        again = await record(audio, 0.0, note, sweep_only=True)
        if again.stalled_in or not again.chirp_played:
            continue
        db = _removed_db(again, aec)
        if db is None or db > best_db:
            best, best_db = dataclasses.replace(rec, echo_ref=again.echo_ref, echo_mic=again.echo_mic), db
    return best

