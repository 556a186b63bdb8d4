"""When a setting has an effect: the rules the table's ``applies`` column names.

Several settings only mean something with others: the server VAD tuning with ``--vad server``,
eagerness with semantic VAD, the language with transcription on, the speed with audio answers,
the reasoning effort with a model that reasons.
A rule is a predicate on the resolved settings and the reason, naming the setting that decides
and where that one came from. ``session_config`` leaves out what does not apply; ``validate``
refuses such a value given as a flag; ``config show`` marks it unused.

Pure; the settings are read by attribute, so this module needs no import of the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicechat.protocol.constants import known_not_to_reason


@dataclass(frozen=True, slots=True)
class Rule:
    active: Callable[[Any], bool]
    """Whether settings that follow this rule have an effect."""
    why: Callable[[Any], str]
    """Why they have none (only asked when ``active`` is False)."""


def _vad_only(mode: str) -> Rule:
    return Rule(lambda s: s.vad == mode,
                lambda s: f"it applies to --vad {mode} only (vad is {s.vad}, from {s.source('vad')})")


RULES: dict[str, Rule] = {
    "server vad": _vad_only("server"),
    "semantic vad": _vad_only("semantic"),
    "turn detection": Rule(lambda s: s.vad != "none",
                           lambda s: f"there is no turn detection with --vad none (from {s.source('vad')})"),
    "transcription": Rule(lambda s: s.transcribing,
                          lambda s: f"input transcription is off (from {s.source('transcribe')})"),
    "reasoning model": Rule(lambda s: not known_not_to_reason(s.model.strip()),
                            lambda s: f"{s.model} does not reason (model from {s.source('model')})"),
    "audio output": Rule(lambda s: not s.text_only,
                         lambda s: f"the assistant answers in text only (from {s.source('text_only')})"),
}


def applies(settings: Any, rule: str | None) -> bool:
    """Whether a setting under ``rule`` (None: always) has an effect with these settings."""
    return rule is None or RULES[rule].active(settings)
