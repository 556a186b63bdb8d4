"""Tiny declarative validators for the JSON the server accepts.

A validator is a callable ``(value, path) -> value`` that returns the normalised value or
raises ``ApiError`` naming the dotted ``path`` the way the real service does
(``session.audio.input.turn_detection.threshold``). Objects reject unknown keys with
``unknown_parameter``; numbers report OpenAI's range codes; enums report ``invalid_value``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from voicechat.server import apierrors as E

Validator = Callable[[Any, str], Any]


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def string(max_len: int | None = None) -> Validator:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise E.invalid_type(path, "string", value)
        if max_len is not None and len(value) > max_len:
            raise E.string_too_long(path, max_len, len(value))
        return value

    return check


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise E.invalid_type(path, "boolean", value)
    return value


def number(lo: float | None = None, hi: float | None = None) -> Validator:
    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise E.invalid_type(path, "number", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise E.out_of_range(path, value, lo, hi, integer=False)
        return value

    return check


def integer(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(value: Any, path: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise E.invalid_type(path, "integer", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise E.out_of_range(path, value, lo, hi, integer=True)
        return value

    return check


def enum(*values: str) -> Validator:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise E.invalid_type(path, "string", value)
        if value not in values:
            raise E.invalid_value(path, value, values)
        return value

    return check


def nullable(inner: Validator) -> Validator:
    def check(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return check


def anything(value: Any, path: str) -> Any:
    return value


def free_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise E.invalid_type(path, "object", value)
    return value


def array(item: Validator, max_items: int | None = None) -> Validator:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise E.invalid_type(path, "array", value)
        if max_items is not None and len(value) > max_items:
            raise E.ApiError(
                "array_above_max_length",
                f"Invalid '{path}': array too long. Expected an array with maximum length "
                f"{max_items}, but got an array with length {len(value)} instead.",
                path,
            )
        return [item(v, join(path, i)) for i, v in enumerate(value)]

    return check


def obj(
    fields: Mapping[str, Validator],
    required: tuple[str, ...] = (),
) -> Validator:
    """An object with exactly these optional/required keys (order of checks: unknown, missing)."""

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise E.invalid_type(path, "object", value)
        for key in value:
            if key not in fields:
                raise E.unknown_parameter(join(path, key))
        for key in required:
            if key not in value:
                raise E.missing_parameter(join(path, key))
        return {k: fields[k](v, join(path, k)) for k, v in value.items()}

    return check


def tagged(tag: str, variants: Mapping[str, Validator]) -> Validator:
    """An object discriminated by ``tag`` (e.g. ``type``)."""

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise E.invalid_type(path, "object", value)
        if tag not in value:
            raise E.missing_parameter(join(path, tag))
        kind = value[tag]
        if not isinstance(kind, str) or kind not in variants:
            raise E.invalid_value(join(path, tag), kind, tuple(variants))
        result: dict[str, Any] = variants[kind](value, path)
        return result

    return check


def one_of_strings_or(strings: tuple[str, ...], other: Validator) -> Validator:
    """A string from ``strings`` or whatever ``other`` accepts (an object usually)."""

    def check(value: Any, path: str) -> Any:
        if isinstance(value, str):
            if value not in strings:
                raise E.invalid_value(path, value, strings)
            return value
        return other(value, path)

    return check
