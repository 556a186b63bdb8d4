"""What a conversation has cost so far, estimated from the usage in ``response.done``.

Prices are USD per million tokens as published for each realtime model (protocol reference
§6.6). Snapshot names such as ``gpt-realtime-2025-08-28`` are priced as their alias. A model
with no known price has no cost (``None``), never a guessed one.

The estimate follows the usage details: cached input tokens (a subset of the input tokens) are
charged at the cached rate of their modality. When a usage payload leaves some tokens without a
modality, the estimate charges them at the dearer audio rate, so it errs high rather than low.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from voicechat.protocol.events import Usage

PER_TOKENS = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model; image prices are ``None`` where none is listed."""

    text_in: float
    text_cached: float
    text_out: float
    audio_in: float
    audio_cached: float
    audio_out: float
    image_in: float | None = None
    image_cached: float | None = None


_FULL = Price(4.00, 0.40, 16.00, 32.00, 0.40, 64.00, 5.00, 0.50)
_MINI = Price(0.60, 0.06, 2.40, 10.00, 0.30, 20.00)

PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "gpt-realtime": _FULL,
        "gpt-realtime-1.5": _FULL,
        "gpt-realtime-2": Price(4.00, 0.40, 24.00, 32.00, 0.40, 64.00, 5.00, 0.50),
        "gpt-realtime-mini": _MINI,
        "gpt-realtime-2.1-mini": Price(0.60, 0.06, 2.40, 10.00, 0.30, 20.00, 0.80, 0.08),
        "gpt-4o-mini-realtime-preview": Price(0.60, 0.30, 2.40, 10.00, 0.30, 20.00),
    }
)

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def price_for(model: str) -> Price | None:
    """The price of ``model``, matching a dated snapshot to its alias; ``None`` if unknown.

    Matching is exact after removing one trailing ``-YYYY-MM-DD``, so ``gpt-realtime-2.1`` is
    not mistaken for ``gpt-realtime-2`` and ``gpt-realtime-mini`` not for ``gpt-realtime``.
    """
    name = model.strip().lower()
    found = PRICES.get(name)
    if found is None:
        found = PRICES.get(_DATED.sub("", name))
    return found


def cost(model: str, usage: Usage) -> float | None:
    """Estimated USD for ``usage`` on ``model``; ``None`` when the model has no known price."""
    price = price_for(model)
    if price is None:
        return None
    # A model with no listed image price charges image tokens (if any ever come) as text.
    image_in = price.text_in if price.image_in is None else price.image_in
    image_cached = price.text_cached if price.image_cached is None else price.image_cached

    # Cached tokens whose modality the payload did not split out (the beta shape) count as text
    # first, then audio, then image, never more than that modality's input.
    cached = [usage.cached_text, usage.cached_audio, usage.cached_image]
    inputs = [usage.input_text, usage.input_audio, usage.input_image]
    unsplit = max(0, usage.input_cached - sum(cached))
    for i in range(3):
        take = min(unsplit, max(0, inputs[i] - cached[i]))
        cached[i] += take
        unsplit -= take

    untyped_in = max(0, usage.input_tokens - sum(inputs))
    untyped_out = max(0, usage.output_tokens - usage.output_text - usage.output_audio)
    total = (
        max(0, inputs[0] - cached[0]) * price.text_in
        + min(cached[0], inputs[0]) * price.text_cached
        + (max(0, inputs[1] - cached[1]) + untyped_in) * price.audio_in
        + min(cached[1], inputs[1]) * price.audio_cached
        + max(0, inputs[2] - cached[2]) * image_in
        + min(cached[2], inputs[2]) * image_cached
        + usage.output_text * price.text_out
        + (usage.output_audio + untyped_out) * price.audio_out
    )
    return total / PER_TOKENS


@dataclass(frozen=True, slots=True)
class Spend:
    """A conversation's usage so far and what it cost, derived once each time the usage changes.

    The live panel, ``/cost`` and ``--max-cost`` all read the same value instead of pricing the
    usage three times.
    """

    usage: Usage
    cost_usd: float | None  # None when the model has no known price

    @classmethod
    def of(cls, model: str, usage: Usage) -> Spend:
        return cls(usage, cost(model, usage))
