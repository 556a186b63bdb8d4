"""Function tools the model may call: built-ins and user-defined command tools.

Pure parts (no I/O): :class:`ToolSpec`, :func:`parse_tools` (the ``[[tools]]`` tables of the
config file), :func:`available_tools`, the wire definitions for ``session.update``, argument
decoding and the built-in ``get_current_time`` (its clock is an argument).

The I/O part is :class:`ToolRunner`: it runs one call and always returns the string that goes
back to the model as the ``function_call_output``. A command tool is started with
``asyncio.create_subprocess_exec`` (never a shell): its argv comes from the config file only,
the model's arguments arrive as one JSON object on stdin, stdout is the result (capped at
:data:`MAX_OUTPUT_BYTES`), and its whole process group is killed when the call ends (done, timed
out or cancelled), so nothing it started in the background outlives the call. Every failure
(unknown tool, arguments that are not a JSON object, the user declining, command not found,
non-zero exit, timeout) becomes ``{"error": "..."}`` for the model, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicechat.errors import ConfigError
from voicechat.redact import CREDENTIAL_ENV

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DEFAULT_TIMEOUT_S = 10.0
MIN_TIMEOUT_S = 0.1
MAX_TIMEOUT_S = 300.0
MAX_OUTPUT_BYTES = 64 * 1024  # of a command's stdout; the rest is read and dropped
STDERR_TAIL_BYTES = 2000  # of a failed command's stderr, from the end
MAX_CONCURRENT = 4  # tool calls running at once; further calls wait for a slot
TOOL_KEYS = ("name", "description", "parameters", "command", "timeout", "confirm")
HIDDEN_ENV = CREDENTIAL_ENV  # never handed to a tool command: every variable voicechat reads a key from

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
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'tools' must be a list of [[tools]] tables, not {_kind(value)}")
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for i, table in enumerate(value):
        spec = parse_tool(table, f"{where}: tools[{i}]")
        if spec.name in seen:
            raise ConfigError(f"{where}: tools[{i}]: a second tool named {spec.name!r}")
        seen.add(spec.name)
        specs.append(spec)
    return tuple(specs)


def parse_tool(table: Any, where: str) -> ToolSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: a tool is a table with name, description, parameters and command")
    unknown = sorted(set(table) - set(TOOL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}", hint=f"a tool has {', '.join(TOOL_KEYS)}")
    name = table.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: 'name' must be 1-64 letters, digits, '_' or '-', not {name!r}")
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


def _kind(value: Any) -> str:
    return "a string" if isinstance(value, str) else type(value).__name__


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


def describe_call(name: str, arguments: Mapping[str, Any], limit: int = 120) -> str:
    """``name {args}`` on one line, cut to ``limit`` characters (for a confirmation question)."""
    text = json.dumps(dict(arguments), ensure_ascii=False)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{name} with {text}"


# ---- running (I/O) ------------------------------------------------------------------------


class ToolRunner:
    """Runs tool calls, at most ``max_concurrent`` at once; ``run`` never raises (except cancel).

    ``confirm`` asks the user about a ``confirm = true`` tool; without one such a tool is
    declined. ``clock`` gives the built-ins the current time (timezone-aware).
    """

    def __init__(
        self,
        tools: Sequence[ToolSpec],
        *,
        confirm: Confirm | None = None,
        clock: Clock = lambda: datetime.now(UTC),
        max_concurrent: int = MAX_CONCURRENT,
        max_output: int = MAX_OUTPUT_BYTES,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        self.confirm = confirm
        self.clock = clock
        self.max_output = max_output
        self._slots = asyncio.Semaphore(max_concurrent)

    async def run(self, name: str, arguments: str) -> str:
        spec = self.tools.get(name)
        if spec is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return error_result(f"no tool named {name!r} (available: {known})")
        try:
            args = decode_arguments(arguments)
        except ValueError as exc:
            return error_result(str(exc))
        if spec.confirm:
            approved = False
            if self.confirm is not None:
                approved = await self.confirm(spec, args)
            if not approved:
                return error_result("the user did not approve running this tool; it was not run")
        async with self._slots:
            if spec.builtin:
                return run_builtin(spec, args, self.clock())
            return await run_command(spec, json.dumps(args, ensure_ascii=False), max_output=self.max_output)


async def run_command(spec: ToolSpec, stdin_text: str, *, max_output: int = MAX_OUTPUT_BYTES) -> str:
    """Run a command tool: ``stdin_text`` in, stdout out; every failure as an error result."""
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except FileNotFoundError:
        return error_result(f"command not found: {spec.command[0]}")
    except PermissionError:
        return error_result(f"permission denied running {spec.command[0]}")
    except OSError as exc:
        return error_result(f"could not run {spec.command[0]}: {exc.strerror or exc}")
    try:
        async with asyncio.timeout(spec.timeout):
            stdout, total, stderr = await _exchange(proc, stdin_text.encode(), max_output)
            status = await proc.wait()
    except TimeoutError:
        await _kill(proc)
        return error_result(f"the tool timed out after {spec.timeout:g} s and was stopped")
    except BaseException:
        await _kill(proc)  # cancelled (the conversation ended): the command goes too
        raise
    await _kill(proc)  # what it left running in the background (its group) goes too
    text = stdout.decode("utf-8", errors="replace")
    if total > len(stdout):
        text += f"\n[output truncated: {total} bytes, the first {len(stdout)} shown]"
    if status != 0:
        why = f"exit status {status}" if status > 0 else f"killed by signal {_signal_name(-status)}"
        result: dict[str, Any] = {"error": f"the command failed ({why})"}
        tail = stderr.decode("utf-8", errors="replace").strip()
        if tail:
            result["stderr"] = tail
        if text.strip():
            result["stdout"] = text.strip()[:STDERR_TAIL_BYTES]
        return json.dumps(result, ensure_ascii=False)
    text = text.rstrip("\n")
    return text if text.strip() else json.dumps({"ok": True, "output": ""})


async def _exchange(proc: asyncio.subprocess.Process, data: bytes, max_output: int) -> tuple[bytes, int, bytes]:
    """Write stdin, read stdout (first ``max_output`` bytes kept) and stderr (tail kept)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(data)
            await proc.stdin.drain()
        proc.stdin.close()

    async def read_out() -> tuple[bytes, int]:
        assert proc.stdout is not None
        kept = bytearray()
        total = 0
        while chunk := await proc.stdout.read(65536):
            total += len(chunk)
            if len(kept) < max_output:
                kept += chunk[: max_output - len(kept)]
        return bytes(kept), total

    async def read_err() -> bytes:
        assert proc.stderr is not None
        tail = b""
        while chunk := await proc.stderr.read(65536):
            tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
        return tail

    _, (out, total), err = await asyncio.gather(feed(), read_out(), read_err())
    return out, total, err


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the command's process group (its own session), always, and then the command.

    Always: the command itself may have exited while a child it started lives on in its group
    (``sh -c 'slow & …'``) holding a pipe open. The group outlives its leader, so the id is
    not reused while any member runs; once none does, there is nothing to kill.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.shield(asyncio.wait_for(proc.wait(), timeout=2.0))
    # Its pipes end once every process holding them is dead: read them to the end (briefly: a
    # process that left the group may hold them), so the transport closes with the call.
    for stream in (proc.stdout, proc.stderr):
        if stream is not None and not stream.at_eof():
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wait_for(_drain(stream), timeout=1.0))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
