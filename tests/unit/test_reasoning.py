"""--reasoning: the effort reaches session.reasoning, is refused with models that do not reason,
is validated by the SDK's client-event model, and is shown on the panel header and in config show."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter
from typer.testing import CliRunner

from voicechat import config
from voicechat.config import ConfigFile, resolve
from voicechat.errors import ConfigError, UsageError
from voicechat.protocol import client
from voicechat.protocol.constants import REASONING_EFFORTS, known_not_to_reason
from voicechat.ui.snapshot import Snapshot
from voicechat.ui.view import View

openai_rt = pytest.importorskip("openai.types.realtime")
CLIENT_EVENT = TypeAdapter(openai_rt.RealtimeClientEvent)


@pytest.mark.parametrize("effort", REASONING_EFFORTS)
def test_each_effort_is_a_valid_session_update(effort: str) -> None:
    s = resolve(flags={"reasoning": effort}, environ={})
    session = s.session_config().to_wire()
    assert session["reasoning"] == {"effort": effort}
    event = CLIENT_EVENT.validate_python(client.session_update(s.session_config(), event_id="e1"))
    assert event.session.reasoning.effort == effort


def test_unset_leaves_the_model_default() -> None:
    assert "reasoning" not in resolve(flags={}, environ={}).session_config().to_wire()


def test_from_environment_and_profile() -> None:
    s = resolve(flags={}, environ={"VOICECHAT_REASONING": "high"})
    assert s.reasoning == "high" and s.source("reasoning") == "environment (VOICECHAT_REASONING)"
    cfg = ConfigFile(path=Path("/home/u/.config/voicechat/config.toml"), values={"reasoning": "low"}, profiles={"deep": {"reasoning": "xhigh"}})
    assert resolve(flags={"profile": "deep"}, environ={}, config_file=cfg).reasoning == "xhigh"
    with pytest.raises(ConfigError, match=r"VOICECHAT_REASONING.*must be one of minimal, low"):
        resolve(flags={}, environ={"VOICECHAT_REASONING": "max"})


@pytest.mark.parametrize("model", ["gpt-realtime", "gpt-realtime-1.5", "gpt-realtime-mini",
                                   "gpt-realtime-2025-08-28", "gpt-realtime-mini-2025-12-15"])
def test_a_flag_with_a_model_that_does_not_reason_is_refused_with_a_hint(model: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve(flags={"reasoning": "low", "model": model}, environ={})
    text = str(caught.value) + str(getattr(caught.value, "hint", ""))
    assert f"--reasoning has no effect: {model} does not reason" in text
    assert "gpt-realtime-2.1" in text


@pytest.mark.parametrize("model", ["gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini",
                                   "gpt-realtime-2.1-2026-03-01", "my-azure-deployment"])
def test_reasoning_models_and_unknown_names_take_it(model: str) -> None:
    assert not known_not_to_reason(model)
    s = resolve(flags={"reasoning": "medium", "model": model}, environ={})
    assert s.session_config().to_wire()["reasoning"] == {"effort": "medium"}


def test_a_config_value_with_such_a_model_is_kept_unused_and_not_sent() -> None:
    s = resolve(flags={"model": "gpt-realtime-mini"}, environ={}, file_values={"reasoning": "high"})
    assert "gpt-realtime-mini does not reason" in config.unused(s)["reasoning"]
    assert "reasoning" not in s.session_config().to_wire()


def test_the_panel_header_shows_the_effort() -> None:
    shown = View(resolve(flags={"reasoning": "high"}, environ={}), "off").header
    assert shown.reasoning == "high"
    assert View(resolve(flags={}, environ={}), "off").header.reasoning == ""
    unused = resolve(flags={"model": "gpt-realtime-mini"}, environ={}, file_values={"reasoning": "high"})
    assert View(unused, "off").header.reasoning == ""
    from voicechat.ui.lines import header_line
    assert "reasoning high" in header_line(Snapshot(header=shown).header).plain


def test_config_show_lists_it(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOICECHAT_CONFIG_DIR", str(tmp_path / "cfg"))
    for var in config.ENV_KEYS:
        monkeypatch.delenv(var, raising=False)
    from voicechat.cli import app
    result = CliRunner().invoke(app, ["config", "show"], env={"VOICECHAT_REASONING": "minimal"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("reasoning "))
    assert "minimal" in line and "VOICECHAT_REASONING" in line
