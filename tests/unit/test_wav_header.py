"""The WAV writer keeps its header true as it goes (issue 12: after ``kill -9``, a crash or a full
disk the header said 20 ms for a 9 s recording), and never blocks on a FIFO put in its path
after the caller looked (the check and the open are one step)."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicechat.audio.wav import WavWriter, read_wav
from voicechat.errors import AudioError


def sizes(path: Path) -> tuple[int, int, int]:
    raw = path.read_bytes()
    return struct.unpack_from("<I", raw, 4)[0], struct.unpack_from("<I", raw, 40)[0], len(raw) - 44


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(blocks=st.lists(st.integers(0, 3000), max_size=40), rate=st.sampled_from([8000, 24000, 48000]),
       channels=st.sampled_from([1, 2]))
def test_the_header_is_never_more_than_a_second_behind(tmp_path: Path, blocks: list[int], rate: int,
                                                       channels: int) -> None:
    """Read while the writer is still open (as after kill -9): the header counts all the flushed
    audio but at most one second, and closing makes it exact."""
    path = tmp_path / "out.wav"
    rng = np.random.default_rng(len(blocks))
    written = []
    with WavWriter(path, rate, channels) as w:
        for n in blocks:
            frames = rng.integers(-2000, 2000, size=(n, channels) if channels > 1 else n).astype(np.int16)
            w.write(frames)
            written.append(frames.reshape(n, channels))
            riff, data, _ = sizes(path)
            total = w.frames_written * 2 * channels
            assert riff == data + 36
            assert total - rate * 2 * channels < data <= total or total == data == 0
    riff, data, held = sizes(path)
    assert data == held == sum(len(f) for f in written) * 2 * channels and riff == data + 36
    if data:
        samples, got_rate = read_wav(path)
        assert got_rate == rate and len(samples) == data // (2 * channels)


def test_a_fifo_in_its_path_is_refused_without_blocking(tmp_path: Path) -> None:
    """The race: the path was checked (or did not exist), then a FIFO took its place."""
    path = tmp_path / "rec.wav"
    os.mkfifo(path)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            WavWriter(path, 24000).close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=open_it, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # unblock it before failing
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("opening a FIFO for writing blocked")
    assert len(errors) == 1 and isinstance(errors[0], AudioError), errors
    assert str(path) in str(errors[0]) and "FIFO" in str(errors[0])


def test_dev_null_is_still_a_place_to_write(tmp_path: Path) -> None:
    with WavWriter(os.devnull, 24000) as w:
        w.write(np.zeros(48000, np.int16))


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_an_input_wav_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    """``--input-file`` is read whole: a FIFO (which would block) or /dev/zero (which would fill
    memory) put in its place after the settings were checked is refused, naming the file."""
    if kind == "fifo":
        path = tmp_path / "in.wav"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    errors: list[BaseException] = []

    def read_it() -> None:
        try:
            read_wav(path)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=read_it, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "reading it blocked"
    assert len(errors) == 1 and isinstance(errors[0], AudioError) and str(path) in str(errors[0]), errors
