"""The user's files, read and opened so that none can hang voicechat or exhaust its memory.

Every file voicechat reads whole (the config file, ``.env``, the instructions file, a
``--resume`` transcript, a picture sent with ``/image``) is read with `read_limited`: only a
regular file, and only up to a size limit, so ``/dev/zero`` cannot grow memory without bound
and a named pipe (FIFO) cannot block the read forever. Every file it writes (transcript,
recording, reply audio, event log) is opened with `open_output`, or checked with
`check_output` first: opening a FIFO for writing waits for a reader, so anything but a regular
file is refused (``/dev/null`` excepted: it never blocks and never fills up).

The refusals are ``OSError``s whose ``strerror`` completes a sentence naming the file
(``cannot read the config file X: not a regular file but a named pipe (FIFO)``), which is how
callers already report ``FileNotFoundError`` and the like.

`fallback_file` creates the file that keeps what could not be written where it was meant to
go (a full disk, a removed directory), next to it if possible, else in the working directory
or the temporary directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from pathlib import Path

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
MAX_CONFIG_BYTES = 1 * MB  # the config file and .env
MAX_INSTRUCTIONS_BYTES = 1 * MB
MAX_TRANSCRIPT_BYTES = 256 * MB  # a --resume transcript
MAX_WAV_BYTES = 4 * GB  # an --input-file WAV (a RIFF file cannot be larger)
MAX_IMAGE_BYTES = 10 * MB  # a picture sent with /image

_PICTURE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
PICTURE_KINDS = "PNG, JPEG, GIF or WebP"

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind(mode: int) -> str:
    """What a file of ``st_mode`` is, in words (``a named pipe (FIFO)``)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def size_text(n: int) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("KB", KB)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def picture_type(data: bytes) -> str | None:
    """The MIME type of a picture by its first bytes (never by its name); None if not one."""
    for magic, mime in _PICTURE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _not_regular(st: os.stat_result) -> OSError:
    if stat.S_ISDIR(st.st_mode):
        return IsADirectoryError(errno.EISDIR, "is a directory, not a file")
    return OSError(errno.EINVAL, f"not a regular file but {kind(st.st_mode)}")


def _too_large(size: int | None, limit: int) -> OSError:
    found = f" ({size_text(size)})" if size is not None else ""
    return OSError(errno.EFBIG, f"larger than the {size_text(limit)} voicechat reads{found}")


def regular_problem(path: Path, limit: int | None = None) -> str | None:
    """Why ``path`` cannot be read as a regular file of at most ``limit`` bytes; None if it can."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(st.st_mode):
        return _not_regular(st).strerror
    if limit is not None and st.st_size > limit:
        return _too_large(st.st_size, limit).strerror
    return None


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    Raises ``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError``, or an ``OSError``
    (``EINVAL``: not a regular file; ``EFBIG``: too large). Never blocks on a FIFO: it is
    refused before it is opened, and the open itself does not wait (``O_NONBLOCK``).
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(st)
    if st.st_size > limit:
        raise _too_large(st.st_size, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)  # what was opened, not what was looked at
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(MB, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise _too_large(None, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text_limited(path: Path, limit: int) -> str:
    """`read_limited` decoded as UTF-8 (``UnicodeDecodeError`` if it is not)."""
    return read_limited(path, limit).decode("utf-8")


def _devnull(st: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (null.st_dev, null.st_ino)


def writable_kind(st: os.stat_result) -> bool:
    """Whether a file of this kind may be written: a regular file, or /dev/null."""
    return stat.S_ISREG(st.st_mode) or _devnull(st)


def check_output(path: Path) -> None:
    """Refuse ``path`` as an output if it exists and is neither a regular file nor /dev/null.

    For writers that open the path themselves; raises an ``OSError`` as `open_output` does.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError:
        return  # the writer's own open reports it
    if not writable_kind(st):
        raise _not_regular(st)


def open_output(path: Path, *, append: bool = True, mode: int = 0o644, readable: bool = False) -> int:
    """A blocking file descriptor for writing ``path`` (created if missing, else appended to or
    truncated), a regular file or /dev/null; an ``OSError`` for anything else.

    The open does not wait for a FIFO's reader (``O_NONBLOCK``, cleared once the file is known
    to be regular). ``readable`` opens it for reading too where permissions allow.
    """
    check_output(path)
    flags = os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags | (os.O_RDWR if readable else os.O_WRONLY), mode)
    except PermissionError:
        if not readable:
            raise
        fd = os.open(path, flags | os.O_WRONLY, mode)
    try:
        st = os.fstat(fd)
        if not writable_kind(st):
            raise _not_regular(st)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fallback_file(original: Path, data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` to a new file named after ``original`` and return its path.

    Tried in order: beside ``original``, the working directory, the temporary directory; the
    first that takes all of ``data`` wins (a full disk or a removed directory is skipped).
    Raises the last ``OSError`` if none does.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{original.stem}.unsaved-{stamp}-{os.getpid()}{original.suffix}"
    places: list[Path] = [original.expanduser().parent]
    with contextlib.suppress(OSError):
        places.append(Path.cwd())
    places.append(Path(tempfile.gettempdir()))
    error: OSError = FileNotFoundError(errno.ENOENT, "nowhere to write it")
    tried: set[str] = set()
    for place in places:
        target = place / name
        key = os.path.abspath(target)
        if key in tried:
            continue
        tried.add(key)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except OSError as exc:
            error = exc
            continue
        try:
            write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            error = exc
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(target)
            continue
        os.close(fd)
        return target
    raise error


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``; an ``OSError`` if the file takes less (a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]
