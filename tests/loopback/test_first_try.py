"""What a new user meets on a first try, through the CLI as a subprocess (issue 14, items 4, 6, 8):
help that keeps its text, ``serve`` and talking to it without a key, and the rough errors
(``.env`` lines, Azure variables without ``--azure``, a retired model, ``| head``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import VOICECHAT, assert_no_noise, clean_env, question_wav, run_voicechat
from voicechat.errors import ExitStatus
from voicechat.server import LocalServer, ServerOptions

pytestmark = pytest.mark.loopback


async def _help(tmp_path: Path, *command: str) -> str:
    run = await run_voicechat(tmp_path, *command, "--help", env=clean_env(tmp_path, COLUMNS="250"))
    assert run.status == 0, run.stderr
    return run.stdout


# ---- item 4: help -----------------------------------------------------------------------------------


async def test_talk_help_keeps_bracketed_text_and_says_defaults(tmp_path: Path) -> None:
    text = await _help(tmp_path, "talk")
    assert "[profile.NAME]" in text  # Rich markup used to swallow it
    assert "[env OPENAI_BASE_URL; default: https://api.openai.com/v1]" in text
    assert "[default: marin]" in text and "[default: server]" in text and "[default: auto]" in text
    assert "[default: --interrupt]" in text and "[default: --auto-response]" in text
    assert "VOICECHAT_<SETTING>" in text
    for typer_metavar in ("<bool>", "<str>", "<int>", "<float>", "<path>"):
        assert typer_metavar not in text, typer_metavar
    quiet = next(line for line in text.splitlines() if "--quiet" in line)
    assert quiet.split(" -q ", 1)[1].lstrip(" ").startswith("Only errors"), quiet  # a switch takes no value


async def test_every_command_has_examples_and_no_lost_brackets(tmp_path: Path) -> None:
    for command in ("talk", "serve", "devices", "doctor"):
        text = await _help(tmp_path, command)
        assert "Examples:" in text and f"voicechat {command}" in text, command
        assert not re.search(r"<[a-z]+( range)?>", text), command  # typer's own <bool>, <float range>: one style
    assert "[profile.NAME]" in await _help(tmp_path, "config")


# ---- item 6: serve --------------------------------------------------------------------------------


async def test_serve_on_a_bad_or_busy_port_is_one_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    run = await run_voicechat(tmp_path, "serve", "--port", "99999", env=env)
    assert run.status == ExitStatus.USAGE and "--port" in run.stderr, run.stderr
    assert_no_noise(run.stderr)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = await run_voicechat(tmp_path, "serve", "--port", str(port), env=env)
    assert run.status == ExitStatus.USAGE, run.stderr
    assert_no_noise(run.stderr)
    lines = run.stderr.strip().splitlines()
    assert lines == [f"voicechat: error: cannot listen on 127.0.0.1:{port}: address already in use",
                     "  hint: pick another --port (--port 0 picks a free one)"], run.stderr


async def test_talk_to_a_loopback_server_needs_no_api_key(tmp_path: Path) -> None:
    question = question_wav(tmp_path)
    async with LocalServer(ServerOptions(speed=8.0, seed=1), host="127.0.0.1", port=0) as srv:
        run = await run_voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file", str(question),
                                  "--fast", env=clean_env(tmp_path))  # no OPENAI_API_KEY anywhere
    assert run.status == 0, run.stderr
    assert "assistant: " in run.stdout
    assert_no_noise(run.stderr)


async def test_https_without_a_key_still_asks_for_one(tmp_path: Path) -> None:
    run = await run_voicechat(tmp_path, "talk", "--base-url", "https://api.example.invalid/v1",
                              "--input-file", str(question_wav(tmp_path)), env=clean_env(tmp_path))
    assert run.status == ExitStatus.AUTH and "no API key" in run.stderr, run.stderr


# ---- item 8: rough errors ---------------------------------------------------------------------------


async def test_azure_variables_without_azure_suggest_the_flag(tmp_path: Path) -> None:
    env = clean_env(tmp_path, AZURE_OPENAI_API_KEY="azure-key-value", AZURE_OPENAI_ENDPOINT="https://r.openai.azure.com")
    run = await run_voicechat(tmp_path, "talk", "--input-file", str(question_wav(tmp_path)), env=env)
    assert run.status == ExitStatus.AUTH, run.stderr
    assert "AZURE_OPENAI_API_KEY is" in run.stderr and "hint: add --azure" in run.stderr, run.stderr
    assert "azure-key-value" not in run.stderr


async def test_a_retired_model_names_its_successor(tmp_path: Path) -> None:
    run = await run_voicechat(tmp_path, "talk", "--backend", "local", "--model", "gpt-4o-realtime-preview",
                              "--input-file", str(question_wav(tmp_path)), env=clean_env(tmp_path))
    assert run.status == ExitStatus.NOT_FOUND, run.stderr
    assert "retired" in run.stderr and "--model gpt-realtime-1.5" in run.stderr, run.stderr
    assert "voicechat: server " not in run.stderr  # refused before anything is opened


async def test_an_unparsable_dotenv_line_is_a_voicechat_warning(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("this is not a setting sk-secret-ish\nVOICECHAT_VOICE=cedar\n")
    run = await run_voicechat(tmp_path, "config", "show", env=clean_env(tmp_path))
    assert run.status == 0, run.stderr
    assert run.stderr.splitlines() == [f"voicechat: warning: {tmp_path / '.env'} line 1: not KEY=VALUE, ignored"]
    assert "cedar" in run.stdout  # the good line still counts


def test_config_show_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """``voicechat config show | head -3``: the reader left; no message, the SIGPIPE status."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*VOICECHAT, "config", "show"], stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, cwd=tmp_path, env=clean_env(tmp_path), timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == ExitStatus.SIGPIPE == 141
    assert done.stderr == b""


def test_config_show_into_head_in_a_shell(tmp_path: Path) -> None:
    """The same through a real ``| head -1``: no line on stderr, whatever the timing."""
    env = clean_env(tmp_path)
    done = subprocess.run(["bash", "-c", f"'{sys.executable}' -m voicechat config show | head -1"],
                          capture_output=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.decode().startswith("config file:")
    assert done.stderr == b""


# ---- item 11: files --------------------------------------------------------------------------------


async def test_two_sessions_in_one_md_transcript_are_two_sections(tmp_path: Path) -> None:
    chat = tmp_path / "chat.md"
    question = question_wav(tmp_path)
    for _ in range(2):
        run = await run_voicechat(tmp_path, "talk", "--backend", "local", "--input-file", str(question), "--fast",
                                  "--transcript", str(chat), env=clean_env(tmp_path))
        assert run.status == 0, run.stderr
    text = chat.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert len(headings) == 2 and all("gpt-realtime" in h and "(local server)" in h for h in headings), text
    kinds = [line[:3] for line in text.splitlines() if line.startswith(("## ", "**A"))]
    assert kinds == ["## ", "**A", "## ", "**A"], text  # each conversation under its own heading


@pytest.mark.parametrize(("flags", "words"), [
    (("--transcript", "chat.html"), "a transcript is written as .txt, .md or .jsonl, not .html"),
    (("--text-only", "--output-file", "reply.wav"), "--output-file has no effect: the assistant answers in text only"),
])
async def test_files_that_would_be_wrong_are_refused(tmp_path: Path, flags: tuple[str, ...], words: str) -> None:
    run = await run_voicechat(tmp_path, "talk", "--backend", "local", "--input-file", str(question_wav(tmp_path)),
                              *flags, env=clean_env(tmp_path))
    assert run.status == ExitStatus.USAGE, run.stderr
    assert words in run.stderr, run.stderr
    assert not (tmp_path / flags[1]).exists()


async def test_wss_to_a_plain_loopback_server_gives_a_reason_and_the_fix(tmp_path: Path) -> None:
    async with LocalServer(ServerOptions(), host="127.0.0.1", port=0) as srv:
        url = srv.http_base_url.replace("http://", "https://")
        run = await run_voicechat(tmp_path, "talk", "--base-url", url, "--input-file", str(question_wav(tmp_path)),
                                  env=clean_env(tmp_path, OPENAI_API_KEY="sk-loopback-test"))
    assert run.status == ExitStatus.CONNECT, run.stderr
    lines = run.stderr.strip().splitlines()[-2:]
    assert lines[0].startswith("voicechat: error: cannot connect to 127.0.0.1:"), run.stderr
    assert not lines[0].endswith(": "), run.stderr  # it used to stop at the colon
    assert "TLS handshake" in lines[0] and "http://" in lines[1], run.stderr


async def test_doctor_against_a_loopback_server_needs_no_key(tmp_path: Path) -> None:
    """The doctor example of ``voicechat doctor --help``: no key, and the connection is tried."""
    async with LocalServer(ServerOptions(recognizer="none"), host="127.0.0.1", port=0) as srv:
        run = await run_voicechat(tmp_path, "doctor", "--no-audio", "--base-url", srv.http_base_url,
                                  env=clean_env(tmp_path))
    key = next(line for line in run.stdout.splitlines() if "API key" in line)
    connect = next(line for line in run.stdout.splitlines() if re.match(r"\w+ +connect ", line))
    assert key.startswith("ok ") and "not needed" in key, run.stdout
    assert connect.startswith("ok ") and "ws://127.0.0.1:" in connect, run.stdout
