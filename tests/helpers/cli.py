"""Run ``voicechat talk`` as a subprocess against a loopback server, with a clean environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.helpers.server import speech_like
from voicechat.audio.wav import write_wav
from voicechat.server import LocalServer

VOICECHAT = [sys.executable, "-m", "voicechat"]
TIMEOUT = 90  # seconds; generous, the test machine is small and shared
RATE = 24_000
NOISE = ("Traceback", "internal error", "Exception ignored", "Task exception was never retrieved")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus anything that would change what voicechat does."""
    drop = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "NO_COLOR",
            "FORCE_COLOR", "COLUMNS", "LINES", "TERM"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("VOICECHAT_")}
    config_dir = tmp_path / "config"  # empty: no config file is read
    config_dir.mkdir(exist_ok=True)
    env["VOICECHAT_CONFIG_DIR"] = str(config_dir)
    env.update(extra)
    return env


@dataclass
class Run:
    """One finished ``voicechat`` subprocess."""

    status: int
    stdout: str
    stderr: str
    seconds: float
    args: tuple[str, ...] = ()


async def run_voicechat(cwd: Path, *args: str, env: dict[str, str]) -> Run:
    """``voicechat ARGS`` in ``cwd`` with exactly ``env`` and stdin on /dev/null; killed after
    ``TIMEOUT``. The one runner of the CLI as a subprocess (``talk_cli``, the canary sweep)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *VOICECHAT, *args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
               time.monotonic() - started, args)


async def talk_cli(server: LocalServer | None, tmp_path: Path, *args: str, key: str | None = None,
                   env: dict[str, str] | None = None) -> Run:
    """``voicechat talk [--base-url SERVER] ARGS`` in ``tmp_path`` (no .env found there).

    Without ``key`` or ``env`` the key is a fresh canary and the run is a canary sweep: the key
    must be in neither output stream nor any file under ``tmp_path``, in any encoding."""
    from tests.helpers.canary import Outputs, assert_no_leak, canary  # it imports this module

    sweep = key is None and env is None
    key = canary("key") if key is None else key
    base = ["--base-url", server.http_base_url] if server is not None else []
    run = await run_voicechat(tmp_path, "talk", *base, *args,
                              env=env or clean_env(tmp_path, OPENAI_API_KEY=key))
    if sweep:
        assert_no_leak({"key": key}, Outputs({"stdout": run.stdout, "stderr": run.stderr}, root=tmp_path))
    return run


def assert_no_noise(stderr: str) -> None:
    for word in NOISE:
        assert word not in stderr, stderr


def question_wav(tmp_path: Path, *, seconds: float = 1.2, tail_s: float = 0.3, name: str = "q.wav") -> Path:
    """A short spoken turn (speech-like audio) with a little quiet around it."""
    audio = np.concatenate([np.zeros(RATE // 5, dtype=np.int16), speech_like(seconds),
                            np.zeros(int(tail_s * RATE), dtype=np.int16)])
    path = tmp_path / name
    write_wav(path, audio, RATE)
    return path


def quiet_wav(tmp_path: Path, *, seconds: float = 1.7, name: str = "quiet.wav") -> Path:
    """A microphone that says nothing, as long as `question_wav`'s turn: for a scripted server
    whose reply comes at the first audio, while a spoken question would still be under way
    (the client would take it for the user talking over the reply, and cut it)."""
    path = tmp_path / name
    write_wav(path, np.zeros(int(seconds * RATE), dtype=np.int16), RATE)
    return path


async def wait_closes(server: LocalServer, count: int = 1, timeout: float = 5.0) -> list[tuple[int, str] | None]:
    """The server's record of how each connection was closed, once ``count`` have ended."""
    deadline = time.monotonic() + timeout
    while len(server.closes) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return list(server.closes)
