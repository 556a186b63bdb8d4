"""The canary sweep: fake credentials under hostile conditions, looked for in every output.

Each test runs the real CLI (``voicechat talk``, ``config show``, ``doctor --no-audio``) as a
subprocess with canary secrets (an API key, an Azure key, a password in the base URL) against
a local server on loopback that misbehaves: it echoes the key in error events, in the user's
transcript and in the assistant's answer, and calls a tool that dumps its environment. Then
every output — stdout, stderr, the transcript, the event log, the recordings, the tool's dump —
is searched for each canary in every form (`canary_helpers.leaks`): as it is, JSON-escaped,
percent-encoded, base64 at each alignment, and any trailing fragment longer than four
characters (``config show`` and ``doctor`` show the last four on purpose).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers.canary import Outputs, Run, assert_no_leak, canary, sweep_env, voicechat
from tests.helpers.cli import question_wav
from voicechat.errors import ExitStatus
from voicechat.redact import ELIDED
from voicechat.server import LocalServer, ScriptedBrain, ServerOptions
from voicechat.server.brain import ScriptedReply

TALK_OUTPUTS = ("--debug", "--fast", "--silence-duration-ms", "300", "--transcript", "chat.jsonl",
                "--log-events", "events.jsonl", "--record", "both.wav", "--output-file", "reply.wav")
ENV_DUMP = ("import json, os, sys; sys.stdin.read(); "
            "open('tool-env.json', 'w').write(json.dumps(dict(os.environ))); print('dumped')")


def echoed(*secrets: str) -> str:
    """How a hostile server quotes secrets back: as they are, percent-encoded and in base64."""
    return " ".join(f"Incorrect API key provided: {s} ({quote(s, safe='')}, {base64.b64encode(s.encode()).decode()})"
                    for s in secrets)


def error_frame(message: str, *, kind: str = "server_error", param: str | None = None) -> str:
    return json.dumps({"type": "error", "event_id": "event_canary",
                       "error": {"type": kind, "code": None, "message": message, "param": param, "event_id": None}})


def hostile_server(*secrets: str, fatal: bool = False) -> LocalServer:
    """A loopback server that echoes ``secrets`` in an error event (``fatal``: one rejecting the
    session settings), in the user's transcript and in its answer, after calling ``env_dump``."""
    kind = "invalid_request_error" if fatal else "server_error"
    brain = ScriptedBrain([{"function_calls": [{"name": "env_dump", "arguments": "{}"}]},
                           ScriptedReply(f"Noted. {echoed(*secrets)}", audio_ms=600)])
    return LocalServer(ServerOptions(
        speed=8.0, seed=12, brain=brain, recognizer=lambda pcm: f"my key is {' '.join(secrets)}",
        inject_frames=(error_frame(echoed(*secrets), kind=kind, param=secrets[0]),)))


def with_tool(env: dict[str, str]) -> dict[str, str]:
    """A config file (private) declaring ``env_dump``, a tool that writes its environment to a file."""
    path = Path(env["VOICECHAT_CONFIG_DIR"]) / "config.toml"
    path.write_text(f'[[tools]]\nname = "env_dump"\ncommand = [{json.dumps(sys.executable)}, "-c", '
                    f"{json.dumps(ENV_DUMP)}]\ntimeout = 30\n")
    path.chmod(0o600)
    return env


def outputs_of(root: Path, *runs: Run) -> Outputs:
    found = Outputs(root=root)
    for i, run in enumerate(runs):
        found.add(f"stdout of {' '.join(run.args[:2])} #{i}", run.stdout)
        found.add(f"stderr of {' '.join(run.args[:2])} #{i}", run.stderr)
    return found


def error_lines(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("voicechat: error:")]


# ---- the key, echoed by a hostile server, through every output --------------------------------------


async def test_a_server_echoing_the_key_everywhere_leaks_nothing(tmp_path: Path) -> None:
    key = canary("key")
    env = with_tool(sweep_env(tmp_path, OPENAI_API_KEY=key))
    async with hostile_server(key) as srv:
        talk = await voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file",
                               str(question_wav(tmp_path)), *TALK_OUTPUTS, env=env)
        doctor = await voicechat(tmp_path, "doctor", "--no-audio", "--base-url", srv.http_base_url, env=env)
        show = await voicechat(tmp_path, "config", "show", env=env)
    assert talk.status == 0, talk.stderr[-3000:]
    # The hostile parts really happened: the error shown, the transcripts written, the tool run.
    assert "voicechat: error: server error" in talk.stderr and ELIDED in talk.stderr
    assert talk.stdout.startswith(f"you: my key is {ELIDED}"), talk.stdout
    assert f"assistant: Noted. Incorrect API key provided: {ELIDED}" in talk.stdout
    assert "tool: env_dump" in talk.stdout and (tmp_path / "tool-env.json").exists()
    assert "OPENAI_API_KEY" not in json.loads((tmp_path / "tool-env.json").read_text())
    assert "DEBUG:" in talk.stderr and (tmp_path / "events.jsonl").stat().st_size > 0
    assert "API key        set in the environment (ends …9QxW)" in doctor.stdout
    assert "api_key" in show.stdout and "sk-…9QxW" in show.stdout and show.status == 0
    assert assert_no_leak({"key": key}, outputs_of(tmp_path, talk, doctor, show)) >= 12


async def test_a_server_rejecting_the_session_with_the_key_in_its_message_leaks_nothing(tmp_path: Path) -> None:
    key = canary("key")
    async with hostile_server(key, fatal=True) as srv:
        talk = await voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file",
                               str(question_wav(tmp_path)), *TALK_OUTPUTS, env=sweep_env(tmp_path, OPENAI_API_KEY=key))
    assert talk.status == ExitStatus.SESSION, talk.stderr[-3000:]
    assert "Traceback" in talk.stderr  # --debug: the traceback, scrubbed
    (line,) = error_lines(talk)
    assert line.startswith("voicechat: error: the server rejected the session settings: Incorrect API key provided: "
                           f"{ELIDED} ({ELIDED}, {ELIDED}"), line
    assert_no_leak({"key": key}, outputs_of(tmp_path, talk))


# ---- a key that cannot be sent, a .env that cannot be read, a password in the URL ---------------------


BAD_KEYS = {
    "trailing newline": (lambda k: k + "\n", "contains a line break at its end"),
    "CRLF inside": (lambda k: k[:12] + "\r\n" + k[12:], "contains a carriage return and a line break"),
    "non-Latin-1": (lambda k: k[:12] + "\u2014" + k[12:], "contains a non-ASCII character"),
    "Latin-1 letter": (lambda k: k[:12] + "é" + k[12:], "contains a non-ASCII character"),
    "control": (lambda k: k[:12] + "\x1b[2J" + k[12:], "contains a control character"),
}


@pytest.mark.parametrize("name", BAD_KEYS)
async def test_a_key_that_cannot_be_a_header_is_refused_before_connecting(tmp_path: Path, name: str) -> None:
    key = canary("key")
    make, problem = BAD_KEYS[name]
    bad = make(key)
    env = sweep_env(tmp_path, OPENAI_API_KEY=bad)
    async with LocalServer(ServerOptions(recognizer="none")) as srv:
        base = ("--base-url", srv.http_base_url)
        q = str(question_wav(tmp_path))
        runs = [
            await voicechat(tmp_path, "talk", *base, "--input-file", q, *TALK_OUTPUTS, env=env),
            await voicechat(tmp_path, "talk", *base, "--input-file", q, "--transcript", "plain.md", env=env),
            await voicechat(tmp_path, "config", "show", env=env),
            await voicechat(tmp_path, "doctor", "--no-audio", *base, env=env),
        ]
        assert srv.connections == 0  # refused before connecting
    for run in runs:
        assert run.status == ExitStatus.CONFIG, run.stderr
        assert error_lines(run) == [f"voicechat: error: OPENAI_API_KEY in the environment {problem}"], run.stderr
    plain = runs[1].stderr.splitlines()
    assert len(plain) == 2 and plain[1].startswith("  hint: an API key is one line of printable ASCII")
    assert_no_leak({"key": key, "bad key": bad}, outputs_of(tmp_path, *runs))


async def test_a_dotenv_that_is_not_utf8_is_named_without_its_content(tmp_path: Path) -> None:
    key, azure = canary("key"), canary("azure")
    content = f"OPENAI_API_KEY='{key}'\nAZURE_OPENAI_API_KEY={azure}\n".encode()
    (tmp_path / ".env").write_bytes(content + b"VOICECHAT_VOICE=caf\xe9\n")
    (tmp_path / ".env").chmod(0o600)
    at = len(content) + len("VOICECHAT_VOICE=caf")
    env = sweep_env(tmp_path)
    runs = [
        await voicechat(tmp_path, "talk", "--base-url", "http://127.0.0.1:9/v1", "--input-file",
                        str(question_wav(tmp_path)), *TALK_OUTPUTS, env=env),
        await voicechat(tmp_path, "talk", "--backend", "local", "--input-file", str(question_wav(tmp_path)), env=env),
        await voicechat(tmp_path, "config", "show", env=env),
        await voicechat(tmp_path, "config", "show", "--debug", env=env),
        await voicechat(tmp_path, "doctor", "--no-audio", "--base-url", "http://127.0.0.1:9/v1", env=env),
    ]
    for run in runs:
        assert run.status == ExitStatus.CONFIG, run.stderr
        assert error_lines(run) == [f"voicechat: error: {tmp_path / '.env'}: not valid UTF-8 at byte {at}"], run.stderr
        assert "UnicodeDecodeError" not in run.stderr and "internal error" not in run.stderr
    assert "Traceback" not in runs[1].stderr + runs[2].stderr + runs[4].stderr
    leaked = outputs_of(tmp_path, *runs)
    leaked.root = None  # the .env file itself holds them, of course
    assert_no_leak({"key": key, "azure": azure}, leaked)


@pytest.mark.parametrize("where", ["flag", "environment"])
async def test_a_password_in_the_base_url_is_refused_and_never_shown(tmp_path: Path, where: str) -> None:
    key, password = canary("key"), canary("password")
    async with LocalServer(ServerOptions(recognizer="none")) as srv:
        url = f"http://user:{password}@127.0.0.1:{srv.port}/v1"
        env = sweep_env(tmp_path, OPENAI_API_KEY=key)
        base: tuple[str, ...] = ("--base-url", url)
        if where == "environment":
            env["OPENAI_BASE_URL"], base = url, ()
        runs = [
            await voicechat(tmp_path, "talk", *base, "--input-file", str(question_wav(tmp_path)), *TALK_OUTPUTS,
                            env=env),
            await voicechat(tmp_path, "doctor", "--no-audio", *base, env=env),
        ]
        if where == "environment":
            runs.append(await voicechat(tmp_path, "config", "show", env=env))
        assert srv.connections == 0  # nothing sent: no Basic header beside the Bearer one
    status, subject = ((ExitStatus.USAGE, "--base-url") if where == "flag"
                       else (ExitStatus.CONFIG, "OPENAI_BASE_URL in the environment"))
    for run in runs:
        assert run.status == status, run.stderr
        assert error_lines(run) == [f"voicechat: error: {subject} must not hold a user name or password "
                                    "(user:password@host): voicechat authenticates with the API key only"]
    assert_no_leak({"key": key, "password": password}, outputs_of(tmp_path, *runs))


# ---- Azure: its key is the one in use, and tools never see it --------------------------------------


async def test_azure_keys_stay_out_of_every_output_and_every_tool(tmp_path: Path) -> None:
    key, azure = canary("key"), canary("azure")
    async with hostile_server(azure, key) as srv:
        env = with_tool(sweep_env(tmp_path, OPENAI_API_KEY=key, AZURE_OPENAI_API_KEY=azure,
                                  AZURE_OPENAI_ENDPOINT=f"http://127.0.0.1:{srv.port}", VOICECHAT_AZURE="true",
                                  VOICECHAT_MODEL="gpt-realtime-2.1"))
        talk = await voicechat(tmp_path, "talk", "--input-file", str(question_wav(tmp_path)), *TALK_OUTPUTS, env=env)
        doctor = await voicechat(tmp_path, "doctor", "--no-audio", env=env)
        show = await voicechat(tmp_path, "config", "show", env=env)
    assert talk.status == 0, talk.stderr[-3000:]
    assert "/openai/v1/realtime?model=gpt-realtime-2.1" in (tmp_path / "events.jsonl").read_text()
    tool_env = json.loads((tmp_path / "tool-env.json").read_text())
    assert "AZURE_OPENAI_API_KEY" not in tool_env and "OPENAI_API_KEY" not in tool_env
    assert "…r7Jm" in show.stdout and "sk-…" not in show.stdout  # the Azure key is the one in use
    assert "environment (AZURE_OPENAI_API_KEY)" in show.stdout
    assert f"the server rejected session.update: Incorrect API key provided: {ELIDED}" in doctor.stdout, doctor.stdout
    assert assert_no_leak({"key": key, "azure": azure}, outputs_of(tmp_path, talk, doctor, show)) >= 12


# ---- the local backend: the key it holds stays out, and "local" is no secret ------------------------


async def test_the_local_backend_with_a_real_key_held_leaks_nothing_and_elides_nothing(tmp_path: Path) -> None:
    key = canary("key")
    run = await voicechat(tmp_path, "talk", "--backend", "local", "--input-file", str(question_wav(tmp_path)),
                          *TALK_OUTPUTS, env=sweep_env(tmp_path, OPENAI_API_KEY=key))
    assert run.status == 0, run.stderr[-3000:]
    log = (tmp_path / "events.jsonl").read_text()
    assert ELIDED not in log  # the placeholder is no secret
    assert os.stat(tmp_path / "events.jsonl").st_mode & 0o077 == 0
    assert_no_leak({"key": key}, outputs_of(tmp_path, run))


# ---- an MCP server's header secret (issue 16) ------------------------------------------------------


async def test_an_mcp_header_secret_never_appears_in_any_output(tmp_path: Path) -> None:
    """The header value reaches the server in session.update and nowhere else: the server echoes
    it in session.updated (the event log, --debug), in the user's transcript, as the MCP call's
    arguments and output, and in the answer; config show lists the server without it."""
    key, token = canary("key"), canary("azure")
    env = sweep_env(tmp_path, OPENAI_API_KEY=key, DOCS_TOKEN=f"Bearer {token}")
    config = Path(env["VOICECHAT_CONFIG_DIR"]) / "config.toml"
    config.write_text('[[mcp]]\nlabel = "docs"\nurl = "https://mcp.example.com/mcp"\nrequire_approval = "never"\n'
                      'headers = { Authorization = "env:DOCS_TOKEN" }\n')
    config.chmod(0o600)
    options = ServerOptions(speed=8.0, seed=12, recognizer=lambda pcm: f"docs.search {token}")
    async with LocalServer(options) as srv:
        talk = await voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file",
                               str(question_wav(tmp_path)), *TALK_OUTPUTS, env=env)
        show = await voicechat(tmp_path, "config", "show", env=env)
    assert talk.status == 0, talk.stderr[-3000:]
    # The secret really went round: listed, called with it as the query, answered with it.
    assert "mcp docs: 3 tools" in talk.stderr
    assert f'mcp: docs.search({{"query": "{ELIDED}"}}) -> 3 results for' in talk.stdout, talk.stderr[-6000:]
    assert f"assistant: The docs.search tool returned: 3 results for '{ELIDED}'" in talk.stdout
    events = (tmp_path / "events.jsonl").read_text()
    assert '"mcp_list_tools.completed"' in events and '"headers"' in events
    (line,) = [line for line in show.stdout.splitlines() if line.startswith("mcp ")]
    assert "docs" in line and show.status == 0
    assert assert_no_leak({"key": key, "mcp header": token}, outputs_of(tmp_path, talk, show)) >= 8
