"""Function tools as data: what the model may call, and the pure steps of a call.

A tool is a :class:`ToolSpec`: a built-in (``get_current_time``, its clock an argument) or a
command run with the model's arguments on stdin. This module holds everything about tools that
needs no process, no event loop and no environment: the ``[[tools]]`` tables of the config file
(:func:`parse_tools`, errors naming the table and key), :func:`available_tools`, the wire
definitions for ``session.update``, argument decoding, the built-ins and the error results the
model is given. It is apart from :mod:`voicechat.tools.runner` (subprocesses, asyncio) so that
the config core can validate ``[[tools]]`` without importing a process runner.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicechat.errors import ConfigError
from voicechat.tools.tables import parse_tables, table_name

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DEFAULT_TIMEOUT_S = 10.0
MIN_TIMEOUT_S = 0.1
MAX_TIMEOUT_S = 300.0
TOOL_KEYS = ("name", "description", "parameters", "command", "timeout", "confirm")

Clock = Callable[[], datetime]
Confirm = Callable[["ToolSpec", dict[str, Any]], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: a built-in (no ``command``) or a command run with the arguments on stdin."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    command: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT_S
    confirm: bool = False

    @property
    def builtin(self) -> bool:
        return not self.command

    def definition(self) -> dict[str, Any]:
        """The tool as ``session.update`` declares it (``tools[]`` entry)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": json.loads(json.dumps(self.parameters)),
        }


GET_CURRENT_TIME = ToolSpec(
    name="get_current_time",
    description="The current date and time, in the user's local time zone or in a given IANA time zone.",
    parameters={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "An IANA time zone name such as Europe/Paris; omit it for the user's local time.",
            }
        },
    },
)
BUILTINS: tuple[ToolSpec, ...] = (GET_CURRENT_TIME,)


# ---- config -------------------------------------------------------------------------------


def parse_tools(value: Any, where: str = "config") -> tuple[ToolSpec, ...]:
    """The ``[[tools]]`` tables of a config file, validated; errors name the table and key."""
    return parse_tables(value, where, "tools", parse_tool, lambda spec: spec.name, "a second tool named")


def parse_tool(table: Any, where: str) -> ToolSpec:
    name = table_name(table, where, keys=TOOL_KEYS, name_key="name", pattern=NAME_RE,
                      shape="a tool is a table with name, description, parameters and command",
                      hint=f"a tool has {', '.join(TOOL_KEYS)}")
    where = f"{where} ({name})"
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: 'description' must be a string")
    return ToolSpec(
        name=name,
        description=description,
        parameters=_parameters(table.get("parameters"), where),
        command=_command(table.get("command"), where),
        timeout=_timeout(table.get("timeout", DEFAULT_TIMEOUT_S), where),
        confirm=_flag(table.get("confirm", False), where),
    )


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    if not isinstance(value, dict) or value.get("type") != "object":
        raise ConfigError(f"{where}: 'parameters' must be a JSON schema object with type = \"object\"")
    properties = value.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        raise ConfigError(f"{where}: 'parameters.properties' must map each argument name to a schema table")
    try:
        return dict(json.loads(json.dumps(value)))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: 'parameters' holds a value JSON cannot express (a date?)") from None


def _command(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(
            f"{where}: 'command' must be a list of arguments, not a string: voicechat never runs a shell",
            hint='write command = ["/path/to/program", "--flag"]',
        )
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: 'command' is required: a list of arguments such as [\"/usr/bin/date\"]")
    if not all(isinstance(arg, str) for arg in value) or not value[0]:
        raise ConfigError(f"{where}: every 'command' argument must be a string, the first a program")
    if any("\x00" in arg for arg in value):
        raise ConfigError(f"{where}: 'command' arguments must not contain NUL characters")
    return tuple(value)


def _timeout(value: Any, where: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
        raise ConfigError(f"{where}: 'timeout' must be between {MIN_TIMEOUT_S:g} and {MAX_TIMEOUT_S:g} seconds, "
                          f"not {value!r}")
    return float(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: 'confirm' must be true or false, not {value!r}")
    return value


def available_tools(user: Sequence[ToolSpec], builtins: bool = True) -> tuple[ToolSpec, ...]:
    """The built-ins (unless turned off), then the user's tools; a user tool replaces a built-in."""
    names = {t.name for t in user}
    base = [t for t in BUILTINS if t.name not in names] if builtins else []
    return (*base, *user)


# ---- calls (pure) -------------------------------------------------------------------------


def error_result(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


def decode_arguments(arguments: str) -> dict[str, Any]:
    """The model's arguments as a dict; empty means none. ``ValueError`` when not a JSON object."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError("the arguments must be a JSON object")
    return value


def current_time(args: Mapping[str, Any], now: datetime) -> str:
    """``get_current_time``: ``now`` (timezone-aware) in the asked zone, or the local one."""
    zone = args.get("timezone")
    if zone in (None, "", "local"):
        local = now.astimezone()
        name = local.tzname() or "local"
    else:
        if not isinstance(zone, str):
            return error_result("'timezone' must be a string such as Europe/Paris")
        try:
            local = now.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            return error_result(f"unknown time zone {zone!r}: use an IANA name such as Europe/Paris")
        name = zone
    return json.dumps({
        "datetime": local.isoformat(timespec="seconds"),
        "timezone": name,
        "weekday": local.strftime("%A"),
        "utc_offset": local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:],
    })


def run_builtin(spec: ToolSpec, args: Mapping[str, Any], now: datetime) -> str:
    if spec.name == GET_CURRENT_TIME.name:
        return current_time(args, now)
    return error_result(f"no built-in tool named {spec.name!r}")


def describe_call(name: str, arguments: Mapping[str, Any], limit: int = 120, joiner: str = " with ") -> str:
    """``name with {args}`` on one line, cut to ``limit`` characters (for a confirmation question)."""
    text = json.dumps(dict(arguments), ensure_ascii=False)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{name}{joiner}{text}"
