"""The shape every array of config tables shares (``[[tools]]``, ``[[mcp]]``): a list of
tables, each with only known keys and a name, no two of one name. Pure; errors are
`ConfigError`s naming the file, the table's index and its name."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from voicechat.errors import ConfigError

T = TypeVar("T")


def _kind(value: Any) -> str:
    """What a value is, for an error: ``a string``, ``int``, ``dict``…"""
    return "a string" if isinstance(value, str) else type(value).__name__


def parse_tables(value: Any, where: str, key: str, parse: Callable[[Any, str], T], name: Callable[[T], str],
                 second: str) -> tuple[T, ...]:
    """Each table of ``[[key]]`` parsed by ``parse(table, where)``; ``second`` words the error for
    a repeated name (``a second tool named``)."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: '{key}' must be a list of [[{key}]] tables, not {_kind(value)}")
    found: list[T] = []
    for i, table in enumerate(value):
        item = parse(table, f"{where}: {key}[{i}]")
        if any(name(other) == name(item) for other in found):
            raise ConfigError(f"{where}: {key}[{i}]: {second} {name(item)!r}")
        found.append(item)
    return tuple(found)


def table_name(table: Any, where: str, *, keys: Sequence[str], name_key: str, pattern: re.Pattern[str],
               shape: str, hint: str) -> str:
    """The name of one table, after checking it is a table (``shape`` says what one holds) with
    no key but ``keys`` (``hint`` names them)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {shape}")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}", hint=hint)
    name = table.get(name_key)
    if not isinstance(name, str) or not pattern.match(name):
        raise ConfigError(f"{where}: '{name_key}' must be 1-64 letters, digits, '_' or '-', not {name!r}")
    return name
