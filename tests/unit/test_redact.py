"""Credentials as a class: which keys are refused, and the scrubber that knows every secret.

Keys and secrets are generated (Hypothesis); the forms a scrubbed text is searched for come
from `canary_helpers.forms`, written independently of ``voicechat.redact``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.helpers.canary import canary, forms, leaks
from voicechat import keys
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.cli import app
from voicechat.config import resolve
from voicechat.effects import Turn
from voicechat.errors import ConfigError, ExitStatus
from voicechat.eventlog import MAX_STRING, EventLog
from voicechat.redact import (
    ELIDED,
    KEY_HINT,
    SECRETS,
    Scrubber,
    ScrubLogRecords,
    has_userinfo,
    key_problem,
    mask_url,
    remember,
    remember_url,
)
from voicechat.transcript import TOOL_RESULT_CHARS, FileSink, StreamSink

PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))  # what a key may hold
PROBLEM = re.compile(r"contains (a line break|a carriage return|a tab|a space|a control character|"
                     r"a non-ASCII character)((, | and )(a line break|a carriage return|a tab|a space|"
                     r"a control character|a non-ASCII character))*( at its (start|end))?")

good_keys = st.text(alphabet=PRINTABLE, min_size=1, max_size=80)
bad_chars = st.one_of(st.sampled_from("\n\r\t \x00\x07\x1b\x7f\x85\xa0é—\u2028😀"),
                      st.characters(blacklist_categories=("Cs",), blacklist_characters=PRINTABLE))


@st.composite
def bad_keys(draw: st.DrawFn) -> str:
    """A key with at least one character an HTTP header cannot carry as it is, anywhere."""
    key = list(draw(st.text(alphabet=PRINTABLE, min_size=0, max_size=60)))
    for _ in range(draw(st.integers(1, 3))):
        key.insert(draw(st.integers(0, len(key))), draw(bad_chars))
    return "".join(key)


# ---- which keys are refused ------------------------------------------------------------------


@given(good_keys)
def test_a_key_of_printable_ascii_is_accepted(key: str) -> None:
    assert key_problem(key) is None
    assert resolve(flags={}, environ={"OPENAI_API_KEY": key}).api_key == key


@given(bad_keys(), st.sampled_from(["environment", ".env"]))
@example("sk-" + "a" * 40 + "\n", "environment")
@example("sk-abc\r\ndef", ".env")
@example("sk-\u2014abc", "environment")
def test_a_key_a_header_cannot_carry_is_a_config_error_that_shows_none_of_it(key: str, where: str) -> None:
    problem = key_problem(key)
    assert problem is not None and PROBLEM.fullmatch(problem), problem
    with pytest.raises(ConfigError) as caught:
        if where == "environment":
            resolve(flags={}, environ={"OPENAI_API_KEY": key})
        else:
            resolve(flags={}, environ={}, dotenv={"OPENAI_API_KEY": key})
    error = caught.value
    assert error.status == ExitStatus.CONFIG
    said = f"OPENAI_API_KEY in {'the environment' if where == 'environment' else '.env'} {problem}"
    assert error.message == said and error.hint == KEY_HINT  # a fixed vocabulary: nothing of the key


def test_the_problem_says_where_when_it_helps() -> None:
    assert key_problem("sk-abcdef\n") == "contains a line break at its end"
    assert key_problem(" sk-abcdef") == "contains a space at its start"
    assert key_problem("sk-abc\tdef") == "contains a tab"
    assert key_problem("sk-\x1b[2Jabc") == "contains a control character"
    assert key_problem("sk-é\r\nabc") == "contains a non-ASCII character, a carriage return and a line break"
    assert key_problem("sk-abc é\r\n") == ("contains a space, a non-ASCII character, a carriage return and a line break "
                                             "at its end")


def test_the_azure_key_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^AZURE_OPENAI_API_KEY in the environment contains a line break at its end"):
        resolve(flags={"azure": True, "base_url": "https://r.openai.azure.com"},
                environ={"AZURE_OPENAI_API_KEY": "0123456789abcdef\n"})


# ---- the scrubber ----------------------------------------------------------------------------


long_secrets = st.text(alphabet=PRINTABLE, min_size=16, max_size=64)
around = st.text(max_size=40)


def encoded(secret: str, how: str) -> str:
    if how == "json":
        return json.dumps({"message": f"bad key {secret}"})
    if how == "percent":
        return "https://x.test/?key=" + quote(secret, safe="")
    if how == "plus":
        return "key=" + quote_plus(secret)
    if how == "repr":
        return repr({"key": secret})
    if how == "bytes":
        return repr(secret.encode())
    return secret


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(long_secrets, around, around, st.sampled_from(["raw", "json", "percent", "plus", "repr", "bytes"]))
def test_a_known_secret_is_elided_in_every_form(secret: str, before: str, after: str, how: str) -> None:
    scrubber = Scrubber([secret])
    text = scrubber.scrub(before + encoded(secret, how) + after)
    assert leaks(secret, text, text=False) == [], text
    assert ELIDED in text


@settings(max_examples=200)
@given(long_secrets, st.binary(max_size=20), st.binary(max_size=20), st.booleans(), st.booleans())
def test_a_known_secret_is_elided_from_base64_at_any_alignment(
        secret: str, before: bytes, after: bytes, urlsafe: bool, auth: bool) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    data = (b"user:" if auth else before) + secret.encode() + after  # auth: a Basic header's credentials
    text = "Basic " + encode(data).decode()
    scrubbed = Scrubber([secret]).scrub(text)
    assert leaks(secret, scrubbed, text=False) == []
    assert ELIDED in scrubbed


@settings(max_examples=200)
@given(long_secrets, st.text(max_size=200))
def test_text_without_the_secret_is_left_alone(secret: str, text: str) -> None:
    assume(not any(form in text for form in forms(secret).values()))
    assert Scrubber([secret]).scrub(text) == text


def test_short_secrets_are_whole_tokens_and_tiny_values_are_no_secrets() -> None:
    scrubber = Scrubber(["hunter2!x", "local", "k", None, ""])
    assert scrubber.scrub("pw hunter2!x, again:hunter2!x.") == f"pw {ELIDED}, again:{ELIDED}."
    assert scrubber.scrub("xhunter2!xy hunter2!x9") == "xhunter2!xy hunter2!x9"  # inside other words: not it
    assert scrubber.scrub("a local word, locally") == "a local word, locally"  # never a secret
    assert "local" not in scrubber and not Scrubber(["local"])


def test_every_string_and_key_of_a_value_is_scrubbed() -> None:
    secret = canary()
    value = {secret: [f"a {secret}", 1, None, {"k": (secret,)}]}
    assert Scrubber([secret]).scrub_value(value) == {ELIDED: [f"a {ELIDED}", 1, None, {"k": [ELIDED]}]}


def test_credentials_in_a_base_url_are_remembered() -> None:
    password, token = canary("password"), canary("azure")
    remember_url(f"https://user:{password}@h.test/v1?api-key={token}&model=gpt-realtime-2.1")
    assert SECRETS.scrub(f"{password} {token} gpt-realtime-2.1") == f"{ELIDED} {ELIDED} gpt-realtime-2.1"


def test_url_userinfo_helpers() -> None:
    assert has_userinfo("https://user:pw@host/v1") and has_userinfo("https://@host") and has_userinfo("http://u@h")
    assert not has_userinfo("https://host/v1?next=a@b") and not has_userinfo("https://host/a@b")
    assert mask_url("https://user:pw@host:8443/v1") == "https://…@host:8443/v1"
    assert mask_url("https://host/v1") == "https://host/v1"


# ---- where the scrubber is applied -----------------------------------------------------------


def test_debug_logging_scrubs_messages_tracebacks_and_frames_before_they_are_cut() -> None:
    from websockets.frames import Frame, Opcode

    secret = canary()
    remember(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubLogRecords())
    logger = logging.getLogger("voicechat.test_redact")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        # websockets shows a long frame as its start and its end: the key sits across the cut.
        payload = json.dumps({"type": "error", "error": {"message": "x" * 30 + secret + "y" * 10}})
        logger.debug("< %s", Frame(Opcode.TEXT, payload.encode()))
        logger.debug("bytes %r", payload.encode())
        logger.warning("key %s", secret)
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    log = stream.getvalue()
    assert "TEXT" in log and "Traceback" in log and log.count(ELIDED) >= 4
    assert leaks(secret, log) == []


def test_transcripts_scrub_a_turn_before_cutting_it(tmp_path: Path) -> None:
    secret = canary()
    remember(secret)
    # The key straddles the point where a tool result is cut for a transcript line.
    result = "r" * (TOOL_RESULT_CHARS - 20) + secret + " and more"
    turns = [Turn("user", f"my key is {secret}", "i1", 0.0, 1.0),
             Turn("tool", 'lookup({"q": 1})', "i2", 1.0, 2.0, kind="function_call", result=result),
             Turn("assistant", "fine", "i3", 2.0, 3.0, note=f"saw {secret}")]
    out = io.StringIO()
    sinks = [StreamSink(out), *(FileSink(tmp_path / f"chat{ext}") for ext in (".md", ".txt", ".jsonl"))]
    for turn in turns:
        for sink in sinks:
            sink.write(turn)
    for sink in sinks:
        sink.close()
    texts = [out.getvalue(), *(p.read_text() for p in tmp_path.iterdir())]
    for text in texts:
        assert leaks(secret, text) == [], text
    assert f"you: my key is {ELIDED}" in out.getvalue()


def test_status_notices_and_the_panel_views_are_scrubbed() -> None:
    from voicechat.ui.snapshot import TurnView
    from voicechat.ui.view import View

    secret = canary()
    remember(secret)
    err = io.StringIO()
    Output(status=err).notice("error", f"server error: bad key {secret}")
    assert err.getvalue() == f"voicechat: error: server error: bad key {ELIDED}\n"
    view = TurnView.from_turn(Turn("tool", f'f({{"k": "{secret}"}})', "i", 0, 1, kind="function_call",
                                   result=secret, note=secret))
    assert secret not in repr(view) and view.tool_args == f'{{"k": "{ELIDED}"}}'
    panel = View(resolve(flags={}, environ={}), "off")
    panel.notice(f"the key {secret}")
    assert secret not in repr(panel.snapshot_idle())


def test_the_event_log_scrubs_before_serialising_and_cutting(tmp_path: Path) -> None:
    secret = 'sk-canary"quoted\\slash/' + "Zx9Qw" * 4  # JSON escapes it: the escaped form must go too
    path = tmp_path / "events.jsonl"
    log = EventLog(path, secrets=(secret,))
    log.sent({"type": "session.update", "session": {"instructions": f"key {secret}", secret: 1}})
    log.received(json.dumps({"type": "error", "error": {"message": "m" * (MAX_STRING - 5) + secret}}))
    log.received("not json " + "n" * 190 + secret)  # cut at 200 characters, across the key
    log.note("failed", error=f"invalid Authorization header: Bearer {secret}")
    log.close()
    text = path.read_text()
    assert leaks(secret, text) == [] and leaks(secret[:-1], text) == [] and text.count(ELIDED) >= 3  # two more are cut short


async def test_the_local_backend_never_elides_its_placeholder(tmp_path: Path) -> None:
    # issue 14 item 12: "local" was taken for a secret and every word "local" became <elided>.
    settings = resolve(flags={"backend": "local", "log_events": tmp_path / "events.jsonl", "transcribe": False},
                       environ={})

    async def typed() -> object:
        yield keys.Submit("is this a local call")

    mic = np.zeros(24_000 * 3, np.int16)
    out = io.StringIO()
    await asyncio.wait_for(talk(settings, Output(sinks=[StreamSink(out)], status=io.StringIO()),
                                audio=FileAudio(mic, None, speed=4.0), actions=typed()), 30)
    log = (tmp_path / "events.jsonl").read_text()
    assert "is this a local call" in log and "local server" in log and ELIDED not in log
    assert "you: is this a local call" in out.getvalue()
    assert "local" not in SECRETS


# ---- .env and the config file: named, never shown ---------------------------------------------


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=30).filter(lambda b: not _utf8(b)), st.sampled_from(["talk", "show", "doctor"]))
def test_a_dotenv_that_is_not_utf8_is_one_config_error_line(tmp_path_factory: pytest.TempPathFactory,
                                                              junk: bytes, command: str) -> None:
    where = tmp_path_factory.mktemp("dotenv")
    key = canary()
    head = f"OPENAI_API_KEY={key}\n".encode()
    (where / ".env").write_bytes(head + junk)
    at = len(head) + _bad_at(junk)
    args = {"talk": ["talk", "--base-url", "http://127.0.0.1:9/v1"], "show": ["config", "show"],
            "doctor": ["doctor", "--no-audio", "--base-url", "http://127.0.0.1:9/v1"]}[command]
    cwd = Path.cwd()
    os.chdir(where)
    try:
        result = CliRunner().invoke(app, args, env={"VOICECHAT_CONFIG_DIR": str(where), "OPENAI_API_KEY": ""})
    finally:
        os.chdir(cwd)
    assert result.exit_code == ExitStatus.CONFIG, result.output
    assert result.output.splitlines()[0] == f"voicechat: error: {where / '.env'}: not valid UTF-8 at byte {at}"
    assert leaks(key, result.output) == [] and "Traceback" not in result.output


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bad_at(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    raise AssertionError("valid UTF-8")


def test_a_config_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b'voice = "caf\xe9"\n')
    result = CliRunner().invoke(app, ["config", "show"], env={"VOICECHAT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == ExitStatus.CONFIG
    assert result.output.splitlines()[0] == (f"voicechat: error: cannot read the config file {tmp_path / 'config.toml'}: "
                                             "not valid UTF-8 at byte 12")


def test_config_show_masks_a_password_it_is_shown() -> None:
    from voicechat.cli import _shown

    assert _shown("base_url", "https://user:pw-secret-1@host/v1") == "https://…@host/v1"


def test_an_internal_error_is_one_line_without_the_content_of_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicechat.cli import sources

    secret = canary()
    remember(secret)

    def broken(*args: object, **kwargs: object) -> None:
        raise UnicodeDecodeError("utf-8", b"OPENAI_API_KEY=" + secret.encode() + b"\xff", 10, 11, "invalid")

    monkeypatch.setattr(sources, "load_settings", broken)
    result = CliRunner().invoke(app, ["talk"], env={"OPENAI_API_KEY": ""})
    assert result.exit_code == ExitStatus.ERROR
    assert result.output.splitlines()[0] == ("voicechat: internal error: UnicodeDecodeError: 'utf-8' codec can't "
                                             "decode byte 0x5f in position 10: invalid")
    assert leaks(secret, result.output) == [] and "OPENAI_API_KEY=" not in result.output

