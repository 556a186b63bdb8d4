"""/profile NAME mid-conversation: the real client against the real local server over loopback.

New instructions and turn detection change in place with one session.update on the live
connection; a new voice after the assistant has spoken moves the conversation to a new server
session, configured with the profile and re-seeded with the turns so far."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from tests.helpers.server import speech_like, validate_client_event, validate_server_event
from voicechat import keys
from voicechat.app import Output, talk
from voicechat.app.keyboard import Profiles
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import write_wav
from voicechat.config import parse_config_file, resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink

RATE = 24_000
CONFIG = '''voice = "marin"
instructions = "Be brief."
silence_duration_ms = 300
transcribe = false
[profile.pirate]
instructions = "Talk like a pirate."
vad = "semantic"
[profile.sailor]
voice = "ash"
instructions = "Talk like a sailor."
'''


def count(srv: LocalServer, etype: str, *, emitted: bool = True) -> int:
    return sum(e["type"] == etype for e in (srv.emitted if emitted else srv.received))


async def _after_a_reply(srv: LocalServer, commands: list[str]) -> AsyncIterator[keys.Action]:
    """Once the assistant has answered: each /profile command, then /quit when the server is idle."""
    while count(srv, "response.done") < 1:
        await asyncio.sleep(0.01)
    for arg in commands:
        yield keys.Command("profile", arg)
        await asyncio.sleep(0.05)
    while count(srv, "session.updated") < 2:  # the profile reached a server session
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    yield keys.Quit()


async def _talk(tmp_path: Path, srv: LocalServer, commands: list[str]) -> tuple[str, str]:
    mic = np.concatenate([np.zeros(RATE // 5, np.int16), speech_like(1.0), np.zeros(4 * RATE, np.int16)])
    wav = tmp_path / "in.wav"
    write_wav(wav, mic, RATE)
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(CONFIG, encoding="utf-8")
    env = {"OPENAI_API_KEY": "sk-test-profile"}

    def settings(profile: str | None = None):  # type: ignore[no-untyped-def]
        flags = {"base_url": srv.http_base_url, "input_file": wav, "profile": profile}
        return resolve(flags=flags, environ=env, config_file=parse_config_file(cfg_path, CONFIG))

    profiles = Profiles(lambda: ("pirate", "sailor"), settings)
    stdout, status = io.StringIO(), io.StringIO()
    await talk(settings(), Output(sinks=[StreamSink(stdout)], status=status), audio=FileAudio(mic, None),
               actions=_after_a_reply(srv, commands), profiles=profiles)
    return stdout.getvalue(), status.getvalue()


def updates(srv: LocalServer) -> list[dict]:
    return [e["session"] for e in srv.received if e["type"] == "session.update"]


async def test_new_instructions_change_in_place_with_one_session_update(tmp_path: Path) -> None:
    async with LocalServer(ServerOptions(speed=8.0, seed=3, recognizer="none"), host="127.0.0.1", port=0) as srv:
        _out, status = await _talk(tmp_path, srv, ["", "nosuch", "pirate"])
    sent = updates(srv)
    assert len(sent) == 2, status  # the handshake's, then the profile's: unknown names send nothing
    assert sent[1]["instructions"] == "Talk like a pirate."
    assert sent[1]["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    updated = [e["session"] for e in srv.emitted if e["type"] == "session.updated"]
    assert updated[-1]["instructions"] == "Talk like a pirate."
    assert count(srv, "session.created") == 1  # the same server session
    assert "profiles: pirate, sailor" in status and "nosuch" in status, status
    assert "profile pirate" in status
    for event in srv.received:
        validate_client_event(event)
    for event in srv.emitted:
        validate_server_event(event)


async def test_a_new_voice_after_a_reply_moves_to_a_reseeded_session(tmp_path: Path) -> None:
    async with LocalServer(ServerOptions(speed=8.0, seed=4, recognizer="none"), host="127.0.0.1", port=0) as srv:
        _out, status = await _talk(tmp_path, srv, ["sailor"])
    assert count(srv, "session.created") == 2, status  # a second server session
    sent = updates(srv)
    assert sent[-1]["audio"]["output"]["voice"] == "ash" and sent[-1]["instructions"] == "Talk like a sailor."
    assert all(s["audio"]["output"]["voice"] == "marin" for s in sent[:-1])  # never changed in place
    seeded = [e for e in srv.received if e["type"] == "conversation.item.create"]
    assert seeded, "the new session was not given the conversation so far"
    assert "new server session" in status, status
    for event in srv.received:
        validate_client_event(event)
