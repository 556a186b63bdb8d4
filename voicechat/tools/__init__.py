"""Function tools the model may call: built-ins and user-defined command tools.

Two rooms: :mod:`voicechat.tools.spec` is pure (the specs, the ``[[tools]]`` tables, argument
decoding, the built-ins) and is what the config core imports; :mod:`voicechat.tools.runner`
runs calls in subprocesses. The runner's names are re-exported here lazily, so that importing
``voicechat.tools`` (or its spec) never loads asyncio's subprocess machinery.
"""

from __future__ import annotations

from typing import Any

from voicechat.tools.spec import (
    BUILTINS,
    DEFAULT_TIMEOUT_S,
    GET_CURRENT_TIME,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    NAME_RE,
    TOOL_KEYS,
    Clock,
    Confirm,
    ToolSpec,
    available_tools,
    current_time,
    decode_arguments,
    describe_call,
    error_result,
    parse_tool,
    parse_tools,
    run_builtin,
)

_RUNNER = ("ToolRunner", "run_command", "MAX_OUTPUT_BYTES", "STDERR_TAIL_BYTES", "MAX_CONCURRENT", "HIDDEN_ENV")

__all__ = [
    "BUILTINS", "DEFAULT_TIMEOUT_S", "GET_CURRENT_TIME", "MAX_TIMEOUT_S", "MIN_TIMEOUT_S", "NAME_RE", "TOOL_KEYS",
    "Clock", "Confirm", "ToolSpec", "available_tools", "current_time", "decode_arguments", "describe_call",
    "error_result", "parse_tool", "parse_tools", "run_builtin", *_RUNNER,
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from voicechat.tools import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
