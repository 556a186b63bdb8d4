"""Which echo handling a conversation gets, made concrete from ``--echo`` and the device.

``auto`` means: nothing to handle when the microphone is a file; echo cancellation where the
optional canceller loads; the playback-relative gate only where it cannot (or, decided later by
the conversation, where the canceller does not run at the device's rate). `make_echo_path`
builds the conversation's ``EchoPath`` for the concrete mode; the echo handling itself lives in
``voicechat.audio.echo`` and ``voicechat.audio.aec``.
"""

from __future__ import annotations

from collections.abc import Callable

from voicechat.audio.echo import EchoPath, threshold_db
from voicechat.config import Settings


def echo_mode(settings: Settings) -> str:
    """``auto`` made concrete: no echo to handle from a file; else echo cancellation, with the
    playback-relative gate only where the canceller cannot load.

    With the reply leaking into the microphone at full level, aec lets a barge-in at the echo's
    own level through and the reply's echo never (tests/test_device_echo.py, on real devices);
    the gate needs the user 6-10 dB louder than the echo, so it is the fallback, not the choice.
    """
    if settings.echo != "auto":
        return settings.echo
    if settings.input_file is not None:
        return "off"
    from voicechat.audio.aec import aec_available

    return "aec" if aec_available() else "gate"


def aec_runs_at(rate: int) -> bool:
    from voicechat.audio.aec import SUPPORTED_RATES

    return rate in SUPPORTED_RATES


def make_echo_path(settings: Settings, mode: str, rate: int, on_onset: Callable[[], None]) -> EchoPath:
    """The microphone's processing for a concrete mode (see `echo_mode`)."""
    canceller = None
    if mode == "aec":
        from voicechat.audio.aec import EchoCanceller

        canceller = EchoCanceller(rate)
    threshold = settings.vad_threshold if settings.vad_threshold is not None else 0.5
    return EchoPath(mode, rate, onset_db=threshold_db(threshold), canceller=canceller, on_onset=on_onset)
