"""The local server's recogniser decodes in a worker process: pocketsphinx holds the GIL for a
whole utterance, and in a thread it stalled every other thread of the serving process (with
``--backend local``, the client's audio loop). Real speech (espeak-ng), the real decoder."""

from __future__ import annotations

import time

import pytest

from bench.speech import say
from voicechat.protocol.constants import WIRE_RATE
from voicechat.server import transcribe
from voicechat.server.transcribe import PocketSphinxRecognizer

pytestmark = pytest.mark.skipif(not transcribe.importlib.util.find_spec("pocketsphinx"),
                                reason="pocketsphinx (the asr extra) is not installed")


def _speech() -> bytes:
    return say("what is the weather like in paris today", rate=WIRE_RATE).tobytes()


def test_decoding_costs_the_serving_process_no_cpu() -> None:
    rec = PocketSphinxRecognizer()
    rec.preload()
    pcm = _speech()
    before = time.process_time()  # every thread of this process, not the clock on the wall
    words = rec(pcm)
    used = time.process_time() - before
    assert words.split(), "the worker recognised nothing"
    # Decoding these 2 s takes about 0.6 s of CPU; in a thread of this process it would all be here.
    assert used < 0.15, f"the serving process spent {used:.2f} s of CPU on recognition"


def test_a_worker_that_died_is_replaced_on_the_next_turn() -> None:
    """Killed between turns (out of memory, a stray kill): the next turn starts another."""
    rec = PocketSphinxRecognizer()
    rec.preload()
    proc = transcribe._worker._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    assert rec(_speech()).split()
    assert transcribe._worker._proc is not None and transcribe._worker._proc.pid != proc.pid


def test_an_utterance_over_the_limit_is_refused_and_the_worker_kept() -> None:
    """The worker reads a longer request as a broken pipe and quits: the serving side refuses it
    first (the server then reports the transcription as failed), and the worker stays."""
    rec = PocketSphinxRecognizer()
    rec.preload()
    proc = transcribe._worker._proc
    with pytest.raises(RuntimeError, match="over ten minutes"):
        rec(bytes(transcribe.MAX_REQUEST_BYTES + 2))
    assert transcribe._worker._proc is proc and proc is not None and proc.poll() is None
    assert rec(_speech()).split()
