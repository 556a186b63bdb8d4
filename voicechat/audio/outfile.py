"""Audio output files that outlive a full disk, an I/O error or a removed directory.

* `AudioOutput` (``--record``, ``--output-file``): a `voicechat.audio.wav.WavWriter` whose
  first failure moves the rest of the audio to a fallback WAV, named by ``report``. The file
  that failed keeps a header true to what it holds; a file removed while being written is read
  back into the fallback, so the fallback holds the whole recording.
* `Recorder` (``--record``): the microphone and the echo reference as a two-channel WAV.
* `TeeBuffer` (``--output-file``): what the speaker is handed, also written to a file.

The transcript's side, and the helpers shared with it, are `voicechat.outputs`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicechat.audio.riff import HEADER, block_align, wav_header, write_sizes
from voicechat.files import check_output, fallback_file, write_all
from voicechat.outputs import REMOVED, Report, ignore, read_back, regular_identity, removed

if TYPE_CHECKING:  # numpy and the WAV writer are imported where audio is written (the CLI stays light)
    import numpy as np
    import numpy.typing as npt

    from voicechat.audio.wav import WavWriter


# ---- WAV -----------------------------------------------------------------------------------


def repair_header(path: Path) -> None:
    """Make the sizes in a canonical WAV header true to the whole frames the file holds (a
    torn last frame is cut off). Writes a few bytes in place: it works on a full disk."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        align = block_align(os.pread(fd, HEADER.size, 0))
        if align is None:
            return
        size = os.fstat(fd).st_size
        data = (size - HEADER.size) // align * align
        os.ftruncate(fd, HEADER.size + data)
        write_sizes(fd, data)
    finally:
        os.close(fd)


class _RawWav:
    """A fallback WAV appended to with plain ``os.write`` calls, its header made true again
    after every second of audio and on `close`."""

    def __init__(self, fd: int, path: Path, rate: int, channels: int, data_bytes: int) -> None:
        self.fd, self.path, self.rate, self.channels = fd, path, rate, channels
        self.data_bytes = data_bytes
        self._since_header = 0

    def write(self, pcm: bytes) -> None:
        write_all(self.fd, pcm)
        self.data_bytes += len(pcm)
        self._since_header += len(pcm)
        if self._since_header >= self.rate * self.channels * 2:
            self._since_header = 0
            self._header()

    def _header(self) -> None:
        write_sizes(self.fd, self.data_bytes)

    def close(self) -> None:
        try:
            self._header()
        finally:
            os.close(self.fd)


def _open_fallback_wav(original: Path, rate: int, channels: int, first: bytes) -> _RawWav:
    """A new fallback WAV (see `fallback_file`) holding ``first``; the last ``OSError`` if none."""
    where = fallback_file(original, wav_header(rate, channels, len(first)) + first)
    fd = os.open(where, os.O_WRONLY | os.O_CLOEXEC)  # not O_APPEND: pwrite of the header would append
    os.lseek(fd, 0, os.SEEK_END)
    return _RawWav(fd, where, rate, channels, len(first))


def _close_until_closed(writer: WavWriter) -> None:
    """Close a writer whose file failed: a failed flush leaves it half closed, closing again
    finishes (the buffered writer closes its descriptor even when its last flush fails)."""
    for _ in range(3):
        try:
            writer.close()
            return
        except (OSError, ValueError):
            continue


class AudioOutput:
    """A WAV file of int16 frames being written (``--record``, ``--output-file``) that outlives
    write failures: the first one moves the rest of the audio to a fallback WAV (named by
    ``report``); if even that fails, the rest is dropped, said once.

    Nothing given to it is lost on the way: the writer buffers what it has not written yet, so
    the last `RECENT_BYTES` given are kept here too, and what the failed file does not hold of
    them starts the fallback.

    Raises ``OSError`` when ``path`` is not something to write (a FIFO, a device), and
    `voicechat.errors.AudioError` when it cannot be created.
    """

    CHECK_EVERY_S = 1.0  # how often to look whether the file is still at its path
    RECENT_BYTES = 256 * 1024  # more than the writer ever buffers

    def __init__(self, path: Path, rate: int, channels: int = 1, *, label: str, report: Report | None = None) -> None:
        from voicechat.audio.wav import WavWriter

        check_output(path)
        self.path, self.rate, self.channels, self.label = path, rate, channels, label
        self.report: Report = report or ignore
        self.frames = 0  # written or kept, in all
        self._writer: WavWriter | None = WavWriter(path, rate, channels)
        self._given = 0  # bytes of audio the writer took
        self._recent = bytearray()  # the last of them
        self._peek: int | None = None  # a second descriptor, to read the file back if it is removed
        self._identity: tuple[int, int] | None = None
        with contextlib.suppress(OSError):
            self._peek = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._identity = regular_identity(os.fstat(self._peek))
        self._fallback: _RawWav | None = None
        self._unchecked = 0
        self.failed = False

    @property
    def _frame_bytes(self) -> int:
        return 2 * self.channels

    def write(self, frames: npt.NDArray[np.int16]) -> None:
        pcm = _pcm(frames)
        if self._writer is not None:
            self._unchecked += len(frames)
            if self._unchecked >= self.rate * self.CHECK_EVERY_S:
                self._unchecked = 0
                if removed(self.path, self._identity):
                    self._move_on(REMOVED, pcm, removed=True)
                    return
            try:
                self._writer.write(frames)
            except OSError as exc:
                self._move_on(exc.strerror or str(exc), pcm, removed=False)
                return
            self.frames += len(frames)
            self._given += len(pcm)
            self._recent += pcm
            if len(self._recent) > 2 * self.RECENT_BYTES:
                del self._recent[: -self.RECENT_BYTES]
        elif self._fallback is not None:
            try:
                self._fallback.write(pcm)
                self.frames += len(frames)
            except OSError as exc:
                self._drop_fallback(exc.strerror or str(exc))

    def _move_on(self, why: str, pcm: bytes, *, removed: bool) -> None:
        """The file failed: close it (its header made true), keep the rest in a fallback WAV."""
        assert self._writer is not None
        self.failed = True
        _close_until_closed(self._writer)
        self._writer = None
        if removed:
            held = self._read_back()  # the file is gone: the fallback holds all of it
            kept, first = 0, held + self._unwritten(len(held)) + pcm
        else:
            with contextlib.suppress(OSError):
                repair_header(self.path)
            kept = self._on_disk()
            first = self._unwritten(kept) + pcm
        self._close_peek()
        at = kept / (self.rate * self._frame_bytes)
        try:
            self._fallback = _open_fallback_wav(self.path, self.rate, self.channels, first)
        except OSError as exc:
            self.report(f"{self.label} {self.path}: cannot write it ({why}); the audio after {at:.1f} s is not "
                        f"kept (no other place took it: {exc.strerror or exc})")
            return
        self.frames += len(pcm) // self._frame_bytes
        if removed:
            self.report(f"{self.label} {self.path}: {why}; all of its audio goes on in {self._fallback.path}")
        else:
            self.report(f"{self.label} {self.path}: cannot write it ({why}); it keeps the first {at:.1f} s, "
                        f"the rest goes to {self._fallback.path}")

    def _unwritten(self, on_disk: int) -> bytes:
        """What the writer took and the file does not hold (its buffer when it failed)."""
        missing = self._given - on_disk
        if missing <= 0:
            return b""
        return bytes(self._recent[-missing:]) if missing <= len(self._recent) else bytes(self._recent)

    def _on_disk(self) -> int:
        """Bytes of audio the failed file holds (whole frames after a true header)."""
        if self._peek is None:
            return 0
        try:
            header = os.pread(self._peek, HEADER.size, 0)
            size = os.fstat(self._peek).st_size
        except OSError:
            return 0
        align = block_align(header)
        return (size - HEADER.size) // align * align if align else 0

    def _read_back(self) -> bytes:
        """The frames the removed file held (via the second descriptor), after its header."""
        if self._peek is None:
            return b""
        held = read_back(self._peek)
        align = block_align(held)
        if align is None:
            return b""
        data = held[HEADER.size :]
        return data[: len(data) // align * align]

    def _drop_fallback(self, why: str) -> None:
        assert self._fallback is not None
        fallback, self._fallback = self._fallback, None
        with contextlib.suppress(OSError):
            fallback.close()
        self.report(f"{self.label}: cannot write {fallback.path} either ({why}); the rest of the audio is not kept")

    def _close_peek(self) -> None:
        if self._peek is not None:
            with contextlib.suppress(OSError):
                os.close(self._peek)
            self._peek = None

    def close(self) -> None:
        if self._writer is not None:
            if removed(self.path, self._identity):
                self._move_on(REMOVED, b"", removed=True)
            else:
                try:
                    self._writer.close()
                except OSError as exc:  # its last flush: the end of the audio is in a fallback
                    self._move_on(exc.strerror or str(exc), b"", removed=False)
                self._writer = None
        if self._fallback is not None:
            fallback, self._fallback = self._fallback, None
            try:
                fallback.close()
            except OSError as exc:
                self.report(f"{self.label}: could not finish {fallback.path} ({exc.strerror or exc})")
        self._close_peek()


def _pcm(frames: npt.NDArray[np.int16]) -> bytes:
    import numpy as np

    return np.ascontiguousarray(frames, dtype="<i2").tobytes()


class Recorder:
    """``--record``: the microphone (left) and what the speaker was handed (right), time-aligned,
    into an `AudioOutput`."""

    def __init__(self, path: Path, rate: int, *, report: Report | None = None) -> None:
        self.output = AudioOutput(path, rate, channels=2, label="--record", report=report)

    def __call__(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> None:
        import numpy as np

        frames = np.zeros((mic.shape[0], 2), dtype=np.int16)
        frames[:, 0] = mic
        n = min(mic.shape[0], ref.shape[0])
        frames[:n, 1] = ref[:n]
        self.output.write(frames)

    def close(self) -> None:
        self.output.close()


class TeeBuffer:
    """A playback buffer whose reads also go to ``write`` (the ``--output-file`` of a file run:
    the assistant's audio exactly as the speaker took it)."""

    def __init__(self, buffer: Any, write: Callable[[npt.NDArray[np.int16]], None]) -> None:
        self._buffer = buffer
        self._write = write

    def read_into(self, out: npt.NDArray[np.int16]) -> int:
        real = int(self._buffer.read_into(out))
        if real:
            self._write(out[:real])
        return real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)


