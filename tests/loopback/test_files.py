"""Files that would hang voicechat or exhaust its memory, and URLs it cannot connect to.

Every file voicechat reads whole (config file, ``.env``, instructions file, ``--resume``
transcript, ``--input-file``, a ``/image`` picture) must be a regular file within a size
limit: a named pipe (FIFO) would block the read forever, ``/dev/zero`` would never end. Every
file it writes (``--transcript``, ``--record``, ``--output-file``, ``--log-events``, ``config
init``) must be a regular file (or /dev/null): opening a FIFO for writing waits for a reader.
Each is refused before anything else happens, in one line naming the file and the problem,
with the usage status for a flag and the config status for the config file, ``.env`` or the
environment (the README's table). The real command runs each case; a hang fails the test at
its timeout instead of passing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.cli import VOICECHAT, assert_no_noise, clean_env, question_wav, talk_cli
from voicechat import files
from voicechat.app import picture
from voicechat.config import resolve
from voicechat.errors import ConfigError, ExitStatus, UsageError, VoicechatError
from voicechat.urls import realtime_url

FIFO = "not a regular file but a named pipe (FIFO)"
DEVICE = "not a regular file but a device"


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def sparse(path: Path, size: int) -> Path:
    """A regular file of ``size`` bytes that takes no space (a hole)."""
    with path.open("wb") as f:
        f.truncate(size)
    return path


def one_error(stderr: str) -> str:
    """The ``voicechat: error: …`` line, checked to be the only one (a hint may follow)."""
    errors = [line for line in stderr.splitlines() if line.startswith("voicechat: error: ")]
    assert len(errors) == 1, stderr
    return errors[0].removeprefix("voicechat: error: ")


def talk_args(tmp_path: Path) -> list[str]:
    return ["--backend", "local", "--fast", "--input-file", str(question_wav(tmp_path))]


# ---- reading ----------------------------------------------------------------------------------


def _config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir(exist_ok=True)
    return directory


READERS = {
    # name: (prepare(tmp_path) -> (extra args, extra env), status, expected error text)
    "config file a FIFO": (
        lambda t: ([], {}, fifo(_config_dir(t) / "config.toml")),
        ExitStatus.CONFIG, "cannot read the config file {path}: " + FIFO),
    "config file /dev/zero": (
        lambda t: ([], {}, _link(_config_dir(t) / "config.toml", "/dev/zero")),
        ExitStatus.CONFIG, "cannot read the config file {path}: " + DEVICE),
    "config file of 2 MB": (
        lambda t: ([], {}, sparse(_config_dir(t) / "config.toml", 2 * files.MB)),
        ExitStatus.CONFIG, "cannot read the config file {path}: larger than the 1 MB voicechat reads (2 MB)"),
    "--config a FIFO": (
        lambda t: (["--config", str(t / "c.toml")], {}, fifo(t / "c.toml")),
        ExitStatus.USAGE, "cannot read the config file {path}: " + FIFO),
    ".env a FIFO": (
        lambda t: ([], {}, fifo(t / ".env")),
        ExitStatus.CONFIG, "{path}: cannot read it (" + FIFO + ")"),
    ".env of 2 MB": (
        lambda t: ([], {}, sparse(t / ".env", 2 * files.MB)),
        ExitStatus.CONFIG, "{path}: cannot read it (larger than the 1 MB voicechat reads (2 MB))"),
    "instructions_file = /dev/zero": (
        lambda t: ([], {}, _config(t, 'instructions_file = "/dev/zero"\n', "/dev/zero")),
        ExitStatus.CONFIG, "instructions_file in {config} /dev/zero: cannot read it (" + DEVICE + ")"),
    "instructions_file a FIFO": (
        lambda t: ([], {}, _config(t, 'instructions_file = "pipe.txt"\n', fifo(_config_dir(t) / "pipe.txt"))),
        ExitStatus.CONFIG, "instructions_file in {config} {path}: cannot read it (" + FIFO + ")"),
    "--instructions-file /dev/zero": (
        lambda t: (["--instructions-file", "/dev/zero"], {}, Path("/dev/zero")),
        ExitStatus.USAGE, "--instructions-file /dev/zero: cannot read it (" + DEVICE + ")"),
    "VOICECHAT_INSTRUCTIONS_FILE of 3 MB": (
        lambda t: ([], {"VOICECHAT_INSTRUCTIONS_FILE": str(t / "big.txt")}, sparse(t / "big.txt", 3 * files.MB)),
        ExitStatus.CONFIG,
        "VOICECHAT_INSTRUCTIONS_FILE in the environment {path}: cannot read it (larger than the 1 MB voicechat "
        "reads (3 MB))"),
    "--resume a FIFO": (
        lambda t: (["--resume", str(t / "old.jsonl")], {}, fifo(t / "old.jsonl")),
        ExitStatus.USAGE, "--resume {path}: " + FIFO),
    "--resume /dev/zero": (
        lambda t: (["--resume", "/dev/zero"], {}, Path("/dev/zero")),
        ExitStatus.USAGE, "--resume /dev/zero: " + DEVICE),
    "--input-file a FIFO": (
        lambda t: (["--input-file", str(t / "mic.wav")], {}, fifo(t / "mic.wav")),
        ExitStatus.USAGE, "--input-file {path}: " + FIFO),
}


def _link(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def _config(tmp_path: Path, text: str, path: str | Path) -> Path:
    (_config_dir(tmp_path) / "config.toml").write_text(text)
    return Path(path)


@pytest.mark.parametrize("case", list(READERS))
async def test_a_file_read_whole_must_be_a_regular_file_of_bounded_size(tmp_path: Path, case: str) -> None:
    prepare, status, expected = READERS[case]
    args, env, path = prepare(tmp_path)
    base = ["--backend", "local", "--fast"] if "--input-file" in args else talk_args(tmp_path)
    run = await talk_cli(None, tmp_path, *base, *args,
                         env=clean_env(tmp_path, OPENAI_API_KEY="sk-files", **env))
    assert run.status == status, run.stderr
    assert_no_noise(run.stderr)
    message = expected.format(path=path, config=_config_dir(tmp_path) / "config.toml")
    assert one_error(run.stderr) == message
    assert run.stdout == ""


@pytest.mark.parametrize("kind", ["FIFO", "/dev/zero", "12 MB"])
def test_a_picture_must_be_a_regular_file_of_at_most_10_mb(tmp_path: Path, kind: str) -> None:
    """``/image FILE``: the warning the command shows, instead of a hang or 10 GB of memory."""
    if kind == "FIFO":
        path, why = fifo(tmp_path / "photo.png"), FIFO
    elif kind == "/dev/zero":
        path, why = _link(tmp_path / "photo.png", "/dev/zero"), DEVICE
    else:
        path, why = sparse(tmp_path / "photo.png", 12 * files.MB), "larger than the 10 MB voicechat reads (12 MB)"
    with pytest.raises(ValueError) as caught:
        picture(path)
    assert str(caught.value) == f"cannot read {path}: {why}"


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(size=st.integers(0, 3000), limit=st.integers(0, 3000))
def test_read_limited_reads_a_file_iff_it_is_within_the_limit(tmp_path_factory, size: int, limit: int) -> None:
    path = tmp_path_factory.mktemp("r") / "f"
    path.write_bytes(os.urandom(size))
    if size <= limit:
        assert files.read_limited(path, limit) == path.read_bytes()
    else:
        with pytest.raises(OSError, match="larger than"):
            files.read_limited(path, limit)


# ---- writing ---------------------------------------------------------------------------------

WRITERS = ["--transcript", "--record", "--output-file", "--log-events"]


@pytest.mark.parametrize("flag", WRITERS)
async def test_an_output_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path, flag: str) -> None:
    path = fifo(tmp_path / ("out.wav" if flag in ("--record", "--output-file") else "out.jsonl"))
    run = await talk_cli(None, tmp_path, *talk_args(tmp_path), flag, str(path))
    assert run.status == ExitStatus.USAGE, run.stderr
    assert_no_noise(run.stderr)
    assert one_error(run.stderr) == f"{flag} {path}: {FIFO}"
    assert run.stderr.rstrip().endswith("hint: name a regular file")


@pytest.mark.parametrize("where", ["config file", "environment"])
async def test_an_output_that_is_a_fifo_from_the_config_or_environment_is_a_config_error(
        tmp_path: Path, where: str) -> None:
    path = fifo(tmp_path / "chat.md")
    env = {"VOICECHAT_TRANSCRIPT": str(path)} if where == "environment" else {}
    if where == "config file":
        (_config_dir(tmp_path) / "config.toml").write_text(f'transcript = "{path}"\n')
    run = await talk_cli(None, tmp_path, *talk_args(tmp_path), env=clean_env(tmp_path, **env))
    assert run.status == ExitStatus.CONFIG, run.stderr
    subject = "VOICECHAT_TRANSCRIPT in the environment" if env else f"transcript in {_config_dir(tmp_path)}/config.toml"
    assert one_error(run.stderr) == f"{subject} {path}: {FIFO}"


async def test_dev_null_is_a_fine_output(tmp_path: Path) -> None:
    run = await talk_cli(None, tmp_path, *talk_args(tmp_path), "--transcript", os.devnull, "--log-events", os.devnull,
                         "--output-file", os.devnull)
    assert run.status == 0, run.stderr
    assert_no_noise(run.stderr)
    assert run.stdout.startswith("you: ")


async def test_config_init_refuses_a_fifo(tmp_path: Path) -> None:
    import asyncio
    import subprocess

    path = fifo(tmp_path / "config.toml")
    proc = await asyncio.create_subprocess_exec(
        *VOICECHAT, "config", "init", "--config", str(path), "--force", cwd=tmp_path, env=clean_env(tmp_path),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitStatus.CONFIG, err
    assert one_error(err.decode()) == f"cannot write {path}: {FIFO}"


# ---- base URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:99999/v1", "is not a valid URL (Port out of range 0-65535)"),
    ("https://api.openai.com:-1/v1", "is not a valid URL (Port could not be cast to integer value as '-1')"),
    ("https://api.openai.com:http/v1", "is not a valid URL (Port could not be cast to integer value as 'http')"),
    ("https://[::1/v1", "is not a valid URL (Invalid IPv6 URL)"),
    ("https://api.openai.com:0/v1", "has port 0, which cannot be connected to"),
    ("ftp://api.openai.com/v1", "must start with https:// (or http:// for a server on this machine)"),
    ("https:///v1", "has no host name"),
])
async def test_a_base_url_voicechat_cannot_connect_to_is_one_line(tmp_path: Path, url: str, problem: str) -> None:
    run = await talk_cli(None, tmp_path, "--base-url", url, "--fast", "--input-file", str(question_wav(tmp_path)))
    assert run.status == ExitStatus.USAGE, run.stderr
    assert_no_noise(run.stderr)
    assert one_error(run.stderr) == f"--base-url {problem}"
    env_run = await talk_cli(None, tmp_path, "--fast", "--input-file", str(question_wav(tmp_path)),
                             env=clean_env(tmp_path, OPENAI_API_KEY="sk-url", OPENAI_BASE_URL=url))
    assert env_run.status == ExitStatus.CONFIG, env_run.stderr
    assert one_error(env_run.stderr) == f"OPENAI_BASE_URL in the environment {problem}"


urls = st.one_of(
    st.text(max_size=40),
    st.builds(lambda scheme, host, port, path: f"{scheme}://{host}:{port}{path}",
              st.sampled_from(["http", "https", "ws", "wss", "ftp", "HTTPS", ""]),
              st.sampled_from(["127.0.0.1", "localhost", "[::1]", "[::1", "api.openai.com", "", "a b", "[fe80::1%eth0]"]),
              st.one_of(st.integers(-(10**6), 10**6).map(str), st.text(max_size=6)),
              st.sampled_from(["", "/v1", "/v1?x=1", "#f"])),
)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(url=urls, flag=st.booleans())
def test_any_base_url_is_accepted_or_refused_in_one_clear_error(url: str, flag: bool) -> None:
    """Whatever the URL (any port, any text), settings refuse it with the right kind of error,
    or the endpoint URL can be built from it; nothing else (no ValueError) escapes."""
    try:
        s = resolve(flags={"base_url": url} if flag else {}, environ={"OPENAI_API_KEY": "sk-x"} | (
            {} if flag else {"OPENAI_BASE_URL": url}))
    except VoicechatError as exc:
        assert isinstance(exc, UsageError if flag else ConfigError), exc
        return
    with contextlib.suppress(UsageError):  # plain ws:// to a host that is not loopback
        realtime_url(s.base_url, s.model, azure=s.azure)
