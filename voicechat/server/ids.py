"""Identifier minting in the real service's style: ``<prefix>_<21 base62 chars>``."""

from __future__ import annotations

import random
import string

_ALPHABET = string.ascii_letters + string.digits


class IdFactory:
    """Mints ids from one RNG so a seeded connection is reproducible."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def _chars(self, n: int) -> str:
        return "".join(self._rng.choice(_ALPHABET) for _ in range(n))

    def make(self, prefix: str) -> str:
        """``event``, ``item``, ``resp``, ``sess``, ``conv`` → prefix + ``_`` + 21 chars."""
        return f"{prefix}_{self._chars(21)}"

    def call_id(self) -> str:
        """Function call ids carry 16 chars after ``call_``."""
        return f"call_{self._chars(16)}"
