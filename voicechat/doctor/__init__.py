"""``voicechat doctor``: is this machine ready to talk? One line per check, a fix for each problem.

The checks, in order: the PortAudio library loads; the input and output devices resolve and
open at the rate ``talk`` would use; the microphone's level over a couple of seconds (silent?
clipping?); a short tone on the speaker (does the stream play without underruns?); the echo
path (a chirp played on the speaker while the microphone records: how much of it comes back,
and how late); the API key (present, never printed); and a connect + ``session.update`` round
trip to the configured endpoint (for ``--backend local``, an in-process local server).

The rooms: :mod:`~voicechat.doctor.report` (a check, its line, the summary and exit status),
:mod:`~voicechat.doctor.measure` (the pure measurement maths and verdicts, tested on synthetic
signals), :mod:`~voicechat.doctor.devices` (PortAudio, the devices and one recording through
talk's own audio path) and :mod:`~voicechat.doctor.network` (the key and the connection). This
module runs them in order; every name they define is importable as ``voicechat.doctor.X``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from voicechat.doctor.devices import (
    NO_MIC,
    AudioRecording,
    _Script,
    check_devices,
    check_portaudio,
    judge_echo,
    judge_mic,
    judge_speaker,
    record,
    sweep_again,
)
from voicechat.doctor.measure import (
    ALIGNED_MAX_MS,
    ALIGNED_MIN_MS,
    CHIRP_F0,
    CHIRP_F1,
    CHIRP_LEVEL,
    CHIRP_S,
    CLIP_SAMPLES,
    DETECT_SNR_DB,
    FAINT_ECHO_DB,
    GOOD_ERLE_DB,
    LOUD_ECHO_DB,
    QUIET_RESIDUAL_DBFS,
    QUIET_RMS_DB,
    TAIL_MS,
    TONE_HZ,
    TONE_LEVEL,
    TONE_S,
    Cancellation,
    EchoMeasurement,
    Levels,
    chirp,
    echo_advice,
    isolate,
    judge_levels,
    levels,
    measure_cancellation,
    measure_echo,
    tone,
)
from voicechat.doctor.network import Connector, check_connect, check_key
from voicechat.doctor.report import (
    CONNECT,
    ECHO,
    FAIL,
    INPUT,
    KEY,
    MIC,
    OK,
    OUTPUT,
    PORTAUDIO,
    SKIP,
    SPEAKER,
    WARN,
    Check,
    exit_status,
    format_check,
    summary,
)
from voicechat.errors import AudioError

if TYPE_CHECKING:
    from voicechat.audio.device import DeviceAudio
    from voicechat.config import Settings

__all__ = [
    "ALIGNED_MAX_MS", "ALIGNED_MIN_MS", "CHIRP_F0", "CHIRP_F1", "CHIRP_LEVEL", "CHIRP_S", "CLIP_SAMPLES", "CONNECT",
    "DETECT_SNR_DB", "ECHO", "FAIL", "FAINT_ECHO_DB", "GOOD_ERLE_DB", "INPUT", "KEY", "LOUD_ECHO_DB", "MIC", "NO_MIC",
    "OK", "OUTPUT", "PORTAUDIO", "QUIET_RESIDUAL_DBFS", "QUIET_RMS_DB", "SKIP", "SPEAKER", "TAIL_MS", "TONE_HZ",
    "TONE_LEVEL", "TONE_S", "WARN", "AudioRecording", "Cancellation", "Check", "Connector", "EchoMeasurement",
    "Levels", "_Script", "check_connect", "check_devices", "check_key", "check_portaudio", "chirp", "echo_advice",
    "exit_status", "format_check", "isolate", "judge_echo", "judge_levels", "judge_mic", "judge_speaker", "levels",
    "measure_cancellation", "measure_echo", "record", "run", "run_checks", "summary", "sweep_again", "tone",
]  # fmt: skip


# ---- all of it ------------------------------------------------------------------------------------


async def run_checks(
    settings: Settings,
    *,
    audio: bool = True,
    seconds: float = 2.0,
    emit: Callable[[Check], None] = lambda c: None,
    note: Callable[[str], None] = lambda m: None,
    connector: Connector | None = None,
) -> list[Check]:
    """Every check in order, each handed to ``emit`` as soon as it is known."""
    checks: list[Check] = []

    def add(*found: Check) -> None:
        for check in found:
            checks.append(check)
            emit(check)

    def skipped(why: str) -> None:
        add(Check(MIC, SKIP, why), Check(SPEAKER, SKIP, why), Check(ECHO, SKIP, why))

    add(check_portaudio())
    if checks[-1].status == FAIL:
        add(Check(INPUT, SKIP, "no PortAudio"), Check(OUTPUT, SKIP, "no PortAudio"))
        skipped("no PortAudio")
    else:
        device_checks, device = check_devices(settings)
        add(*device_checks)
        if not audio:
            skipped("--no-audio")
        elif device is None:
            skipped("the devices did not open")
        else:
            add(*await _audible(device, settings, seconds, note))
    add(check_key(settings))
    add(await check_connect(settings, connector=connector))
    return checks


async def _audible(device: DeviceAudio, settings: Settings, seconds: float, note: Callable[[str], None]) -> list[Check]:
    from voicechat.audio.aec import aec_available

    aec = aec_available()
    try:
        rec = await record(device, seconds, note)
        rec = await sweep_again(device, rec, aec, note)
    except AudioError as e:
        return [Check(name, FAIL, e.message, fix=e.hint) for name in (MIC, SPEAKER, ECHO)]
    return [
        judge_mic(rec, seconds),
        judge_speaker(rec),
        judge_echo(rec, aec=aec, configured=settings.echo),
    ]


def run(
    settings: Settings,
    *,
    audio: bool = True,
    seconds: float = 2.0,
    write: Callable[[str], None],
    note: Callable[[str], None] = lambda m: None,
    connector: Connector | None = None,
) -> int:
    """Run the checks, writing each line as it is known and a summary; the exit status."""
    checks = asyncio.run(
        run_checks(
            settings, audio=audio, seconds=seconds, emit=lambda c: write(format_check(c)), note=note,
            connector=connector,
        )
    )
    write(summary(checks))
    return exit_status(checks)
