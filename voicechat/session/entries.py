"""One conversation item as the transcript keeps it, and the pure rules that read it.

An ``Entry`` is mutable while its item is live (deltas, audio, a cut); the ``Turn`` made from it
(`turn_of`) is what everything else sees. The rules here have no state of their own: how much
of a reply the listener heard (`heard_chars`, cut back to a whole word), the ``Turn`` an entry
stands for, and the text item that re-creates a written turn in a fresh server session
(`seed_item`). Kept apart from the ordering in ``transcript.py`` so each can be read alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev
from voicechat.protocol.constants import WIRE_RATE

MAX_SEED_CHARS = 4000  # of one re-seeded tool result


@dataclass
class Entry:
    """Transcript state of one conversation item."""

    item_id: str
    role: str
    kind: str
    started_at: float
    text: str = ""
    final: bool = False
    written: fx.Turn | None = None  # the turn as written out: what the transcript shows from then on
    ended_at: float = 0.0
    interrupted: bool = False
    response_id: str | None = None
    audio_samples: int = 0  # assistant audio received (wire samples)
    audio_complete: bool = False
    audio_ms: int = 0  # user speech length
    deadline: float | None = None  # user audio: give up waiting for a transcript at this time
    note: str | None = None
    marks: list[tuple[int, int]] = field(default_factory=list)  # (audio samples, text length)
    heard_chars: int | None = None
    usage: ev.Usage | None = None
    result: str | None = None  # a function call: its output, once sent (the turn waits for it)
    call: fx.ToolCall | None = None  # a function call: its name and arguments, as the model wrote them
    key: str = ""  # the transcript's own key: item_id, or item_id#n for an id the server used again
    announced: bool = False  # its conversation.item.added came (not only a transcript or a delta)


def finish(entry: Entry, now: float, note: str | None = None) -> None:
    """The item is complete: its turn may be written (a call's turn waits for its result)."""
    if entry.final or (entry.kind == "function_call" and entry.result is None):
        return
    entry.final = True
    entry.ended_at = now
    entry.note = note
    entry.deadline = None


def cut(entry: Entry | None, played_samples: int) -> int | None:
    """Cut a reply to the wire samples the speaker was handed: mark it interrupted with the
    words heard and return the samples heard; ``None`` when there is nothing to cut (no
    audio yet, or all of it arrived and was heard).
    """
    if entry is None or entry.audio_samples == 0:
        return None
    heard = max(0, min(played_samples, entry.audio_samples))
    if entry.audio_complete and heard >= entry.audio_samples:
        return None
    entry.interrupted = True
    entry.heard_chars = heard_chars(entry, heard)
    return heard


def heard_chars(entry: Entry, heard_samples: int) -> int:
    """How much of the reply's text the listener heard, cut back to a whole word.

    While the audio is still arriving, text counts as heard if it arrived before audio the
    listener reached. Once all the audio is in, the text is spread over it in proportion
    (servers may send the transcript ahead of, or after, its audio, so arrival order alone
    can say "nothing" for a reply that was half heard).
    """
    chars = 0
    if entry.audio_complete and entry.audio_samples > 0:
        chars = len(entry.text) * min(heard_samples, entry.audio_samples) // entry.audio_samples
    else:
        for samples_at, length in entry.marks:
            if samples_at >= heard_samples:
                break  # text that arrived with audio the listener never reached
            chars = length
    # Cut back to a word boundary so no half-heard word is kept.
    text = entry.text[:chars]
    if chars < len(entry.text) and text and not text[-1].isspace():
        space = text.rfind(" ")
        chars = space if space >= 0 else 0
    return chars


def turn_of(entry: Entry) -> fx.Turn:
    """The turn an entry stands for now (once written, the written turn, whatever came later)."""
    if entry.written is not None:
        return entry.written  # late events may still touch the entry; its written turn stays
    text = entry.text.strip()
    if entry.interrupted and entry.heard_chars is not None:
        text = entry.text[: entry.heard_chars].strip()
    return fx.Turn(
        role=entry.role,
        text=text,
        item_id=entry.item_id,
        started_at=entry.started_at,
        ended_at=entry.ended_at or entry.started_at,
        interrupted=entry.interrupted,
        kind=entry.kind,
        audio_ms=entry.audio_ms if entry.role == "user" else entry.audio_samples * 1000 // WIRE_RATE,
        usage=entry.usage,
        note=entry.note,
        result=entry.result,
        call=entry.call,
    )


def words(item: ev.Item) -> str:
    """The text or transcript of an item's content parts, joined."""
    return " ".join(p.words or "" for p in item.content).strip()


def seed_item(turn: fx.Turn) -> dict[str, Any] | None:
    """One written turn as a text item for a new server session (``None``: nothing to say)."""
    text = turn.text.strip()
    if turn.role == "tool" or turn.kind == "function_call":
        if turn.result is not None:
            result = turn.result if len(turn.result) <= MAX_SEED_CHARS else turn.result[:MAX_SEED_CHARS] + "..."
            said = f"Earlier in this conversation the tool call {text} returned: {result}"
        else:
            said = f"Earlier in this conversation the tool call {text} did not complete ({turn.note or 'no result'})."
        return cmd.text_message("system", said)
    if text and turn.role in ("user", "assistant"):
        return cmd.text_message(turn.role, text)
    return None


def apply_item(entry: Entry, item: ev.Item, now: float, *, done: bool, user_ms: int,
               transcript_wait_s: float | None) -> None:
    """What ``conversation.item.added``/``.done`` says about an entry.

    ``user_ms`` is the length of the user's last speech (its item follows it); with
    ``transcript_wait_s`` None no transcript is coming, else a spoken turn waits that long for one.
    """
    if entry.role == "user":
        texts = [p.words for p in item.content if p.words]
        if texts and not entry.text:
            entry.text = " ".join(t for t in texts if t)
        if entry.kind == "audio" and entry.audio_ms == 0:
            entry.audio_ms = user_ms
        if done and not entry.final and entry.kind == "image":
            finish(entry, now, note=entry.note)  # the picture's label
        elif done and not entry.final:
            if entry.kind == "text" or entry.text or transcript_wait_s is None:
                finish(entry, now, note=None if entry.text else "no transcript")
            elif entry.deadline is None:
                entry.deadline = now + transcript_wait_s
    elif entry.role == "tool" and done:
        if item.name or not entry.text:
            entry.call = fx.ToolCall(item.name or "tool", item.arguments or "")
            entry.text = entry.call.text
        finish(entry, now)  # only once its output is known
    elif entry.role == "assistant" and done:
        if not entry.text:
            entry.text = words(item)
        if item.status == "incomplete":
            entry.interrupted = True
        entry.audio_complete = True
        finish(entry, now)


def response_done(entry: Entry, r: ev.Response, item: ev.Item, now: float) -> None:
    """``response.done`` lists ``item`` among its output: its audio is complete, the turn final."""
    entry.audio_complete = True
    if r.status in ("cancelled", "incomplete") and entry.role == "assistant":
        entry.interrupted = entry.interrupted or r.status == "cancelled" or item.status == "incomplete"
    if not entry.final:
        if not entry.text:
            entry.text = words(item)
        finish(entry, now)
