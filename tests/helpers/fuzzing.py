"""What the two fuzzers share (``tests/unit/test_fuzz.py``, ``tests/unit/test_codec_safety.py``).

``VOICECHAT_FUZZ_EXAMPLES`` sets how many cases (each fuzzer takes its share of it) and
``VOICECHAT_FUZZ_RANDOM=1`` asks for fresh randomness (``make fuzz``); otherwise hypothesis is
derandomized, so every run of the suite tries the same cases.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("VOICECHAT_FUZZ_EXAMPLES", "10000"))
RANDOM = os.environ.get("VOICECHAT_FUZZ_RANDOM", "") not in ("", "0")


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=not RANDOM,  # CI: the same cases on every run; make fuzz: fresh ones
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested dicts and lists, parents before children."""
    keys = value.keys() if isinstance(value, dict) else range(len(value)) if isinstance(value, list) else ()
    out = []
    for key in keys:
        out.append((*prefix, key))
        out.extend(paths(value[key], (*prefix, key)))
    return out
