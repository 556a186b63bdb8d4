"""Output files that outlive a full disk, an I/O error or a removed directory.

A transcript (`RecordFile`), a recording or the reply audio (`voicechat.audio.outfile`) that
cannot be written no longer ends the conversation: ``report`` is told in one line naming the
file, the conversation and every other output go on, and what could not be written is kept.

* `RecordFile` (``--transcript``): every append is one write of whole records, cut back if
  the disk takes only part of it, so the file never holds a torn record; a file whose last
  line is unfinished (torn by a crash, or by another writer) gets a line break first, so no
  record is glued to it. Records that could not
  be written wait in memory and go out with the next append that succeeds (space was freed,
  the directory is back); what is still unwritten at `RecordFile.close` goes to a fallback
  file (`voicechat.files.fallback_file`), named by ``report``. A file removed from under
  voicechat (it, or its directory) is noticed at the next append: what it held is read back
  from the still-open descriptor and kept with the rest.
* The audio outputs' side of it is `voicechat.audio.outfile`; the helpers that tell a removed
  file and read back what it held are shared with it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from voicechat.files import MB, fallback_file, open_output, write_all

Report = Callable[[str], None]
REMOVED = "it was removed, or its directory was"
MAX_SALVAGE_BYTES = 512 * MB  # read back from a removed file, at most


def ignore(message: str) -> None:
    pass


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def regular_identity(st: os.stat_result) -> tuple[int, int] | None:
    """What tells a regular file from its replacement; None for /dev/null (never removed)."""
    return _identity(st) if stat.S_ISREG(st.st_mode) else None


def removed(path: Path, identity: tuple[int, int] | None) -> bool:
    """Whether ``path`` no longer names the file of ``identity`` (removed, or replaced)."""
    if identity is None:
        return False
    try:
        return _identity(os.stat(path)) != identity
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False  # cannot tell (a directory that is not searchable): assume it is still there


def read_back(fd: int, start: int = 0) -> bytes:
    """What the file open at ``fd`` holds from ``start`` on (empty if it cannot be read)."""
    try:
        size = min(os.fstat(fd).st_size, MAX_SALVAGE_BYTES)
        chunks = []
        while start < size and (chunk := os.pread(fd, min(MB, size - start), start)):
            chunks.append(chunk)
            start += len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""


def _line_break_after(fd: int, size: int) -> bytes:
    """A line break if the file's last line is unfinished (a torn record, another writer's
    text), so what is appended starts a line of its own instead of being glued to it."""
    if size == 0:
        return b""
    try:
        last = os.pread(fd, 1, size - 1)
    except OSError:  # not readable (write-only permissions): nothing to go by
        return b""
    return b"" if last in (b"\n", b"") else b"\n"


class RecordFile:
    """An append-only file of whole records (transcript entries) that outlives write failures.

    ``label`` names it for the user (``--transcript``); ``report`` gets one line per change:
    writing stopped (and why), writing again, where the unwritten records went at the end.
    Raises ``OSError`` only when it cannot be opened at all (a caller's usage error).
    """

    def __init__(self, path: Path, *, label: str, report: Report | None = None, mode: int = 0o644) -> None:
        self.path = path
        self.label = label
        self.report: Report = report or ignore
        self.mode = mode
        self._pending: list[str] = []
        self._salvage: bytes | None = None  # what the file held when it was removed, to put back
        self._aside = b""  # what cannot be put back (another file took its place): for the fallback
        self.problem: str | None = None  # why writing stopped, while it is stopped
        self._fd: int | None = open_output(path, append=True, mode=mode, readable=True)
        st = os.fstat(self._fd)
        self.empty = st.st_size == 0
        self._identity = regular_identity(st)

    @property
    def unwritten(self) -> int:
        """Records not written yet."""
        return len(self._pending)

    def append(self, text: str) -> bool:
        """Write ``text`` (whole records) after what is there; False if it has to wait."""
        self._pending.append(text)
        return self._flush()

    def _flush(self) -> bool:
        if self._fd is not None and removed(self.path, self._identity):
            self._lost_file()
        if self._fd is None and not self._reopen():
            return False
        if not self._pending and self._salvage is None:
            return True
        assert self._fd is not None
        data = (self._salvage or b"") + "".join(self._pending).encode("utf-8", "replace")
        start: int | None = None
        try:
            start = os.fstat(self._fd).st_size
            write_all(self._fd, _line_break_after(self._fd, start) + data)
        except OSError as exc:
            if start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)  # no torn record: all of this write, or none
            self._stopped(exc.strerror or str(exc))
            return False
        caught_up = len(self._pending)
        self._pending.clear()
        self._salvage = None
        if self.problem is not None:
            self.problem = None
            self.report(f"{self.label} {self.path}: writing again ({caught_up} held back written)")
        return True

    def _stopped(self, why: str) -> None:
        if self.problem is None:
            self.problem = why
            self.report(f"{self.label} {self.path}: cannot write it ({why}); the conversation goes on, "
                        "and what is not written is kept")

    def _lost_file(self) -> None:
        """The path no longer names the file: keep what it held, to write it out again."""
        assert self._fd is not None
        held = read_back(self._fd)
        self._salvage = (self._salvage or b"") + held
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        self._stopped(REMOVED)

    def _reopen(self) -> bool:
        """Open the path again (its directory may be back); False while it cannot be."""
        try:
            fd = open_output(self.path, append=True, mode=self.mode, readable=True)
        except OSError:
            return False
        st = os.fstat(fd)
        self._fd, self._identity = fd, regular_identity(st)
        if st.st_size and self._salvage is not None:  # another file is there now: not into it
            self._aside, self._salvage = self._aside + self._salvage, None
        return True

    def close(self) -> None:
        """A last try; what is still unwritten goes to a fallback file, named by ``report``."""
        if self._fd is not None and removed(self.path, self._identity):
            self._lost_file()
        if self._pending or self._salvage is not None:
            self._flush()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        held = self._aside + (self._salvage or b"")
        if not self._pending and not held:
            return
        data = held + "".join(self._pending).encode("utf-8", "replace")
        count = len(self._pending)
        what = f"{count} entr{'y' if count == 1 else 'ies'}"
        if held:
            what = "what the file held" + (f" and {what}" if count else "")
        self._pending.clear()
        self._salvage, self._aside = None, b""
        try:
            where = fallback_file(self.path, data)
        except OSError as exc:
            self.report(f"{self.label} {self.path}: could not keep what was not written ({what}) anywhere: "
                        f"{exc.strerror or exc}")
            return
        self.report(f"{self.label} {self.path}: what could not be written there ({what}) is in {where}")
