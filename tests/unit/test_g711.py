"""--audio-format pcmu|pcma: G.711 at the session's edge, exact sample counts, truncation in the
8 kHz clock, and session.update with the format validated by the SDK's client-event model."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pydantic import TypeAdapter

from voicechat import effects as fx
from voicechat.audio.g711 import WireAudio, compress, expand
from voicechat.config import resolve
from voicechat.errors import UsageError
from voicechat.protocol import SessionConfig
from voicechat.protocol import events as ev
from voicechat.session import Session
from voicechat.ui.view import View

openai_rt = pytest.importorskip("openai.types.realtime")
CLIENT_EVENT = TypeAdapter(openai_rt.RealtimeClientEvent)


def tone(hz: float, seconds: float, rate: int = 24_000, level: float = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


# ---- companding ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, code, value", [
    ("pcmu", 0xFF, 0), ("pcmu", 0x7F, 0), ("pcmu", 0x80, 32124), ("pcmu", 0x00, -32124),
    ("pcma", 0xD5, 8), ("pcma", 0x55, -8), ("pcma", 0xAA, 32256), ("pcma", 0x2A, -32256),
])
def test_known_code_points_expand_as_the_standard_says(fmt: str, code: int, value: int) -> None:
    assert int(expand(fmt, bytes([code]))[0]) == value


@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
def test_every_code_survives_a_round_trip(fmt: str) -> None:
    codes = bytes(range(256))
    again = compress(fmt, expand(fmt, codes))
    assert expand(fmt, again).tolist() == expand(fmt, codes).tolist()


@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
def test_quantisation_error_is_within_the_segment_step(fmt: str) -> None:
    x = np.arange(-32768, 32768, 7, dtype=np.int16)
    back = expand(fmt, compress(fmt, x)).astype(np.int32)
    # G.711 keeps about 12 bits of the magnitude: the error is under 1/16 of it, plus the smallest step.
    assert np.all(np.abs(back - x) <= np.abs(x.astype(np.int32)) // 16 + 16)


# ---- the converter ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
def test_three_samples_per_byte_in_and_a_third_out_across_any_cut(fmt: str) -> None:
    speech = tone(440, 1.0)
    whole = WireAudio(fmt).outgoing(speech.tobytes())
    assert len(whole) == speech.size // 3
    cut = WireAudio(fmt)
    pieces = b"".join(cut.outgoing(speech[i:i + n].tobytes())
                      for i, n in zip(range(0, speech.size, 961), [961] * 100, strict=False))
    assert pieces == whole  # appends of any length: one signal
    player = WireAudio(fmt)
    played = b"".join(player.incoming(whole[i:i + 37]) for i in range(0, len(whole), 37))
    assert len(played) == 2 * 3 * len(whole) == WireAudio(fmt).incoming(whole).__len__()


@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
def test_speech_band_audio_comes_back_like_itself(fmt: str) -> None:
    sent = tone(700, 0.5)
    back = np.frombuffer(WireAudio(fmt).incoming(WireAudio(fmt).outgoing(sent.tobytes())), dtype="<i2")
    lag = max(range(40), key=lambda d: float(np.dot(back[d:10_000 + d], sent[:10_000].astype(float))))
    assert np.corrcoef(back[lag:10_000 + lag], sent[:10_000])[0, 1] > 0.98
    assert lag < 40  # under 2 ms of filter delay both ways


def test_pcm_is_passed_through_untouched() -> None:
    raw = tone(300, 0.1).tobytes()
    assert WireAudio("pcm").outgoing(raw) == raw and WireAudio("pcm").incoming(raw) == raw


# ---- the session --------------------------------------------------------------------------

def ready(fmt: str) -> tuple[Session, dict]:
    s = Session(SessionConfig(transcribe_model=None, audio_format=fmt))
    update = next(e.event for e in s.handle(ev.SessionCreated("e", {"id": "s"}), 0.0) if isinstance(e, fx.Send))
    s.handle(ev.SessionUpdated("e", {"id": "s"}), 0.1)
    return s, update


@pytest.mark.parametrize("fmt, wire", [("pcmu", "audio/pcmu"), ("pcma", "audio/pcma")])
def test_session_update_names_the_format_both_ways_and_validates(fmt: str, wire: str) -> None:
    _, update = ready(fmt)
    audio = update["session"]["audio"]
    assert audio["input"]["format"] == audio["output"]["format"] == {"type": wire}
    parsed = CLIENT_EVENT.validate_python(update)
    assert parsed.session.audio.input.format.type == wire


@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
def test_microphone_appends_go_out_as_g711(fmt: str) -> None:
    s, _ = ready(fmt)
    out = s.mic_audio(tone(500, 0.2).tobytes(), 1.0)
    appends = [e.event for e in out if isinstance(e, fx.SendAudio)]
    assert appends
    for append in appends:
        CLIENT_EVENT.validate_python(append)
    sent = sum(len(base64.b64decode(a["audio"])) for a in appends)
    assert sent == sum(e.pcm_bytes for e in out if isinstance(e, fx.SendAudio)) // 6  # 8 bytes a ms


@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
def test_truncation_is_exact_in_the_8_khz_clock(fmt: str) -> None:
    s, _ = ready(fmt)
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1)
    item = ev.Item("a1", "message", "assistant", "in_progress")
    s.handle(ev.OutputItemAdded("e", "r1", 0, item), 1)
    played_bytes = 0
    for _ in range(10):  # 10 deltas of 100 ms: 800 G.711 bytes each
        out = s.handle(ev.AudioDelta("e", "r1", "a1", 0, 0, compress(fmt, tone(300, 0.1, 8000))), 1)
        played_bytes += sum(len(p.pcm) for p in out if isinstance(p, fx.Play))
    assert played_bytes == 2 * 3 * 8000  # one second of 24 kHz PCM16
    s.handle(ev.SpeechStarted("e", "u2", 0), 2)
    # The player heard 437 ms (three 24 kHz samples for each of 8 × 437 bytes the server sent).
    sends = [e.event for e in s.playback_flushed({"a1": 3 * 8 * 437}, 2) if isinstance(e, fx.Send)]
    assert sends[0]["type"] == "conversation.item.truncate" and sends[0]["audio_end_ms"] == 437
    CLIENT_EVENT.validate_python(sends[0])


# ---- settings and the panel ---------------------------------------------------------------

def test_flag_environment_and_bad_value() -> None:
    assert resolve(flags={"audio_format": "pcma"}, environ={}).session_config().audio_format == "pcma"
    assert resolve(flags={}, environ={"VOICECHAT_AUDIO_FORMAT": "pcmu"}).audio_format == "pcmu"
    with pytest.raises(UsageError, match="--audio-format must be one of pcm, pcmu, pcma, not 'g729'"):
        resolve(flags={"audio_format": "g729"}, environ={})


def test_the_panel_header_names_a_g711_format() -> None:
    assert View(resolve(flags={"audio_format": "pcmu"}, environ={}), "off").header.audio_format == "G.711 μ-law 8 kHz"
    assert View(resolve(flags={}, environ={}), "off").header.audio_format == ""
