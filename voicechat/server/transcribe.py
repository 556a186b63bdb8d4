"""Offline speech recognition for input transcription (optional ``pocketsphinx``).

``load_recognizer("auto")`` returns a recogniser backed by pocketsphinx when the package is
installed, else ``None`` (then the server emits no transcription events and the user item's
transcript stays ``null``).

The decoder runs in a worker process of its own (this module run with ``-m``), one per process
that serves, started with the first server and shared by every server after it: pocketsphinx
holds the GIL for the whole utterance (0.6-0.8 s for 2 s of speech), so in a thread it stalled
every other thread of the process; with ``--backend local`` that was the client's audio loop,
and the speaker underran. The I/O layer calls the recogniser from a worker thread, which waits
on the process. Requests and answers are length-prefixed on the worker's standard input and
output; an empty request only waits for the model to load.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import struct
import subprocess
import sys
import threading
from typing import IO, Any

import numpy as np

from voicechat.protocol.constants import WIRE_RATE
from voicechat.server.options import Recognizer

log = logging.getLogger(__name__)

_DECODER_RATE = 16_000
_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = WIRE_RATE * 2 * 600  # ten minutes of speech: the input buffer holds no more


class _Worker:
    """The recognising process, started on first use and again after it dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def ask(self, pcm: bytes) -> str:
        if len(pcm) > MAX_REQUEST_BYTES:  # the worker would take it for a broken pipe and quit
            raise RuntimeError("an utterance over ten minutes long is not transcribed")
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                proc = self._proc = subprocess.Popen(
                    [sys.executable, "-m", "voicechat.server.transcribe"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(_HEADER.pack(len(pcm)) + pcm)
                proc.stdin.flush()
                return _read_frame(proc.stdout).decode("utf-8", "replace")
            except (OSError, EOFError) as exc:
                proc.kill()
                self._proc = None  # the next turn starts another
                raise RuntimeError("the recogniser's worker process went away") from exc


_worker = _Worker()


def _read_frame(stream: IO[bytes]) -> bytes:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    if size > MAX_REQUEST_BYTES:
        raise EOFError
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return body


class PocketSphinxRecognizer:
    """Callable recogniser: PCM16 24 kHz bytes → lowercase words (may be empty). Blocks its
    caller (a worker thread) while the worker process decodes; one utterance at a time."""

    def preload(self) -> None:
        """Start the worker and load the acoustic model now (about a second the first time)."""
        _worker.ask(b"")

    def __call__(self, pcm: bytes) -> str:
        return _worker.ask(pcm) if pcm else ""


def _recognize(decoder: Any, pcm: bytes) -> str:
    import soxr  # type: ignore[import-untyped]

    samples = np.frombuffer(pcm, dtype=np.int16)
    if samples.size == 0:
        return ""
    audio = soxr.resample(samples, WIRE_RATE, _DECODER_RATE)
    decoder.start_utt()
    decoder.process_raw(np.ascontiguousarray(audio, dtype=np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return str(hyp.hypstr).strip() if hyp is not None else ""


def _serve() -> None:
    """The worker: Ctrl-C at the terminal reaches the whole process group, and the serving process
    decides what it means; the worker ends when its input does (the server closed or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from pocketsphinx import Decoder  # type: ignore[import-untyped]

    decoder = Decoder(samprate=_DECODER_RATE, loglevel="FATAL")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            pcm = _read_frame(stdin)
        except EOFError:
            return
        text = _recognize(decoder, pcm).encode("utf-8")
        stdout.write(_HEADER.pack(len(text)) + text)
        stdout.flush()


def load_recognizer(spec: str | Recognizer) -> Recognizer | None:
    """Resolve the ``ServerOptions.recognizer`` setting to a callable or ``None``."""
    if callable(spec):
        return spec
    if spec == "none":
        return None
    if spec != "auto":
        raise ValueError(f"unknown recognizer {spec!r}")
    if importlib.util.find_spec("pocketsphinx") is None:
        log.info("pocketsphinx is not installed: no input transcription")
        return None
    return PocketSphinxRecognizer()


if __name__ == "__main__":
    _serve()
