"""Offline speech recognition for input transcription (optional ``pocketsphinx``).

``load_recognizer("auto")`` returns a recogniser backed by pocketsphinx when the package is
installed, else ``None`` (then the server emits no transcription events and the user item's
transcript stays ``null``). The decoder loads lazily on first use, inside the worker thread
the I/O layer runs recognition in, and is shared behind a lock.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

import numpy as np

from voicechat.protocol.constants import WIRE_RATE
from voicechat.server.options import Recognizer

log = logging.getLogger(__name__)

_DECODER_RATE = 16_000


class PocketSphinxRecognizer:
    """Callable recogniser: PCM16 24 kHz bytes → lowercase words (may be empty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoder: Any = None

    def _load(self) -> Any:
        if self._decoder is None:
            from pocketsphinx import Decoder  # type: ignore[import-untyped]

            self._decoder = Decoder(samprate=_DECODER_RATE, loglevel="FATAL")
        return self._decoder

    def preload(self) -> None:
        """Load the acoustic model now (it takes about half a second)."""
        with self._lock:
            self._load()

    def __call__(self, pcm: bytes) -> str:
        import soxr  # type: ignore[import-untyped]

        samples = np.frombuffer(pcm, dtype=np.int16)
        if samples.size == 0:
            return ""
        audio = soxr.resample(samples, WIRE_RATE, _DECODER_RATE)
        with self._lock:
            decoder = self._load()
            decoder.start_utt()
            decoder.process_raw(np.ascontiguousarray(audio, dtype=np.int16).tobytes(), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
        return str(hyp.hypstr).strip() if hyp is not None else ""


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
