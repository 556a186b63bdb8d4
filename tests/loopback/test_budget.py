"""--max-cost and --max-minutes: the pure budget, the settings, and whole conversations that hit them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers.cli import assert_no_noise
from tests.helpers.cli import talk_cli as cli_talk
from tests.helpers.server import speech_like
from voicechat import effects as fx
from voicechat.app import cost_line
from voicechat.audio.wav import write_wav
from voicechat.budget import GRACE_S, Budget
from voicechat.cli import app
from voicechat.config import resolve
from voicechat.errors import ConfigError, UsageError
from voicechat.pricing import ModelPrice, Price
from voicechat.protocol.events import Usage
from voicechat.server import LocalServer, ScriptedBrain, ScriptedReply, ServerOptions

PRICED = "gpt-realtime-2.1-mini"  # $0.60 text in / $2.40 text out per million tokens


def warnings(notices: list[fx.Notice]) -> list[str]:
    return [n.message for n in notices if n.level == "warning"]


# ---- the budget, with a fake clock -----------------------------------------------------------


def test_minutes_warn_at_80_percent_once_then_stop() -> None:
    b = Budget("m", max_minutes=5, started=100.0)
    assert b.check(100.0 + 3 * 60) == [] and b.reached is None
    first = warnings(b.check(100.0 + 4 * 60))
    assert first == ["80% of --max-minutes 5 used: 1:00 left"]
    assert b.check(100.0 + 4.5 * 60) == []  # once
    assert b.should_stop(100.0 + 4.5 * 60, quiet=True) is False  # not reached yet
    reached = warnings(b.check(100.0 + 5 * 60))
    assert b.reached == "--max-minutes 5 reached"
    assert reached == ["--max-minutes 5 reached: the microphone is off; ending after this reply"]
    assert b.check(100.0 + 6 * 60) == []  # said once


def test_at_the_limit_the_reply_may_finish_within_the_grace() -> None:
    b = Budget("m", max_minutes=1, started=0.0)
    b.check(60.0)
    assert b.should_stop(60.0, quiet=True), "nothing being said: stop at once"
    assert not b.should_stop(60.0 + GRACE_S - 0.1, quiet=False), "a reply is playing: let it finish"
    assert b.should_stop(60.0 + GRACE_S, quiet=False), "but not forever"


def test_cost_from_usage_of_each_response() -> None:
    b = Budget(PRICED, max_cost=0.01, started=0.0)
    assert b.enforceable and b.active and b.start_notices() == []
    # 2,000 text tokens out at $2.40 per million: $0.0048 each time.
    b.add(Usage(output_tokens=2000, output_text=2000))
    assert b.check(1.0) == [] and b.cost == pytest.approx(0.0048)
    b.add(None)  # a response.done without usage changes nothing
    b.add(Usage(output_tokens=1500, output_text=1500))  # $0.0084: past 80 %
    assert warnings(b.check(2.0)) == ["80% of --max-cost 0.01 used (about $0.0084)"]
    b.add(Usage(output_tokens=1000, output_text=1000))  # $0.0108
    b.check(3.0)
    assert b.reached == "--max-cost 0.01 reached (about $0.0108)"


def test_a_model_without_a_price_cannot_be_held_to_a_cost() -> None:
    # (validation refuses such a start; the budget itself still never guesses)
    b = Budget("my-deployment", max_cost=1.0, started=0.0)
    assert not b.enforceable and not b.active
    assert warnings(b.start_notices()) == [
        "--max-cost cannot be enforced: no price is known for model my-deployment"]
    b.add(Usage(input_tokens=10**9, output_tokens=10**9))
    assert b.check(10**6) == [] and b.reached is None
    # --max-minutes still holds with such a model.
    both = Budget("my-deployment", max_cost=1.0, max_minutes=1, started=0.0)
    assert both.active
    both.check(61.0)
    assert both.reached == "--max-minutes 1 reached"


def test_the_default_model_is_held_to_its_family_estimate_and_says_so() -> None:
    b = Budget("gpt-realtime-2.1", max_cost=0.01, started=0.0)
    assert b.enforceable and b.active
    assert [(n.level, n.message) for n in b.start_notices()] == [
        ("info", "--max-cost: gpt-realtime-2.1 has no published price; its cost is estimated at gpt-realtime-2's")]
    b.add(Usage(output_tokens=350, output_text=350))  # 350 x $24 per million (gpt-realtime-2): $0.0084
    assert warnings(b.check(1.0)) == ["80% of --max-cost 0.01 used (about $0.0084, estimated)"]
    b.add(Usage(output_tokens=100, output_text=100))  # $0.0108
    b.check(2.0)
    assert b.reached == "--max-cost 0.01 reached (about $0.0108, estimated)"


def test_cost_command_labels_an_estimate() -> None:
    usage = Usage(output_tokens=1000, output_text=1000)
    assert cost_line("gpt-realtime-2.1", usage) == "0 tokens in, 1,000 out, about $0.0240 (estimated)"
    assert cost_line("gpt-realtime-2", usage) == "0 tokens in, 1,000 out, about $0.0240"
    assert cost_line("my-deployment", usage) == "0 tokens in, 1,000 out (no price known for my-deployment)"


def test_a_config_price_holds_any_model_to_a_cost() -> None:
    rows = (ModelPrice("my-deployment", Price(0, 0, 10, 0, 0, 0)),)
    b = Budget("my-deployment", max_cost=0.01, started=0.0, prices=rows)
    assert b.enforceable and b.start_notices() == []
    b.add(Usage(output_tokens=1000, output_text=1000))
    b.check(1.0)
    assert b.reached == "--max-cost 0.01 reached (about $0.0100)"


def test_no_limits_no_notices() -> None:
    b = Budget(PRICED, started=0.0)
    assert not b.active and b.start_notices() == [] and b.check(10**9) == []


# ---- settings: flags, config keys, environment -------------------------------------------------


@pytest.mark.parametrize("key", ["max_cost", "max_minutes"])
@pytest.mark.parametrize("value", [0, -1, -0.5, float("inf"), float("nan")])
def test_budgets_must_be_positive(key: str, value: float) -> None:
    flag = "--" + key.replace("_", "-")
    with pytest.raises(UsageError, match=f"^{flag} must be a positive number"):
        resolve(flags={key: value}, environ={})
    with pytest.raises(ConfigError, match=f"^{key} in the config file must be a positive number"):
        resolve(flags={}, environ={}, file_values={key: value})


def test_budgets_from_each_source() -> None:
    s = resolve(flags={}, environ={"VOICECHAT_MAX_COST": "0.25", "VOICECHAT_MAX_MINUTES": "10"})
    assert (s.max_cost, s.max_minutes) == (0.25, 10.0)
    s = resolve(flags={"max_minutes": 2.5}, environ={}, file_values={"max_cost": 1, "max_minutes": 30})
    assert (s.max_cost, s.max_minutes) == (1, 2.5) and s.source("max_minutes") == "flag"
    with pytest.raises(ConfigError, match="VOICECHAT_MAX_MINUTES in the environment must be a number"):
        resolve(flags={}, environ={"VOICECHAT_MAX_MINUTES": "soon"})


@pytest.mark.parametrize("args, flag", [(["--max-cost", "0"], "--max-cost"), (["--max-minutes", "-3"], "--max-minutes"),
                                        (["--max-minutes", "inf"], "--max-minutes")])
def test_cli_exit_2_names_the_flag(args: list[str], flag: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VOICECHAT_CONFIG_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["talk", "--backend", "local", *args])
    assert result.exit_code == 2, result.output
    assert f"voicechat: error: {flag} must be a positive number" in result.output
    assert "Traceback" not in result.output


# ---- whole conversations that reach a limit ----------------------------------------------------


async def talk_cli(server: LocalServer, tmp_path: Path, *args: str) -> tuple[int, str, str, float]:
    run = await cli_talk(server, tmp_path, *args)
    assert_no_noise(run.stderr)
    return run.status, run.stdout, run.stderr, run.seconds


def two_turns(tmp_path: Path, gap_s: float = 8.0) -> Path:
    """A question, a long pause, a second question: a budget stop shows as a missing second turn."""
    rate = 24000
    quiet = np.zeros(int(gap_s * rate), dtype=np.int16)
    audio = np.concatenate([quiet[:rate // 4], speech_like(1.0), quiet, speech_like(1.0, seed=2), quiet])
    path = tmp_path / "two.wav"
    write_wav(path, audio, rate)
    return path


async def test_max_minutes_lets_the_reply_finish_then_stops(tmp_path: Path) -> None:
    # The reply lasts 4 s (played in real time); the limit (2.4 s) falls while it plays.
    brain = ScriptedBrain([ScriptedReply("a long answer that takes a while to say", audio_ms=4000)])
    chat = tmp_path / "chat.jsonl"
    async with LocalServer(ServerOptions(brain=brain, recognizer="none", speed=4.0, seed=5)) as srv:
        status, out, err, seconds = await talk_cli(srv, tmp_path, "--input-file", str(two_turns(tmp_path)),
                                                   "--silence-duration-ms", "300", "--max-minutes", "0.04",
                                                   "--transcript", str(chat))
    assert status == 0, err
    assert "Traceback" not in err
    assert err.rstrip().endswith("voicechat: stopped: --max-minutes 0.04 reached"), err
    assert "voicechat: warning: 80% of --max-minutes 0.04 used" in err, err
    assert "voicechat: warning: --max-minutes 0.04 reached: the microphone is off" in err, err
    # The one turn that happened is complete: the reply played to its end, nothing cut.
    records = [json.loads(line) for line in chat.read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant"], records
    assert records[1]["text"] == "a long answer that takes a while to say" and not records[1]["interrupted"]
    assert out.splitlines()[-1] == "assistant: a long answer that takes a while to say"
    assert seconds < 2.4 + GRACE_S, "the file's second question (at ~9 s) was never waited for"
    # The microphone stopped at the limit: no second user turn reached the server.
    assert sum(e["type"] == "input_audio_buffer.committed" for e in srv.emitted) == 1
    assert list(srv.closes) == [(1000, "")]


async def test_max_cost_stops_after_the_reply_that_reached_it(tmp_path: Path) -> None:
    chat = tmp_path / "chat.md"
    async with LocalServer(ServerOptions(recognizer="none", speed=8.0, seed=6)) as srv:
        status, out, err, _ = await talk_cli(srv, tmp_path, "--model", PRICED, "--fast", "--input-file",
                                             str(two_turns(tmp_path)), "--silence-duration-ms", "300",
                                             "--max-cost", "0.00001", "--transcript", str(chat))
    assert status == 0, err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("voicechat: stopped: --max-cost 0.00001 reached (about $0.0"), err
    assert [line.split(":")[0] for line in out.splitlines()] == ["you", "assistant"], out
    reply = out.splitlines()[1].removeprefix("assistant: ")
    assert chat.read_text().count(reply) == 1, "the transcript file has the reply, once"
    responses = [e for e in srv.emitted if e["type"] == "response.done"]
    assert len(responses) == 1, "the second question was never asked"
    assert list(srv.closes) == [(1000, "")]


async def test_max_cost_holds_the_default_model_at_its_estimate(tmp_path: Path) -> None:
    async with LocalServer(ServerOptions(recognizer="none", speed=8.0, seed=7)) as srv:
        status, out, err, _ = await talk_cli(srv, tmp_path, "--fast", "--input-file",
                                             str(two_turns(tmp_path, gap_s=3.0)), "--silence-duration-ms", "300",
                                             "--max-cost", "0.00001")
    assert status == 0, err
    assert err.splitlines()[0] == ("voicechat: --max-cost: gpt-realtime-2.1 has no published price; "
                                   "its cost is estimated at gpt-realtime-2's"), err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("voicechat: stopped: --max-cost 0.00001 reached (about $0.0"), err
    assert last.endswith(", estimated)"), err
    assert [line.split(":")[0] for line in out.splitlines()] == ["you", "assistant"], out
    assert sum(e["type"] == "response.done" for e in srv.emitted) == 1


async def test_max_cost_on_a_model_with_no_price_refuses_to_start(tmp_path: Path) -> None:
    async with LocalServer(ServerOptions(recognizer="none", speed=8.0, seed=7)) as srv:
        run = await cli_talk(srv, tmp_path, "--model", "my-deployment", "--fast", "--input-file",
                             str(two_turns(tmp_path, gap_s=1.0)), "--max-cost", "0.5")
        assert run.status == 2, run.stderr
        assert run.stderr.splitlines() == [
            "voicechat: error: --max-cost cannot be held: no price is known for model 'my-deployment'",
            "  hint: give it one in the config file: [prices.\"my-deployment\"] (see config.example.toml), "
            "or use --max-minutes"], run.stderr
        assert srv.connections == 0, "refused before connecting"
        # A config file's price is the model's own: no estimate, and no "(estimated)" anywhere.
        (tmp_path / "config.toml").write_text(
            '[prices."gpt-realtime-2.1"]\ntext_in = 4\ntext_cached = 0.4\ntext_out = 24\n'
            "audio_in = 32\naudio_cached = 0.4\naudio_out = 64\n")
        run = await cli_talk(srv, tmp_path, "--fast", "--input-file",
                             str(two_turns(tmp_path, gap_s=3.0)), "--silence-duration-ms", "300",
                             "--max-cost", "0.00001", "--config", str(tmp_path / "config.toml"))
    assert run.status == 0, run.stderr
    last = run.stderr.rstrip().splitlines()[-1]
    assert last.startswith("voicechat: stopped: --max-cost 0.00001 reached (about $0.0"), run.stderr
    assert "estimated" not in run.stderr
