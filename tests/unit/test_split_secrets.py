"""A key a server splits across deltas (issue 12): each delta is written or shown on its own,
so scrubbing each one whole never saw the key. Generated keys and split points: the event log
logs text deltas by their length (the whole text is in the ``.done`` event, scrubbed whole), and
the panel's growing reply hides a tail that could be the start of a key."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicechat.effects import Turn
from voicechat.eventlog import EventLog
from voicechat.redact import ELIDED, HEAD, Scrubber
from voicechat.ui.snapshot import TurnView

KEYS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=20,
               max_size=60).map(lambda s: "sk-" + s)  # as real keys are


def pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def windows(secret: str, n: int) -> set[str]:
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


EVENT_TYPES = ("response.output_audio_transcript.delta", "response.output_text.delta",
               "response.function_call_arguments.delta")


def write_log(path: Path, said: str, cuts: list[int]) -> str:
    log = EventLog(path)
    part = {"response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0}
    for piece in pieces(said, cuts):
        for etype in EVENT_TYPES:
            log.received({"type": etype, **part, "delta": piece})
    log.received({"type": "response.output_audio_transcript.done", **part, "transcript": said})
    log.close()
    return path.read_text()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(key=KEYS, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_the_event_log_never_holds_a_piece_of_a_split_key(tmp_path: Path, key: str, cuts: list[int]) -> None:
    from voicechat import redact

    redact.remember(key)
    said = f"here it is: {key} — keep it safe"
    name = f"events-{abs(hash((key, tuple(cuts))))}"
    text = write_log(tmp_path / f"{name}.jsonl", said, cuts)
    # The same log with no key in it: a window its own words hold ("on_call_" of
    # function_call_arguments, a date) is no piece of the key.
    plain = write_log(tmp_path / f"{name}-plain.jsonl", said.replace(key, "~" * len(key)), cuts)
    pieces_of_key = windows(key, 8) - windows(plain, 8)
    assert not any(w in text for w in pieces_of_key), "a piece of the key is in the event log"
    for line in text.splitlines():
        json.loads(line)  # every record whole
    assert ELIDED in text


@settings(max_examples=100, deadline=None)
@given(key=KEYS, before=st.text(alphabet="abc .", max_size=10))
def test_the_panel_never_shows_the_start_of_a_key_still_arriving(key: str, before: str) -> None:
    scrubber = Scrubber([key])
    said = f"{before}{key} ok"
    pieces_of_key = windows(key, HEAD) - windows(f"{before} {ELIDED} ok", HEAD)  # not the text's own
    for end in range(len(said) + 1):
        shown = scrubber.scrub_growing(said[:end])
        assert not any(w in shown for w in pieces_of_key), (end, shown)
    assert scrubber.scrub_growing(said) == f"{before}{ELIDED} ok"


def test_a_growing_reply_on_the_panel_is_scrubbed_as_it_grows() -> None:
    from voicechat import redact

    key = "sk-growing-0123456789abcdefXYZ"
    redact.remember(key)
    for end in range(len(key) + 1):
        text = "my key: " + key[:end]
        view = TurnView.from_turn(Turn("assistant", text, item_id="i", started_at=0, ended_at=0), final=False)
        assert not any(w in view.text for w in windows(key, HEAD)), view.text


def test_ordinary_text_is_shown_as_it_grows() -> None:
    scrubber = Scrubber(["sk-secret-0123456789abcdef"])
    assert scrubber.scrub_growing("I asked for sk") == "I asked for sk"
    assert scrubber.scrub_growing("well, skip it") == "well, skip it"
