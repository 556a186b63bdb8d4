"""WAV file input and output for file-based talk, tests and recordings.

This module owns reading and writing RIFF/WAVE files. `read_wav` parses the RIFF chunks itself
(the stdlib `wave` module rejects IEEE float files), skips chunks it does not need (LIST, fact,
cue, ...), accepts PCM 8/16/24/32-bit integer and 32/64-bit IEEE float data, plain or
WAVE_FORMAT_EXTENSIBLE, with any channel count, and returns int16 mono (channels averaged).
`load_wav_at` also resamples. `WavWriter` appends int16 frames incrementally and keeps the
header's sizes true as it goes (every second, and on close); `write_wav` writes a whole signal.
Every problem a user can cause (missing file, not a WAV, unsupported encoding, no audio) raises
`AudioError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import WIRE_RATE, float_to_pcm16, to_mono
from voicechat.audio.resample import resample_all
from voicechat.audio.riff import FORMAT_PCM as _FORMAT_PCM
from voicechat.audio.riff import wav_header, write_sizes
from voicechat.errors import AudioError

_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE
_FMT_MIN_SIZE = 16
_SUPPORTED_HINT = "use PCM 8/16/24/32-bit or 32-bit float WAV, e.g. `sox in.wav -b 16 out.wav`"


@dataclass(frozen=True)
class _Format:
    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int


def _read_bytes(path: Path) -> bytes:
    """The whole file: a regular one of at most `MAX_WAV_BYTES` (a RIFF file cannot be larger),
    never a FIFO or a device put in its place after the settings were checked."""
    from voicechat.files import MAX_WAV_BYTES, read_limited

    try:
        return read_limited(path, MAX_WAV_BYTES)
    except FileNotFoundError:
        raise AudioError(f"audio file not found: {path}") from None
    except IsADirectoryError:
        raise AudioError(f"audio file is a directory: {path}") from None
    except OSError as exc:
        raise AudioError(f"cannot read audio file {path}: {exc.strerror or exc}") from None


def _chunks(path: Path, data: bytes) -> dict[bytes, bytes]:
    """The first chunk of each id in a RIFF/WAVE file; a truncated last chunk is kept as is."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"not a WAV file: {path}", hint="expected a RIFF/WAVE header")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + size]
        chunks.setdefault(chunk_id, body)
        pos += 8 + size + (size & 1)
    return chunks


def _parse_format(path: Path, body: bytes | None) -> _Format:
    if body is None or len(body) < _FMT_MIN_SIZE:
        raise AudioError(f"not a WAV file: {path}", hint="missing or short 'fmt ' chunk")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _FORMAT_EXTENSIBLE and len(body) >= 26:
        (tag,) = struct.unpack_from("<H", body, 24)  # first two bytes of the sub-format GUID
    if channels == 0 or rate == 0:
        raise AudioError(f"invalid WAV header in {path}: {channels} channels at {rate} Hz")
    return _Format(tag, channels, rate, block_align, bits)


def _check_encoding(path: Path, fmt: _Format) -> None:
    pcm_ok = fmt.tag == _FORMAT_PCM and fmt.bits in (8, 16, 24, 32)
    float_ok = fmt.tag == _FORMAT_FLOAT and fmt.bits in (32, 64)
    if not (pcm_ok or float_ok):
        kind = {_FORMAT_PCM: "PCM", _FORMAT_FLOAT: "float"}.get(fmt.tag, f"format 0x{fmt.tag:04x}")
        raise AudioError(
            f"unsupported WAV encoding in {path}: {kind} {fmt.bits}-bit", hint=_SUPPORTED_HINT
        )
    if fmt.block_align != fmt.channels * fmt.bits // 8:
        raise AudioError(
            f"unsupported WAV encoding in {path}: block align {fmt.block_align} "
            f"for {fmt.channels} x {fmt.bits}-bit",
            hint=_SUPPORTED_HINT,
        )


def _decode(raw: bytes, fmt: _Format) -> npt.NDArray[np.float32] | npt.NDArray[np.int16]:
    """Interleaved frames as int16 (16-bit PCM, exact) or float32 in [-1, 1) (everything else)."""
    if fmt.tag == _FORMAT_FLOAT:
        values = np.frombuffer(raw, dtype="<f4" if fmt.bits == 32 else "<f8")
        return values.astype(np.float32)
    if fmt.bits == 16:
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if fmt.bits == 8:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if fmt.bits == 24:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        return (ints.astype(np.float64) / float(1 << 23)).astype(np.float32)
    ints32 = np.frombuffer(raw, dtype="<i4")
    return (ints32.astype(np.float64) / float(1 << 31)).astype(np.float32)


def _to_int16_mono(samples: npt.NDArray[np.generic], channels: int) -> npt.NDArray[np.int16]:
    frames = samples.reshape(-1, channels)
    if samples.dtype == np.int16:
        return np.ascontiguousarray(to_mono(frames), dtype=np.int16)
    return float_to_pcm16(to_mono(frames))


def read_wav(path: str | Path) -> tuple[npt.NDArray[np.int16], int]:
    """Read a WAV file as int16 mono samples and their sample rate.

    Raises:
        AudioError: the file is missing or unreadable, is not a WAV, uses an unsupported
            encoding, or holds no audio frames.
    """
    wav_path = Path(path)
    data = _read_bytes(wav_path)
    chunks = _chunks(wav_path, data)
    fmt = _parse_format(wav_path, chunks.get(b"fmt "))
    _check_encoding(wav_path, fmt)
    raw = chunks.get(b"data")
    if raw is None:
        raise AudioError(f"not a WAV file: {wav_path}", hint="missing 'data' chunk")
    usable = len(raw) - len(raw) % fmt.block_align
    if usable == 0:
        raise AudioError(f"no audio in {wav_path}", hint="the data chunk is empty")
    samples = _decode(raw[:usable], fmt)
    return _to_int16_mono(samples, fmt.channels), fmt.rate


def load_wav_at(path: str | Path, rate: int = WIRE_RATE) -> npt.NDArray[np.int16]:
    """Read a WAV file as int16 mono at ``rate`` Hz (downmixed and resampled as needed).

    Raises:
        AudioError: as for `read_wav`.
    """
    samples, file_rate = read_wav(path)
    return resample_all(samples, file_rate, rate)


class WavWriter:
    """Incremental 16-bit PCM WAV writer whose header stays true as it goes.

    The sizes in the header are rewritten after every `HEADER_EVERY_S` of audio (the buffered
    frames flushed first) and on `close`, so a file left behind by ``kill -9``, a crash or a
    full disk says how long it is, give or take that second, instead of "no audio". The file is
    opened without waiting for a FIFO's reader and refused unless it is a regular file or
    /dev/null (what is opened is checked, not what was looked at before).

    Usable as a context manager. ``write`` takes int16 frames shaped ``(n,)`` for mono or
    ``(n, channels)``.
    """

    HEADER_EVERY_S = 1.0

    def __init__(self, path: str | Path, rate: int, channels: int = 1) -> None:
        if rate <= 0 or channels <= 0:
            raise ValueError(f"invalid WAV format: {channels} channels at {rate} Hz")
        from voicechat.files import open_output

        self.path = Path(path)
        self.rate = rate
        self.channels = channels
        self.frames_written = 0
        self._unpatched = 0  # frames written since the header was last made true
        try:
            fd = open_output(self.path, append=False)
        except OSError as exc:
            raise AudioError(f"cannot write audio file {self.path}: {exc.strerror or exc}") from None
        # Kept open across calls on purpose; `close` (or the context manager) closes it.
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._file.write(wav_header(rate, channels, 0))
        with contextlib.suppress(OSError):  # a full disk: the first write says so, to a caller that can cope
            self._file.flush()  # on disk at once, where it fits: a WAV from the start

    def write(self, frames: npt.NDArray[np.int16]) -> None:
        """Append int16 frames.

        Raises:
            ValueError: the writer is closed, or ``frames`` has the wrong dtype or shape.
            OSError: the file cannot take them (a full disk, an I/O error).
        """
        if self._file is None:
            raise ValueError(f"wav writer for {self.path} is closed")
        arr = np.asarray(frames)
        if arr.dtype != np.int16:
            raise ValueError(f"expected int16 frames, got {arr.dtype}")
        if not self._shape_ok(arr):
            raise ValueError(
                f"expected frames for {self.channels} channel(s), got shape {arr.shape}"
            )
        self._file.write(np.ascontiguousarray(arr, dtype="<i2").tobytes())
        self.frames_written += arr.shape[0]
        self._unpatched += arr.shape[0]
        if self._unpatched >= self.rate * self.HEADER_EVERY_S:
            self._make_header_true()

    def _make_header_true(self) -> None:
        """Flush, then write the sizes of what the file now holds into its header (in place)."""
        assert self._file is not None
        self._file.flush()
        self._unpatched = 0
        write_sizes(self._file.fileno(), self.frames_written * 2 * self.channels)

    def _shape_ok(self, arr: npt.NDArray[np.int16]) -> bool:
        if arr.ndim == 1:
            return self.channels == 1
        return arr.ndim == 2 and arr.shape[1] == self.channels

    def close(self) -> None:
        """Make the header true and close the file; closing twice is harmless.

        The file is closed even when the last flush fails (its ``OSError`` is raised then)."""
        if self._file is None:
            return
        try:
            self._make_header_true()
        finally:
            file, self._file = self._file, None
            file.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_wav(path: str | Path, samples: npt.NDArray[np.int16], rate: int) -> None:
    """Write int16 samples, shaped ``(n,)`` or ``(n, channels)``, as a 16-bit PCM WAV file."""
    arr = np.asarray(samples)
    channels = 1 if arr.ndim == 1 else arr.shape[1]
    with WavWriter(path, rate, channels) as writer:
        writer.write(arr)
