"""Device tier: an audio device that goes away mid-conversation and comes back (issue 12).

Each test runs ``voicechat talk`` on its own private headless PulseAudio (the daemon is killed
or its sinks unloaded, which would disturb the session's shared one), speaks a question, takes
the device away, checks that talk pauses and says ``device lost`` instead of ending, brings a
device back, and speaks again: the second question gets a reply, the transcript has all four
turns, and Ctrl-C ends talk as usual (130); with none back in 60 s, talk ends with status 4.
Everything waits for conditions, never for time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.devices import ROOT, SCRIPT, headless_pulse, sink_inputs_of, wait_for
from voicechat.errors import ExitStatus

QUESTION = ROOT / "voicechat" / "data" / "question.wav"

pytestmark = pytest.mark.device


@pytest.fixture
def own_pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from headless_pulse(tmp_path_factory)


class Talk:
    """``voicechat talk`` on the local server with its status log in a file, read as it grows."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env, self.chat, self.log = env, tmp_path / "chat.txt", tmp_path / "stderr.txt"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voicechat", "talk", "--backend", "local", "--silence-duration-ms", "400",
             "--transcript", str(self.chat)],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("w"), stdin=subprocess.DEVNULL, text=True,
        )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def replies(self) -> int:
        return self.chat.read_text().count("assistant:") if self.chat.exists() else 0

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"talk ended ({self.proc.returncode}): {self.stderr()}"
        return True

    def ask(self, replies_before: int) -> None:
        """Speak the question until its reply is in the transcript (a stream just opened on a
        null sink may start late and miss the first words: speaking again is what a user does)."""
        def answered() -> bool:
            self.alive()
            if self.replies() > replies_before:
                return True
            subprocess.run(["paplay", "-d", "mic", str(QUESTION)], env=self.env, check=True, timeout=60)
            return self.replies() > replies_before

        wait_for(answered, 90, "a reply to the spoken question", interval=0.5)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


def pactl(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["pactl", *args], env=env, check=True, capture_output=True, text=True, timeout=30).stdout


def start_daemon(env: dict[str, str]) -> None:
    subprocess.run(["bash", str(SCRIPT), "start"], env=env, check=True, capture_output=True, timeout=60)


def kill_daemon(env: dict[str, str]) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, check=True, capture_output=True, timeout=60)


def wait_lost(talk: Talk) -> None:
    wait_for(lambda: talk.alive() and "device lost" in talk.stderr(), 60, "'device lost' on the status log")


def test_sound_server_killed_and_restarted_keeps_the_conversation(own_pulse: dict[str, str],
                                                                   tmp_path: Path) -> None:
    talk = Talk(own_pulse, tmp_path)
    try:
        wait_for(lambda: talk.alive() and "speaker" in talk.stderr(), 60, "the devices to open")
        talk.ask(0)
        kill_daemon(own_pulse)
        wait_lost(talk)
        assert "waiting up to 60 s" in talk.stderr()
        start_daemon(own_pulse)
        wait_for(lambda: talk.alive() and "device back" in talk.stderr(), 60, "'device back' on the status log")
        talk.ask(1)
    finally:
        status = talk.stop()
    text = talk.chat.read_text()
    assert status == ExitStatus.SIGINT, talk.stderr()
    assert text.count("you:") >= 2 and text.count("assistant:") >= 2, text
    assert "Traceback" not in talk.stderr()


def test_speaker_sink_unloaded_then_a_new_one_at_another_rate(own_pulse: dict[str, str], tmp_path: Path) -> None:
    """Every sink goes (the microphone is a sink's monitor, so both devices are lost); a new
    pair comes back with the speaker at 44.1 kHz and is made the default."""
    talk = Talk(own_pulse, tmp_path)
    try:
        wait_for(lambda: talk.alive() and "speaker" in talk.stderr(), 60, "the devices to open")
        talk.ask(0)
        for line in pactl(own_pulse, "list", "short", "modules").splitlines():
            if "module-null-sink" in line:
                pactl(own_pulse, "unload-module", line.split()[0])
        wait_lost(talk)
        pactl(own_pulse, "load-module", "module-null-sink", "sink_name=mic", "rate=48000")
        pactl(own_pulse, "load-module", "module-null-sink", "sink_name=spk2", "rate=44100")
        pactl(own_pulse, "set-default-sink", "spk2")
        pactl(own_pulse, "set-default-source", "mic.monitor")
        wait_for(lambda: talk.alive() and "device back" in talk.stderr(), 60, "'device back' on the status log")
        talk.ask(1)
    finally:
        status = talk.stop()
    text = talk.chat.read_text()
    assert status == ExitStatus.SIGINT, talk.stderr()
    assert text.count("you:") >= 2 and text.count("assistant:") >= 2, text


def test_no_device_back_within_the_bound_ends_with_the_audio_error(own_pulse: dict[str, str],
                                                                   tmp_path: Path) -> None:
    """The sound server never comes back: after the 60 s the panel announced, talk ends with the
    one-line error and status 4, and the turns before the loss are in the transcript."""
    talk = Talk(own_pulse, tmp_path)
    try:
        wait_for(lambda: talk.alive() and "speaker" in talk.stderr(), 60, "the devices to open")
        talk.ask(0)
        kill_daemon(own_pulse)
        wait_lost(talk)
        status = talk.proc.wait(timeout=180)
    finally:
        talk.stop()
        start_daemon(own_pulse)  # the fixture stops what it started
    lines = talk.stderr().rstrip().splitlines()
    assert status == ExitStatus.AUDIO, talk.stderr()
    assert "device back" not in talk.stderr()
    error = next(i for i, line in enumerate(lines) if line.startswith("voicechat: error: "))
    assert lines[error] in ("voicechat: error: the output audio device stopped (unplugged?)",
                            "voicechat: error: the input audio device stopped (unplugged?)"), lines
    assert "within 60 s" in lines[error + 1] and "Traceback" not in talk.stderr()
    text = talk.chat.read_text()
    assert "you:" in text and "assistant:" in text, text


def sink_of_talk(env: dict[str, str], pid: int) -> str | None:
    """The sink name the talk process's playback stream is on now (None while it has none)."""
    sinks = {line.split()[0]: line.split()[1] for line in pactl(env, "list", "short", "sinks").splitlines()}
    for line in pactl(env, "list", "short", "sink-inputs").splitlines():
        index, sink = line.split()[:2]
        if int(index) in sink_inputs_of(pid, env):
            return sinks.get(sink)
    return None


def test_a_new_default_speaker_is_followed(own_pulse: dict[str, str], tmp_path: Path) -> None:
    """No --output-device: a new default sink takes the speaker over (the sound server moves
    the stream), and the conversation goes on through it."""
    talk = Talk(own_pulse, tmp_path)
    try:
        wait_for(lambda: talk.alive() and sink_of_talk(own_pulse, talk.proc.pid) == "spk", 60,
                 "the speaker stream on spk")
        talk.ask(0)
        pactl(own_pulse, "load-module", "module-null-sink", "sink_name=spk2", "rate=44100")
        pactl(own_pulse, "set-default-sink", "spk2")
        wait_for(lambda: talk.alive() and sink_of_talk(own_pulse, talk.proc.pid) == "spk2", 60,
                 "the speaker stream to follow the default to spk2")
        talk.ask(1)
    finally:
        status = talk.stop()
    assert status == ExitStatus.SIGINT, talk.stderr()
    text = talk.chat.read_text()
    assert text.count("you:") >= 2 and text.count("assistant:") >= 2, text
