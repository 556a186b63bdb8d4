"""The canonical 44-byte header of a 16-bit PCM WAV file, written and made true in place.

Every WAV voicechat writes (`voicechat.audio.wav.WavWriter`, and the fallback files and header
repair of `voicechat.audio.outfile`) starts with this one header, whose two sizes (the RIFF
chunk's and the data chunk's) are rewritten as audio is appended, so that a file left behind by
``kill -9`` or a full disk says how much it holds. Standard library only: the CLI imports it
without numpy.
"""

from __future__ import annotations

import os
import struct

HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
FORMAT_PCM = 0x0001
_SIZE = struct.Struct("<I")
_RIFF_SIZE_AT, _DATA_SIZE_AT = 4, 40


def wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """The header of a 16-bit PCM WAV holding ``data_bytes`` of audio."""
    align = 2 * channels
    return HEADER.pack(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, FORMAT_PCM, channels, rate,
                       rate * align, align, 16, b"data", data_bytes)


def block_align(header: bytes) -> int | None:
    """The bytes per frame of a header of this shape; None if ``header`` is not one."""
    if len(header) < HEADER.size:
        return None
    riff, _, wave, fmt, fmt_size, tag, _, _, _, align, _, data, _ = HEADER.unpack_from(header)
    ok = (riff, wave, fmt, data, fmt_size, tag) == (b"RIFF", b"WAVE", b"fmt ", b"data", 16, FORMAT_PCM)
    return align if ok and align > 0 else None


def write_sizes(fd: int, data_bytes: int) -> None:
    """Make the header of the file open on ``fd`` say it holds ``data_bytes`` of audio (in
    place, a few bytes: it works on a full disk; sizes past 4 GiB are capped, as RIFF must)."""
    os.pwrite(fd, _SIZE.pack(min(36 + data_bytes, 0xFFFFFFFF)), _RIFF_SIZE_AT)
    os.pwrite(fd, _SIZE.pack(min(data_bytes, 0xFFFFFFFF)), _DATA_SIZE_AT)
