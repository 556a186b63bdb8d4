"""[[mcp]] tables: parsed with errors naming the file and key, header values only from the
environment or .env (a literal refused without being shown), sent as GA ``type: "mcp"`` tools
that the SDK's client-event model accepts, remembered as secrets, masked in config show."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter
from typer.testing import CliRunner

from voicechat import config, redact
from voicechat.config import ConfigFile, parse_config_file, resolve
from voicechat.errors import ConfigError
from voicechat.protocol import client
from voicechat.tools.mcp import McpServer, parse_mcp

openai_rt = pytest.importorskip("openai.types.realtime")
CLIENT_EVENT = TypeAdapter(openai_rt.RealtimeClientEvent)

PATH = Path("/home/u/.config/voicechat/config.toml")
TOKEN = "mcp-header-token-5f2d9c0a7e41"
DOCS = """
[[mcp]]
label = "docs"
url = "https://mcp.example.com/mcp"
allowed_tools = ["search"]
require_approval = "never"
headers = { Authorization = "env:DOCS_TOKEN" }
"""


def parsed(text: str) -> ConfigFile:
    return parse_config_file(PATH, text)


def mcp_tools(settings: config.Settings) -> list[dict]:
    return [t for t in settings.session_config().to_wire().get("tools", []) if t["type"] == "mcp"]


def test_a_server_reaches_the_session_as_a_ga_mcp_tool_the_sdk_accepts() -> None:
    s = resolve(flags={}, environ={"DOCS_TOKEN": f"Bearer {TOKEN}"}, config_file=parsed(DOCS))
    assert mcp_tools(s) == [{"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/mcp",
                             "allowed_tools": ["search"], "require_approval": "never",
                             "headers": {"Authorization": f"Bearer {TOKEN}"}}]
    event = CLIENT_EVENT.validate_python(client.session_update(s.session_config(), event_id="e1"))
    mcp = [t for t in event.session.tools if t.type == "mcp"]
    assert mcp[0].server_label == "docs" and mcp[0].headers == {"Authorization": f"Bearer {TOKEN}"}
    assert mcp[0].require_approval == "never" and mcp[0].allowed_tools == ["search"]


def test_a_connector_with_the_defaults_validates_too() -> None:
    s = resolve(flags={}, environ={}, config_file=parsed('[[mcp]]\nlabel = "drive"\nconnector_id = "connector_googledrive"\n'))
    assert mcp_tools(s) == [{"type": "mcp", "server_label": "drive", "connector_id": "connector_googledrive",
                             "require_approval": "always"}]
    event = CLIENT_EVENT.validate_python(client.session_update(s.session_config()))
    assert [t.connector_id for t in event.session.tools if t.type == "mcp"] == ["connector_googledrive"]


def test_the_environment_wins_over_dotenv_and_dotenv_is_read() -> None:
    cfg = parsed(DOCS)
    from_dotenv = resolve(flags={}, environ={}, dotenv={"DOCS_TOKEN": "from-dotenv-value"}, config_file=cfg)
    assert mcp_tools(from_dotenv)[0]["headers"] == {"Authorization": "from-dotenv-value"}
    both = resolve(flags={}, environ={"DOCS_TOKEN": "from-environment"}, dotenv={"DOCS_TOKEN": "x" * 10},
                   config_file=cfg)
    assert mcp_tools(both)[0]["headers"] == {"Authorization": "from-environment"}


def test_a_literal_header_is_refused_in_one_line_naming_file_and_key_never_the_value() -> None:
    literal = DOCS.replace('"env:DOCS_TOKEN"', f'"Bearer {TOKEN}"')
    with pytest.raises(ConfigError) as caught:
        parsed(literal)
    text = str(caught.value) + str(caught.value.hint or "")
    assert str(PATH) in text and "headers.Authorization" in text and "env:NAME" in text
    assert TOKEN not in text and "Bearer" not in text
    assert "\n" not in str(caught.value)


def test_a_literal_in_a_profile_is_refused_too_naming_the_profile() -> None:
    text = '[profile.work]\n[[profile.work.mcp]]\nlabel = "w"\nurl = "https://w.example/mcp"\n' \
           'headers = { "X-Api-Key" = "abcdefgh12345678" }\n'
    with pytest.raises(ConfigError, match=r"\[profile.work\]: mcp\[0\] \(w\): headers.X-Api-Key") as caught:
        parsed(text)
    assert "abcdefgh12345678" not in str(caught.value)


def test_a_missing_variable_names_it() -> None:
    with pytest.raises(ConfigError, match=r"config.toml: mcp\[0\] \(docs\): headers.Authorization names DOCS_TOKEN, "
                                          r"which is not set"):
        resolve(flags={}, environ={}, config_file=parsed(DOCS))


@pytest.mark.parametrize(("table", "message"), [
    ('label = "a b"\nurl = "https://x.example"', "'label' must be"),
    ('label = "a"', "either 'url'"),
    ('label = "a"\nurl = "https://x.example"\nconnector_id = "connector_gmail"', "either 'url'"),
    ('label = "a"\nurl = "http://x.example/mcp"', "https://"),
    ('label = "a"\nurl = "https://u:p@x.example/mcp"', "user or password"),
    ('label = "a"\nurl = "ftp://x.example"', "https://"),
    ('label = "a"\nconnector_id = "drive"', "'connector_id' must be"),
    ('label = "a"\nurl = "https://x.example"\nrequire_approval = "sometimes"', "'require_approval'"),
    ('label = "a"\nurl = "https://x.example"\nallowed_tools = "search"', "'allowed_tools'"),
    ('label = "a"\nurl = "https://x.example"\nheaders = { "bad header" = "env:X" }', "not an HTTP header"),
    ('label = "a"\nurl = "https://x.example"\ncolour = 1', "unknown key 'colour'"),
])
def test_bad_tables_are_refused_naming_the_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parsed(f"[[mcp]]\n{table}\n")


def test_two_servers_with_one_label_are_refused() -> None:
    with pytest.raises(ConfigError, match="a second MCP server labelled 'a'"):
        parse_mcp([{"label": "a", "url": "https://x.example"}, {"label": "a", "url": "https://y.example"}])


def test_loopback_http_is_allowed_for_a_local_server() -> None:
    assert parse_mcp([{"label": "l", "url": "http://127.0.0.1:9000/mcp"}])[0].url == "http://127.0.0.1:9000/mcp"


def test_a_profile_replaces_the_top_level_servers() -> None:
    text = DOCS + '[profile.other]\n[[profile.other.mcp]]\nlabel = "other"\nurl = "https://o.example/mcp"\n'
    s = resolve(flags={"profile": "other"}, environ={}, config_file=parsed(text))
    assert [m["server_label"] for m in mcp_tools(s)] == ["other"]


def test_reference_values_do_not_count_as_secrets_in_the_file() -> None:
    text = '[[mcp]]\nlabel = "a"\nurl = "https://x.example"\nheaders = { "X-Api-Key" = "env:A_KEY" }\n'
    assert not parsed(text).has_secrets


def test_header_values_are_remembered_and_never_in_repr() -> None:
    s = resolve(flags={}, environ={"DOCS_TOKEN": f"Bearer {TOKEN}"}, config_file=parsed(DOCS))
    assert TOKEN not in repr(s) and TOKEN not in repr(s.mcp)
    redact.remember_settings(s)
    assert redact.scrub(f"header Bearer {TOKEN}!") == f"header {redact.ELIDED}!"
    assert redact.scrub(f"token {TOKEN} alone") == f"token {redact.ELIDED} alone"
    assert "DOCS_TOKEN" in redact.credential_variables()


def test_binding_refuses_a_value_with_a_line_break() -> None:
    server = McpServer("a", url="https://x.example", references=(("Authorization", "A"),), where="f: mcp[0] (a)")
    with pytest.raises(ConfigError, match="A holds a line break") as caught:
        server.bind(lambda var: "Bearer abc\r\nX-Evil: 1")
    assert "abc" not in str(caught.value)


def test_config_show_lists_the_label_and_masks_the_header(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.toml").write_text(DOCS)
    (cfg / "config.toml").chmod(0o600)
    monkeypatch.setenv("VOICECHAT_CONFIG_DIR", str(cfg))
    for var in config.ENV_KEYS:
        monkeypatch.delenv(var, raising=False)
    from voicechat.cli import app
    result = CliRunner().invoke(app, ["config", "show"], env={"DOCS_TOKEN": f"Bearer {TOKEN}"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("mcp "))
    assert "docs" in line and "config file" in line
    assert TOKEN not in result.output
