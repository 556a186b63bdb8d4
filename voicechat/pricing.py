"""What a conversation has cost so far, estimated from the usage in ``response.done``.

Prices are USD per million tokens as published for each realtime model (protocol reference
§6.6). Snapshot names such as ``gpt-realtime-2025-08-28`` are priced as their alias. A
``[prices."MODEL"]`` table of the config file overrides or adds a model's price. A realtime
model with no price of its own (``gpt-realtime-2.1`` has none published) is *estimated* from
the dearest listed model of its family (mini or full), and every figure drawn from that
estimate says so. Any other name (an Azure deployment, a retired preview) has no cost (``None``).

The estimate follows the usage details: cached input tokens (a subset of the input tokens) are
charged at the cached rate of their modality. When a usage payload leaves some tokens without a
modality, the estimate charges them at the dearer audio rate, so it errs high rather than low.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

from voicechat.errors import ConfigError
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

FAMILIES = (("mini", "gpt-realtime-2.1-mini"), ("", "gpt-realtime-2"))
"""A realtime model with no row of its own is estimated from its family's dearest row: the
first family whose word is in its name (every name holds the empty word)."""

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One ``[prices."MODEL"]`` table of the config file: the price to charge ``model`` at."""

    model: str
    price: Price

    @property
    def name(self) -> str:  # how `config show` lists a table
        return self.model


@dataclass(frozen=True, slots=True)
class Quote:
    """The price a model is charged at, and whether that price is its own."""

    price: Price | None  # None: nothing is known, not even an estimate
    estimated_from: str | None = None  # the model whose price stands in for this one's


def _names(model: str) -> tuple[str, str]:
    name = model.strip().lower()
    return name, _DATED.sub("", name)


def quote(model: str, prices: Iterable[ModelPrice] = ()) -> Quote:
    """The price of ``model``: the config file's, else the published one, else its family's.

    Matching is exact after removing one trailing ``-YYYY-MM-DD``, so ``gpt-realtime-2.1`` is
    not mistaken for ``gpt-realtime-2`` and ``gpt-realtime-mini`` not for ``gpt-realtime``.
    """
    names = _names(model)
    own = {_names(row.model)[0]: row.price for row in prices}
    for table in (own, PRICES):
        for name in names:
            if name in table:
                return Quote(table[name])
    if not names[1].startswith("gpt-realtime"):
        return Quote(None)
    family = next(row for word, row in FAMILIES if word in names[1])
    return Quote(PRICES[family], estimated_from=family)


def price_for(model: str, prices: Iterable[ModelPrice] = ()) -> Price | None:
    """The price ``model`` is charged at (its own or an estimate); ``None`` if none is known."""
    return quote(model, prices).price


def parse_prices(value: object, where: str) -> tuple[ModelPrice, ...]:
    """The config file's ``[prices."MODEL"]`` tables: each rate a number, USD per 1M tokens.

    Every text and audio rate must be given (a price half-written would charge nothing for the
    rest); the image rates are optional.
    """
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise ConfigError(f'{where}: prices are tables, one per model: [prices."MODEL"]')
    rates = [f.name for f in fields(Price)]
    rows = []
    for model, table in value.items():
        at = f'{where}: [prices."{model}"]'
        if not model.strip():
            raise ConfigError(f"{at}: the model name is empty")
        for key, rate in table.items():
            if key not in rates:
                raise ConfigError(f"{at}: unknown rate {key!r} (the rates are {', '.join(rates)})")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1e6:
                raise ConfigError(f"{at}: {key} must be USD per million tokens, from 0, not {rate!r}")
        missing = [key for key in rates if key not in table and not key.startswith("image")]
        if missing:
            raise ConfigError(f"{at}: {', '.join(missing)} missing (every text and audio rate is needed)")
        rows.append(ModelPrice(model.strip(), Price(**{key: float(rate) for key, rate in table.items()})))
    return tuple(rows)


def cost(model: str, usage: Usage, prices: Iterable[ModelPrice] = ()) -> float | None:
    """Estimated USD for ``usage`` on ``model``; ``None`` when no price is known for it."""
    return Spend.of(model, usage, prices).cost_usd


def charge(price: Price, usage: Usage) -> float:
    """USD for ``usage`` at ``price``."""
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
    estimated: bool = False  # priced from another model's price (`Quote.estimated_from`)

    @classmethod
    def of(cls, model: str, usage: Usage, prices: Iterable[ModelPrice] = ()) -> Spend:
        found = quote(model, prices)
        dollars = None if found.price is None else charge(found.price, usage)
        return cls(usage, dollars, found.estimated_from is not None)

    @property
    def label(self) -> str:
        """`` (estimated)`` after a figure priced from another model; else nothing."""
        return " (estimated)" if self.estimated else ""
