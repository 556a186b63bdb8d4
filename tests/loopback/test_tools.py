"""Function tools: config parsing, the built-in clock tool and the command runner (no shell)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from voicechat.config import parse_config_file, resolve
from voicechat.errors import ConfigError
from voicechat.tools import (
    GET_CURRENT_TIME,
    ToolRunner,
    ToolSpec,
    available_tools,
    current_time,
    decode_arguments,
    parse_tools,
)

PY = sys.executable
NOON = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def py(code: str, **kw) -> ToolSpec:
    return ToolSpec(name=kw.pop("name", "t"), command=(PY, "-c", code), **kw)


def run(spec: ToolSpec, arguments: str = "{}", **kw) -> dict | str:
    result = asyncio.run(ToolRunner([spec], **kw).run(spec.name, arguments))
    try:
        return json.loads(result)
    except json.JSONDecodeError:
        return result


# ---- parsing ----------------------------------------------------------------------------


def test_a_full_tool_table_parses() -> None:
    (spec,) = parse_tools([{
        "name": "weather", "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "command": ["/usr/local/bin/weather", "--json"], "timeout": 2.5, "confirm": True,
    }])
    assert spec == ToolSpec("weather", "Weather for a city.",
                            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                            ("/usr/local/bin/weather", "--json"), 2.5, True)
    assert spec.definition() == {"type": "function", "name": "weather", "description": "Weather for a city.",
                                 "parameters": spec.parameters}


def test_defaults_of_a_minimal_tool() -> None:
    (spec,) = parse_tools([{"name": "up-time_2", "command": ["uptime"]}])
    assert (spec.timeout, spec.confirm, spec.description) == (10.0, False, "")
    assert spec.parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    "table, message",
    [
        ({"name": "x", "command": "date +%H"}, "not a string: voicechat never runs a shell"),
        ({"name": "x"}, "'command' is required"),
        ({"name": "x", "command": []}, "'command' is required"),
        ({"name": "x", "command": ["date", 3]}, "must be a string"),
        ({"name": "bad name", "command": ["date"]}, "'name' must be 1-64"),
        ({"name": "x" * 65, "command": ["date"]}, "'name' must be 1-64"),
        ({"command": ["date"]}, "'name' must be 1-64"),
        ({"name": "x", "command": ["date"], "parameters": {"type": "string"}}, "type = \"object\""),
        ({"name": "x", "command": ["date"], "parameters": ["a"]}, "type = \"object\""),
        ({"name": "x", "command": ["date"], "timeout": 0}, "between 0.1 and 300"),
        ({"name": "x", "command": ["date"], "timeout": 301}, "between 0.1 and 300"),
        ({"name": "x", "command": ["date"], "timeout": True}, "between 0.1 and 300"),
        ({"name": "x", "command": ["date"], "confirm": "yes"}, "'confirm' must be true or false"),
        ({"name": "x", "command": ["date"], "shell": True}, "unknown key 'shell'"),
        ({"name": "x", "command": ["date"], "description": 5}, "'description' must be a string"),
    ],
)
def test_bad_tools_are_config_errors_naming_the_table(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tools([table], "cfg.toml")
    assert message in str(info.value) and "tools[0]" in str(info.value)


def test_tools_must_be_a_list_of_tables_with_unique_names() -> None:
    with pytest.raises(ConfigError, match="must be a list"):
        parse_tools({"name": "x"})
    with pytest.raises(ConfigError, match="a second tool named 'x'"):
        parse_tools([{"name": "x", "command": ["a"]}, {"name": "x", "command": ["b"]}])


def test_builtins_come_first_and_a_user_tool_replaces_one_of_the_same_name() -> None:
    mine = ToolSpec("get_current_time", command=("date",))
    other = ToolSpec("other", command=("x",))
    assert available_tools([other]) == (GET_CURRENT_TIME, other)
    assert available_tools([mine, other]) == (mine, other)
    assert available_tools([other], builtins=False) == (other,)


CONFIG = """
model = "gpt-realtime"

[[tools]]
name = "echo_tool"
description = "Echo the text back."
command = ["/bin/cat"]
timeout = 3
parameters = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }

[[tools]]
name = "rm_all"
command = ["/bin/false"]
confirm = true
"""


def test_config_file_tools_reach_settings_and_the_session_update() -> None:
    cfg = parse_config_file(Path("c.toml"), CONFIG)
    settings = resolve(flags={}, environ={}, config_file=cfg)
    assert [t.name for t in settings.tools] == ["echo_tool", "rm_all"]
    assert settings.tools[0].command == ("/bin/cat",) and settings.tools[0].timeout == 3.0
    assert settings.tools[1].confirm
    wire = settings.session_config().to_wire()
    assert [t["name"] for t in wire["tools"]] == ["get_current_time", "echo_tool", "rm_all"]
    assert all(set(t) == {"type", "name", "description", "parameters"} for t in wire["tools"])
    assert "tool_choice" not in wire  # the server default ("auto")
    off = parse_config_file(Path("c.toml"), "builtin_tools = false\n" + CONFIG)
    assert [t["name"] for t in resolve(flags={}, environ={}, config_file=off).session_config().to_wire()["tools"]] \
        == ["echo_tool", "rm_all"]


def test_config_file_tool_errors_name_the_file() -> None:
    with pytest.raises(ConfigError, match=r"^c\.toml: tools\[0\] \(x\): 'command' must be a list"):
        parse_config_file(Path("c.toml"), '[[tools]]\nname = "x"\ncommand = "rm -rf /"\n')
    with pytest.raises(ConfigError, match=r"^c\.toml: \[profile\.p\]: tools\[0\] \(x\): 'timeout'"):
        parse_config_file(Path("c.toml"), '[[profile.p.tools]]\nname = "x"\ncommand = ["a"]\ntimeout = 0\n')
    with pytest.raises(ConfigError, match="builtin_tools"):
        resolve(flags={}, environ={}, config_file=parse_config_file(Path("c.toml"), 'builtin_tools = "no"\n'))


def test_tools_in_a_profile_replace_the_top_level_tools() -> None:
    text = CONFIG + '\n[profile.home]\nvoice = "cedar"\n\n[[profile.home.tools]]\nname = "lamp"\ncommand = ["/usr/bin/lamp"]\n'
    cfg = parse_config_file(Path("c.toml"), text)
    home = resolve(flags={"profile": "home"}, environ={}, config_file=cfg)
    assert [t.name for t in home.tools] == ["lamp"] and home.tools[0].command == ("/usr/bin/lamp",)
    assert home.source("tools") == "profile home"
    assert [t.name for t in resolve(flags={}, environ={}, config_file=cfg).tools] == ["echo_tool", "rm_all"]


def test_no_tools_anywhere_sends_only_the_builtin() -> None:
    settings = resolve(flags={}, environ={})
    assert [t["name"] for t in settings.session_config().to_wire()["tools"]] == ["get_current_time"]


# ---- arguments and the clock tool -------------------------------------------------------


def test_decode_arguments() -> None:
    assert decode_arguments("") == {} and decode_arguments(" ") == {}
    assert decode_arguments('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="not valid JSON"):
        decode_arguments('{"a": ')
    with pytest.raises(ValueError, match="JSON object"):
        decode_arguments("[1]")


def test_current_time_in_a_zone_from_the_injected_clock() -> None:
    got = json.loads(current_time({"timezone": "Europe/Paris"}, NOON))
    assert got == {"datetime": "2025-06-01T14:00:00+02:00", "timezone": "Europe/Paris", "weekday": "Sunday",
                   "utc_offset": "+02:00"}
    assert json.loads(current_time({"timezone": "Asia/Kolkata"}, NOON))["utc_offset"] == "+05:30"
    local = json.loads(current_time({}, NOON))
    assert datetime.fromisoformat(local["datetime"]) == NOON  # the same instant, in the local zone
    for bad in ("Mars/Olympus", "../../etc/passwd", 5):
        assert "error" in json.loads(current_time({"timezone": bad}, NOON))


def test_builtin_through_the_runner_uses_its_clock() -> None:
    got = run(GET_CURRENT_TIME, '{"timezone": "UTC"}', clock=lambda: NOON)
    assert got["datetime"] == "2025-06-01T12:00:00+00:00"


# ---- the runner ---------------------------------------------------------------------------


def test_a_command_gets_the_arguments_on_stdin_and_its_stdout_is_the_result() -> None:
    spec = py("import json, sys; a = json.load(sys.stdin); print('got', a['text'][::-1])")
    assert run(spec, '{"text": "abc"}') == "got cba"


def test_arguments_never_reach_a_shell() -> None:
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"vc-no-shell-{os.getpid()}"
    nasty = f"x; touch {marker}; $(touch {marker}) `touch {marker}` | rm -rf /"
    spec = py("import json, sys; print(json.load(sys.stdin)['q'])")
    assert run(spec, json.dumps({"q": nasty})) == nasty  # passed literally
    assert not marker.exists()


def test_empty_output_is_reported_as_success() -> None:
    assert run(py("pass")) == {"ok": True, "output": ""}


def test_non_zero_exit_reports_the_status_and_the_stderr_tail() -> None:
    got = run(py("import sys; print('partial'); sys.stderr.write('x' * 5000 + 'the real reason'); sys.exit(3)"))
    assert got["error"] == "the command failed (exit status 3)"
    assert got["stderr"].endswith("the real reason") and len(got["stderr"]) <= 2000
    assert got["stdout"] == "partial"


def test_a_slow_command_is_killed_at_its_timeout_with_its_children() -> None:
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
            "print(p.pid, flush=True); time.sleep(30)")
    started = time.monotonic()
    runner = ToolRunner([py(code, timeout=0.5)])

    async def go() -> str:
        return await runner.run("t", "{}")

    got = json.loads(asyncio.run(go()))
    assert "timed out after 0.5 s" in got["error"]
    assert time.monotonic() - started < 5


def test_command_not_found_and_not_executable(tmp_path: Path) -> None:
    missing = ToolSpec("t", command=(str(tmp_path / "nope"),))
    assert run(missing)["error"].startswith("command not found")
    plain = tmp_path / "plain.txt"
    plain.write_text("hi")
    assert "permission denied" in run(ToolSpec("t", command=(str(plain),)))["error"]


def test_big_output_is_cut_with_a_marker() -> None:
    got = asyncio.run(ToolRunner([py("import sys; sys.stdout.write('a' * 200_000)")]).run("t", "{}"))
    body, _, marker = got.partition("\n[")
    assert body == "a" * 65536 and marker == "output truncated: 200000 bytes, the first 65536 shown]"


def test_unknown_tool_and_invalid_arguments_are_results_not_exceptions() -> None:
    runner = ToolRunner([py("print(1)")])
    assert "no tool named 'nope'" in json.loads(asyncio.run(runner.run("nope", "{}")))["error"]
    assert "not valid JSON" in json.loads(asyncio.run(runner.run("t", "{oops")))["error"]


def test_confirm_tools_ask_and_are_declined_without_a_yes() -> None:
    spec = py("print('ran')", confirm=True)
    assert "did not approve" in run(spec)["error"]  # nobody to ask

    asked = []

    async def no(tool: ToolSpec, args: dict) -> bool:
        asked.append((tool.name, args))
        return False

    async def yes(tool: ToolSpec, args: dict) -> bool:
        return True

    assert "did not approve" in run(spec, '{"a": 1}', confirm=no)["error"]
    assert asked == [("t", {"a": 1})]
    assert run(spec, confirm=yes) == "ran"


def test_at_most_max_concurrent_commands_run_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = (f"import time; f = open({str(log)!r}, 'a'); f.write('+\\n'); f.flush(); time.sleep(0.3); "
            f"f.write('-\\n'); f.close()")
    runner = ToolRunner([py(code)], max_concurrent=2)

    async def go() -> None:
        await asyncio.gather(*(runner.run("t", "{}") for _ in range(4)))

    asyncio.run(go())
    depth = peak = 0
    for mark in log.read_text().split():
        depth += 1 if mark == "+" else -1
        peak = max(peak, depth)
    assert peak == 2


def test_cancelling_a_run_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    spec = py(f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(30)", timeout=60)

    async def go() -> None:
        task = asyncio.create_task(ToolRunner([spec]).run("t", "{}"))
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_the_api_key_is_not_handed_to_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("VOICECHAT_TOOL_TEST", "visible")
    spec = py("import os; print(os.environ.get('OPENAI_API_KEY'), os.environ.get('VOICECHAT_TOOL_TEST'))")
    assert run(spec) == "None visible"


# ---- nothing a tool starts outlives it -----------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether ``pid`` is dead, or dies within ``within`` seconds (SIGKILL is not instant)."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def background(pid_file: Path, then: str, *, detach: bool = False) -> ToolSpec:
    """``sh -c``: a ``sleep 60`` grandchild in the tool's process group (its pid written to
    ``pid_file``), then ``then``. ``detach``: the grandchild holds none of the tool's pipes."""
    quiet = " >/dev/null 2>&1 </dev/null" if detach else ""
    return ToolSpec("t", command=("sh", "-c", f"sleep 60{quiet} & echo $! > {pid_file}; {then}"), timeout=60)


def grandchild(pid_file: Path) -> int:
    return int(pid_file.read_text())


def test_a_grandchild_holding_the_pipes_dies_at_the_timeout_though_the_tool_has_exited(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    spec = background(pid_file, "exit 0")  # the tool exits at once; its child keeps stdout open
    got = run(ToolSpec(spec.name, command=spec.command, timeout=0.5))
    assert "timed out after 0.5 s" in got["error"]
    assert gone(grandchild(pid_file))


def test_a_background_grandchild_dies_when_the_tool_finishes(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    assert run(background(pid_file, "echo done", detach=True)) == "done"
    assert gone(grandchild(pid_file))


def test_a_grandchild_dies_when_the_call_is_cancelled(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    spec = background(pid_file, "wait")

    async def go() -> None:
        task = asyncio.create_task(ToolRunner([spec]).run("t", "{}"))
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert gone(grandchild(pid_file))


def test_no_credential_variable_voicechat_reads_reaches_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicechat.config import AZURE_ENV_KEYS, ENV_KEYS
    from voicechat.redact import CREDENTIAL_ENV

    # One list: every variable the config reads the key from is the list tools are denied.
    read = {var for var, key in {**ENV_KEYS, **AZURE_ENV_KEYS}.items() if key == "api_key"}
    assert read == set(CREDENTIAL_ENV) == {"OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"}
    for var in CREDENTIAL_ENV:
        monkeypatch.setenv(var, f"secret-of-{var}")
    monkeypatch.setenv("VOICECHAT_TOOL_TEST", "visible")
    spec = py("import json, os; print(json.dumps(dict(os.environ)))")
    seen = run(spec)
    assert isinstance(seen, dict) and seen["VOICECHAT_TOOL_TEST"] == "visible"
    assert not [var for var in seen if var in CREDENTIAL_ENV]
    assert not [var for var, value in seen.items() if value.startswith("secret-of-")]


def test_the_variables_of_mcp_headers_do_not_reach_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicechat.config import ConfigFile
    from voicechat.redact import credential_variables, remember_settings
    from voicechat.tools.mcp import parse_mcp

    servers = parse_mcp([{"label": "docs", "url": "https://mcp.example.com/mcp",
                          "headers": {"Authorization": "env:VOICECHAT_TEST_MCP_TOKEN"}}])
    monkeypatch.setenv("VOICECHAT_TEST_MCP_TOKEN", "secret-of-the-mcp-header")
    import os
    settings = resolve(flags={}, environ=dict(os.environ), config_file=ConfigFile(path=None, values={"mcp": servers}))
    remember_settings(settings)
    assert "VOICECHAT_TEST_MCP_TOKEN" in credential_variables()
    seen = run(py("import json, os; print(json.dumps(dict(os.environ)))"))
    assert isinstance(seen, dict) and "VOICECHAT_TEST_MCP_TOKEN" not in seen
    assert "secret-of-the-mcp-header" not in json.dumps(seen)
