"""Plausible token accounting for ``response.done.usage`` and transcription usage (§5, §6.5).

User audio costs 10 tokens/s, assistant audio 20 tokens/s, text about one token per 4
characters, an image a flat 85 tokens. Every response re-reads the whole conversation as
input; the part already read by the previous response counts as cached (a subset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from voicechat.server.items import Item

IMAGE_TOKENS = 85
MESSAGE_OVERHEAD = 4


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def user_audio_tokens(ms: float) -> int:
    return math.ceil(ms / 100)


def assistant_audio_tokens(ms: float) -> int:
    return math.ceil(ms / 50)


@dataclass(frozen=True)
class Tokens:
    text: int = 0
    audio: int = 0
    image: int = 0

    @property
    def total(self) -> int:
        return self.text + self.audio + self.image


def context_tokens(items: list[Item], instructions: str, tools: list[dict[str, Any]]) -> Tokens:
    """What a response reads as input: instructions, tools and every conversation item."""
    text = text_tokens(instructions) + sum(text_tokens(str(t)) for t in tools)
    audio = image = 0
    for item in items:
        text += MESSAGE_OVERHEAD
        if item.type != "message":
            text += text_tokens((item.arguments or "") + (item.output or "") + (item.name or ""))
            continue
        for i, part in enumerate(item.content):
            ptype = part["type"]
            if ptype in ("input_text", "output_text"):
                text += text_tokens(part.get("text") or "")
            elif ptype == "input_image":
                image += IMAGE_TOKENS
            elif ptype == "input_audio":
                audio += user_audio_tokens(item.audio_ms(i))
            elif ptype == "output_audio":
                audio += assistant_audio_tokens(item.audio_ms(i))
    return Tokens(text, audio, image)


def response_usage(context: Tokens, cached: Tokens, out_text: int, out_audio: int) -> dict[str, Any]:
    """The ``usage`` object of ``response.done``."""
    cached = Tokens(min(cached.text, context.text), min(cached.audio, context.audio), min(cached.image, context.image))
    output = out_text + out_audio
    return {
        "total_tokens": context.total + output,
        "input_tokens": context.total,
        "output_tokens": output,
        "input_token_details": {
            "text_tokens": context.text,
            "audio_tokens": context.audio,
            "image_tokens": context.image,
            "cached_tokens": cached.total,
            "cached_tokens_details": {
                "text_tokens": cached.text,
                "audio_tokens": cached.audio,
                "image_tokens": cached.image,
            },
        },
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def transcription_usage(model: str, audio_ms: float, transcript: str) -> dict[str, Any]:
    """``whisper-1`` bills by duration; the GPT transcribers by tokens."""
    if model == "whisper-1":
        return {"type": "duration", "seconds": round(audio_ms / 1000, 3)}
    audio = user_audio_tokens(audio_ms)
    out = text_tokens(transcript)
    return {
        "type": "tokens",
        "input_tokens": audio,
        "output_tokens": out,
        "total_tokens": audio + out,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio},
    }


class RateLimits:
    """Requests/tokens budget that resets every minute, reported at each response start."""

    def __init__(self, requests: int = 5000, tokens: int = 400_000) -> None:
        self.limits = {"requests": requests, "tokens": tokens}
        self.used = {"requests": 0, "tokens": 0}
        self.window_start: float | None = None

    def reserve(self, now: float, tokens: int) -> list[dict[str, Any]]:
        if self.window_start is None or now - self.window_start >= 60:
            self.window_start = now
            self.used = {"requests": 0, "tokens": 0}
        self.used["requests"] += 1
        self.used["tokens"] += tokens
        reset = round(max(0.0, 60 - (now - self.window_start)), 3)
        return [
            {"name": name, "limit": limit, "remaining": max(0, limit - self.used[name]), "reset_seconds": reset}
            for name, limit in self.limits.items()
        ]
