"""Cost estimates from response usage, checked against figures worked out by hand."""

from __future__ import annotations

import pytest

from voicechat.errors import ConfigError
from voicechat.pricing import (
    PRICES,
    ModelPrice,
    Price,
    Quote,
    Spend,
    cost,
    parse_prices,
    price_for,
    quote,
)
from voicechat.protocol.events import Usage

# The usage example of protocol reference §6.5.
EXAMPLE = Usage(
    input_tokens=132,
    output_tokens=121,
    total_tokens=253,
    input_text=119,
    input_audio=13,
    input_cached=64,
    cached_text=64,
    output_text=30,
    output_audio=91,
)


def test_reference_example_on_gpt_realtime() -> None:
    # text: 55 x 4.00 + 64 x 0.40 = 245.6; audio in: 13 x 32 = 416
    # out: 30 x 16 = 480 + 91 x 64 = 5824  ->  6965.6 per million
    assert cost("gpt-realtime", EXAMPLE) == pytest.approx(6965.6e-6)


def test_dated_snapshot_is_priced_as_its_alias() -> None:
    assert cost("gpt-realtime-2025-08-28", EXAMPLE) == pytest.approx(6965.6e-6)
    # mini: 55 x 0.60 + 64 x 0.06 + 13 x 10 + 30 x 2.40 + 91 x 20 = 2058.84
    assert cost("gpt-realtime-mini-2025-12-15", EXAMPLE) == pytest.approx(2058.84e-6)
    assert cost(" GPT-Realtime-Mini ", EXAMPLE) == pytest.approx(2058.84e-6)


def test_gpt_realtime_2_has_its_own_text_output_price() -> None:
    # as the example, but text out at 24.00: 30 x 24 = 720 instead of 480
    assert cost("gpt-realtime-2", EXAMPLE) == pytest.approx(7205.6e-6)


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-realtime-preview", "whisper-1", "", "my-azure-deployment", "realtime-gpt"],
)
def test_a_model_of_no_known_family_has_no_cost(model: str) -> None:
    assert price_for(model) is None
    assert cost(model, EXAMPLE) is None
    assert Spend.of(model, EXAMPLE) == Spend(EXAMPLE, None, False)


def test_similar_names_are_not_confused() -> None:
    assert price_for("gpt-realtime-2.1-mini") is PRICES["gpt-realtime-2.1-mini"]
    assert price_for("gpt-realtime-2-2026-01-01") is PRICES["gpt-realtime-2"]
    assert price_for("gpt-realtime-mini") is not PRICES["gpt-realtime"]
    assert quote("gpt-realtime-2.1-mini").estimated_from is None


@pytest.mark.parametrize("model, family", [
    ("gpt-realtime-2.1", "gpt-realtime-2"),  # the default model: no published price
    ("GPT-Realtime-2.1-2026-10-01", "gpt-realtime-2"),
    ("gpt-realtime-3", "gpt-realtime-2"),
    ("gpt-realtime-3-mini", "gpt-realtime-2.1-mini"),
])
def test_a_realtime_model_without_a_price_is_estimated_from_its_family(model: str, family: str) -> None:
    found = quote(model)
    assert found.price is PRICES[family] and found.estimated_from == family
    spend = Spend.of(model, EXAMPLE)
    assert spend.cost_usd == pytest.approx(cost(family, EXAMPLE)) and spend.estimated
    assert spend.label == " (estimated)" and Spend.of(family, EXAMPLE).label == ""


CHEAP = Price(1, 0.1, 2, 3, 0.3, 4)


def test_a_config_price_overrides_the_published_one_and_prices_any_name() -> None:
    rows = (ModelPrice("GPT-Realtime-2", CHEAP), ModelPrice("my-azure-deployment", CHEAP))
    usage = Usage(input_tokens=1000, input_audio=1000, output_tokens=500, output_audio=500)
    # 1000 x 3 + 500 x 4 = 5000 per million
    for model in ("gpt-realtime-2", "gpt-realtime-2-2026-01-01", "my-azure-deployment"):
        assert quote(model, rows) == Quote(CHEAP)
        assert Spend.of(model, usage, rows) == Spend(usage, pytest.approx(0.005), False)
    assert quote("gpt-realtime-2.1", rows).price is PRICES["gpt-realtime-2"], "a family estimate is the published row"


def test_config_price_tables_are_parsed_with_every_text_and_audio_rate() -> None:
    table = {"text_in": 1, "text_cached": 0.1, "text_out": 2, "audio_in": 3, "audio_cached": 0.3, "audio_out": 4}
    assert parse_prices({"m": table}, "cfg") == (ModelPrice("m", CHEAP),)
    assert parse_prices({"m": {**table, "image_in": 5}}, "cfg")[0].price.image_in == 5.0


@pytest.mark.parametrize("value, message", [
    ([{"text_in": 1}], 'prices are tables, one per model: [prices."MODEL"]'),
    ({"m": 3}, 'prices are tables'),
    ({" ": {}}, "the model name is empty"),
    ({"m": {"text_in": 1}}, "text_cached, text_out, audio_in, audio_cached, audio_out missing"),
    ({"m": {"text_inn": 1}}, "unknown rate 'text_inn'"),
    ({"m": {"text_in": -1}}, "text_in must be USD per million tokens, from 0, not -1"),
    ({"m": {"text_in": "4"}}, "text_in must be USD per million tokens, from 0, not '4'"),
    ({"m": {"text_in": True}}, "text_in must be USD per million tokens"),
    ({"m": {"text_in": float("inf")}}, "text_in must be USD per million tokens"),
    ({"m": {"text_in": float("nan")}}, "text_in must be USD per million tokens"),
])
def test_a_bad_price_table_is_one_error_naming_where(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^cfg: ") as caught:
        parse_prices(value, "cfg")
    assert message in str(caught.value)


def test_cached_audio_is_charged_at_the_cached_rate() -> None:
    usage = Usage(input_tokens=1000, input_audio=1000, input_cached=600, cached_audio=600)
    # 400 x 32 + 600 x 0.40 = 13040
    assert cost("gpt-realtime", usage) == pytest.approx(13040e-6)


def test_cached_tokens_without_a_split_count_as_text_first() -> None:
    usage = Usage(input_tokens=300, input_text=100, input_audio=200, input_cached=150)
    # text: 100 cached x 0.40 = 40; audio: 150 x 32 + 50 cached x 0.40 = 4820
    assert cost("gpt-realtime", usage) == pytest.approx(4860e-6)


def test_tokens_without_a_modality_are_charged_as_audio() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500, total_tokens=1500)
    # 1000 x 32 + 500 x 64 = 64000
    assert cost("gpt-realtime", usage) == pytest.approx(0.064)


def test_image_tokens_use_the_image_rates() -> None:
    usage = Usage(input_tokens=1000, input_image=1000, input_cached=200, cached_image=200)
    # 800 x 5.00 + 200 x 0.50 = 4100
    assert cost("gpt-realtime-1.5", usage) == pytest.approx(4100e-6)


def test_nothing_used_costs_nothing() -> None:
    assert cost("gpt-realtime", Usage()) == 0.0


def test_accumulated_usage_costs_the_sum_of_its_parts() -> None:
    assert cost("gpt-realtime", EXAMPLE + EXAMPLE) == pytest.approx(2 * 6965.6e-6)
