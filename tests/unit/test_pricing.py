"""Cost estimates from response usage, checked against figures worked out by hand."""

from __future__ import annotations

import pytest

from voicechat.pricing import PRICES, cost, price_for
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
    ["gpt-realtime-2.1", "gpt-4o-realtime-preview", "whisper-1", "", "my-azure-deployment"],
)
def test_unknown_model_has_no_cost(model: str) -> None:
    assert price_for(model) is None
    assert cost(model, EXAMPLE) is None


def test_similar_names_are_not_confused() -> None:
    assert price_for("gpt-realtime-2.1-mini") is PRICES["gpt-realtime-2.1-mini"]
    assert price_for("gpt-realtime-2-2026-01-01") is PRICES["gpt-realtime-2"]
    assert price_for("gpt-realtime-mini") is not PRICES["gpt-realtime"]
    assert price_for("gpt-realtime-extra") is None


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
