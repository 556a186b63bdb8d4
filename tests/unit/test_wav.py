"""WAV reading (every common encoding, extra chunks, clear errors) and writing."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from voicechat.audio.wav import WavWriter, load_wav_at, read_wav, write_wav
from voicechat.errors import AudioError, ExitStatus

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, sub_tag: int | None = None) -> bytes:
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if tag == EXTENSIBLE:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub_tag or PCM) + guid_tail
    return chunk(b"fmt ", body)


def chunk(chunk_id: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return chunk_id + struct.pack("<I", size) + body + (b"\x00" if len(body) % 2 else b"")


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def put(tmp_path: Path, data: bytes, name: str = "in.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_pcm16_mono(tmp_path: Path) -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 1234], np.int16)
    path = put(tmp_path, riff(fmt_chunk(PCM, 1, 24000, 16), chunk(b"data", samples.tobytes())))
    got, rate = read_wav(path)
    assert rate == 24000
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, samples)


def test_pcm8_is_unsigned(tmp_path: Path) -> None:
    data = bytes([128, 255, 0, 192])
    got, _ = read_wav(put(tmp_path, riff(fmt_chunk(PCM, 1, 8000, 8), chunk(b"data", data))))
    np.testing.assert_array_equal(got, [0, 32512, -32768, 16384])


def test_pcm24(tmp_path: Path) -> None:
    values = [0, 0x7FFFFF, -0x800000, 256, 0x400000, -256]
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    got, _ = read_wav(put(tmp_path, riff(fmt_chunk(PCM, 1, 48000, 24), chunk(b"data", data))))
    np.testing.assert_array_equal(got, [0, 32767, -32768, 1, 16384, -1])


def test_pcm32(tmp_path: Path) -> None:
    data = np.array([0, 2**30, -(2**31), 2**31 - 1, 65536], "<i4").tobytes()
    got, _ = read_wav(put(tmp_path, riff(fmt_chunk(PCM, 1, 16000, 32), chunk(b"data", data))))
    np.testing.assert_array_equal(got, [0, 16384, -32768, 32767, 1])


@pytest.mark.parametrize(("bits", "dtype"), [(32, "<f4"), (64, "<f8")])
def test_ieee_float(tmp_path: Path, bits: int, dtype: str) -> None:
    data = np.array([0.0, 0.5, -1.0, 1.5, -0.25], dtype).tobytes()
    path = put(tmp_path, riff(fmt_chunk(FLOAT, 1, 44100, bits), chunk(b"data", data)))
    got, rate = read_wav(path)
    assert rate == 44100
    np.testing.assert_array_equal(got, [0, 16384, -32768, 32767, -8192])


@pytest.mark.parametrize(
    ("sub_tag", "bits", "data", "expected"),
    [
        (PCM, 16, np.array([100, -200], "<i2").tobytes(), [100, -200]),
        (FLOAT, 32, np.array([0.5, -0.5], "<f4").tobytes(), [16384, -16384]),
    ],
)
def test_wave_format_extensible(
    tmp_path: Path, sub_tag: int, bits: int, data: bytes, expected: list[int]
) -> None:
    fmt = fmt_chunk(EXTENSIBLE, 1, 24000, bits, sub_tag=sub_tag)
    got, _ = read_wav(put(tmp_path, riff(fmt, chunk(b"data", data))))
    np.testing.assert_array_equal(got, expected)


def test_channels_are_averaged(tmp_path: Path) -> None:
    stereo = np.array([[1000, 3000], [-100, 100], [32767, 32767]], "<i2")
    path = put(tmp_path, riff(fmt_chunk(PCM, 2, 24000, 16), chunk(b"data", stereo.tobytes())))
    got, _ = read_wav(path)
    np.testing.assert_array_equal(got, [2000, 0, 32767])

    six = np.tile(np.array([0.6, 0.0, 0.0, 0.0, 0.0, 0.0], "<f4"), 4)
    path = put(tmp_path, riff(fmt_chunk(FLOAT, 6, 48000, 32), chunk(b"data", six.tobytes())))
    got, _ = read_wav(path)
    np.testing.assert_array_equal(got, np.full(4, round(0.1 * 32768)))


def test_extra_chunks_and_padding_are_skipped(tmp_path: Path) -> None:
    samples = np.array([5, -5, 7], np.int16)
    data = riff(
        chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00odd!\x00"),  # odd size: a pad byte follows
        fmt_chunk(PCM, 1, 22050, 16),
        chunk(b"fact", struct.pack("<I", 3)),
        chunk(b"junk", b"x"),
        chunk(b"data", samples.tobytes()),
        chunk(b"LIST", b"INFOtail"),
    )
    got, rate = read_wav(put(tmp_path, data))
    assert rate == 22050
    np.testing.assert_array_equal(got, samples)


def test_truncated_data_keeps_the_whole_frames_present(tmp_path: Path) -> None:
    stereo = np.array([[1, 3], [5, 7], [9, 11]], "<i2").tobytes()
    broken = chunk(b"data", stereo[:-2], declared=0xFFFFFFFF)  # streamed writer, cut short
    got, _ = read_wav(put(tmp_path, riff(fmt_chunk(PCM, 2, 24000, 16), broken)))
    np.testing.assert_array_equal(got, [2, 6])


def test_reads_a_file_written_by_the_stdlib(tmp_path: Path) -> None:
    path = tmp_path / "std.wav"
    samples = np.array([[10, 20], [30, 40]], "<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(32000)
        w.writeframes(samples.tobytes())
    got, rate = read_wav(path)
    assert rate == 32000
    np.testing.assert_array_equal(got, [15, 35])


def assert_audio_error(path: Path, *fragments: str) -> AudioError:
    with pytest.raises(AudioError) as info:
        read_wav(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert info.value.status == ExitStatus.AUDIO
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    assert_audio_error(tmp_path / "nope.wav", "not found")


def test_directory(tmp_path: Path) -> None:
    assert_audio_error(tmp_path, "directory")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is text and not audio",
        b"RIFF\x04\x00\x00\x00AVI ",
        riff(chunk(b"data", b"\x00\x00")),  # no fmt chunk
        riff(fmt_chunk(PCM, 1, 24000, 16)),  # no data chunk
    ],
)
def test_not_a_wav(tmp_path: Path, data: bytes) -> None:
    assert_audio_error(put(tmp_path, data), "not a WAV file")


@pytest.mark.parametrize(
    ("fmt", "fragment"),
    [
        (fmt_chunk(2, 1, 24000, 4), "format 0x0002"),  # MS ADPCM
        (fmt_chunk(PCM, 1, 24000, 12), "PCM 12-bit"),
        (fmt_chunk(FLOAT, 1, 24000, 16), "float 16-bit"),
        (fmt_chunk(EXTENSIBLE, 1, 24000, 16, sub_tag=0x11), "format 0x0011"),
    ],
)
def test_unsupported_encoding(tmp_path: Path, fmt: bytes, fragment: str) -> None:
    error = assert_audio_error(
        put(tmp_path, riff(fmt, chunk(b"data", b"\x00" * 16))), "unsupported", fragment
    )
    assert error.hint


def test_empty_audio(tmp_path: Path) -> None:
    assert_audio_error(
        put(tmp_path, riff(fmt_chunk(PCM, 1, 24000, 16), chunk(b"data", b""))), "no audio"
    )
    assert_audio_error(  # less than one whole frame
        put(tmp_path, riff(fmt_chunk(PCM, 2, 24000, 16), chunk(b"data", b"\x01\x00"))), "no audio"
    )


def test_load_wav_at_downmixes_and_resamples(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    tone = np.rint(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    path = tmp_path / "tone48k.wav"
    write_wav(path, np.stack([tone, tone], axis=1), 48000)

    got = load_wav_at(path)
    assert got.dtype == np.int16
    assert abs(len(got) - 24000) <= 1
    t24 = np.arange(len(got)) / 24000
    expected = 8000 * np.sin(2 * np.pi * 440 * t24)
    assert np.abs(got[100:-100] - expected[100:-100]).max() < 40

    same = load_wav_at(path, rate=48000)
    np.testing.assert_array_equal(same, tone)


def test_wav_writer_incremental(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with WavWriter(path, 24000) as writer:
        writer.write(np.array([1, 2, 3], np.int16))
        writer.write(np.zeros(0, np.int16))
        writer.write(np.array([-4, 5], np.int16))
        assert writer.frames_written == 5
    assert writer.closed
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            1,
            2,
            24000,
            5,
        )
        assert np.frombuffer(w.readframes(5), "<i2").tolist() == [1, 2, 3, -4, 5]
    writer.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        writer.write(np.array([1], np.int16))


def test_wav_writer_stereo_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    writer = WavWriter(path, 48000, channels=2)
    writer.write(np.array([[1, 3], [10, 20]], np.int16))
    with pytest.raises(ValueError, match="channel"):
        writer.write(np.array([1, 2], np.int16))
    with pytest.raises(ValueError, match="int16"):
        writer.write(np.zeros((2, 2), np.float32))
    writer.close()
    got, rate = read_wav(path)
    assert rate == 48000
    np.testing.assert_array_equal(got, [2, 15])


def test_write_wav_round_trip(tmp_path: Path) -> None:
    samples = np.random.default_rng(3).integers(-32768, 32768, 1000).astype(np.int16)
    path = tmp_path / "round.wav"
    write_wav(path, samples, 16000)
    got, rate = read_wav(path)
    assert rate == 16000
    np.testing.assert_array_equal(got, samples)


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot write"):
        WavWriter(tmp_path / "missing-dir" / "x.wav", 24000)
    with pytest.raises(ValueError):
        WavWriter(tmp_path / "x.wav", 0)
