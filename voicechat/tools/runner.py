"""Running tool calls: the I/O half of :mod:`voicechat.tools`.

:class:`ToolRunner` runs one call and always returns the string that goes back to the model as
the ``function_call_output``. A command tool is started with ``asyncio.create_subprocess_exec``
(never a shell): its argv comes from the config file only, the model's arguments arrive as one
JSON object on stdin, stdout is the result (capped at :data:`MAX_OUTPUT_BYTES`), and its whole
process group is killed when the call ends (done, timed out or cancelled), so nothing it
started in the background outlives the call. Every failure (unknown tool, arguments that are
not a JSON object, the user declining, command not found, non-zero exit, timeout) becomes
``{"error": "..."}`` for the model, never an exception. The environment a command sees is
ours minus every variable voicechat reads a credential from (`credential_variables`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from voicechat.redact import CREDENTIAL_ENV, credential_variables
from voicechat.tools.spec import (
    Clock,
    Confirm,
    ToolSpec,
    decode_arguments,
    error_result,
    run_builtin,
)

MAX_OUTPUT_BYTES = 64 * 1024  # of a command's stdout; the rest is read and dropped
STDERR_TAIL_BYTES = 2000  # of a failed command's stderr, from the end
MAX_CONCURRENT = 4  # tool calls running at once; further calls wait for a slot
HIDDEN_ENV = CREDENTIAL_ENV  # never handed to a tool command, nor any of `credential_variables()`


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
    hidden = set(credential_variables())  # the API keys, and the variables of MCP servers' headers
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    starting = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *spec.command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: a timeout kills its children too
    ))
    try:
        # Shielded: the command runs from the fork on, but asyncio hands it over only once its
        # pipes are connected. A cancel in between (the conversation ended on a busy machine)
        # would make asyncio kill the command alone and leave what it started in its group.
        proc = await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _kill(await starting)
        raise
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
    return _result(stdout, total, stderr, status)


def _result(stdout: bytes, total: int, stderr: bytes, status: int) -> str:
    """What the model is told: the output, or the failure with stderr's tail and stdout's head."""
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
