"""The transcript model: every conversation item in order, and when each turn is written out.

Items arrive out of order (a transcript before its item, an output item with no
``output_item.added``, a late item placed after one already written), so entries are keyed by
item id and kept in an explicit order. Turns are written strictly from the front: a turn is
written once it is final and, for a reply, no longer audible (a barge-in may still cut it to
what was heard) — the caller says which items are held (``held``). Written turns never change,
which lets the panel cache them. The entries outlive connections; only the placement of the
current responses' items (``reset``) belongs to one server session.

A server may use an item id again for a new item (another response's output, a new user turn
after the first was written): the new item gets an entry of its own under a key of its own
(``item_1#2``), and events naming the id reach the newest item that has it, so a reply whose
id was used before is written as a turn of its own instead of vanishing into a written one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from voicechat import effects as fx
from voicechat.protocol import events as ev
from voicechat.session.entries import Entry, cut, finish, seed_item, turn_of

SEED_PREFIX = "vc_seed_"  # ids of the earlier turns re-created in a new server session
RESUMED_PREFIX = "vc_resumed_"  # transcript keys of turns read back from a --resume file
MAX_PENDING_PICTURES = 16  # labels of pictures sent whose items have not come back yet
MAX_SEED_TURNS = 500  # the newest turns re-seeded (the server truncates an overlong context itself)


class Transcript:
    """Entries by item id, their order, and how many from the front are written out."""

    def __init__(self, held: Callable[[str], bool]) -> None:
        self._held = held  # an item still being played (its turn waits)
        self._entries: dict[str, Entry] = {}  # by key (the item id, or item_id#n when used again)
        self._current: dict[str, str] = {}  # an item id used more than once -> the key of its newest item
        self._older: dict[str, list[str]] = {}  # an item id used more than once -> the keys of its older items
        self._reused = 0
        self._order: list[str] = []
        self._by_response: dict[str, list[str]] = {}  # assistant items of unfinished responses
        self._emit_from = 0
        self._restored = 0
        self._pictures: deque[str] = deque(maxlen=MAX_PENDING_PICTURES)  # labels of pictures sent, in order

    def expect_picture(self, label: str) -> None:
        """A picture was sent: the next picture item the server announces is labelled ``label``."""
        self._pictures.append(label)

    def reset(self) -> None:
        """A new server session: the old one's unfinished responses will never finish."""
        self._by_response.clear()

    # ---- reading --------------------------------------------------------------------------

    @property
    def written(self) -> int:
        """How many turns, from the start, are written out (they no longer change)."""
        return self._emit_from

    @property
    def unwritten(self) -> bool:
        return self._emit_from < len(self._order)

    def _key(self, item_id: str) -> str:
        return self._current.get(item_id, item_id)

    def get(self, item_id: str) -> Entry | None:
        """The entry of the newest item with this id."""
        return self._entries.get(self._key(item_id))

    def turns(self) -> list[fx.Turn]:
        return [turn_of(self._entries[i]) for i in self._order]

    def turns_from(self, start: int) -> list[tuple[fx.Turn, bool]]:
        return [(turn_of(self._entries[i]), self._entries[i].final) for i in self._order[start:]]

    def open_entries(self) -> Iterator[Entry]:
        """The entries not written out yet, in order."""
        for item_id in self._order[self._emit_from :]:
            yield self._entries[item_id]

    # ---- placing items ----------------------------------------------------------------------

    def remember(self, entry: Entry, previous_key: str | None = None) -> Entry:
        """Keep a new entry, placed after the entry keyed ``previous_key`` when there is one."""
        key = entry.item_id
        if key in self._entries:  # the server used this id before: a new item all the same
            self._reused += 1
            self._older.setdefault(entry.item_id, []).append(self._key(entry.item_id))
            key = f"{entry.item_id}#{self._reused}"
            self._current[entry.item_id] = key
        entry.key = key
        self._entries[key] = entry
        self._insert(key, previous_key)
        return entry

    def _insert(self, key: str, previous_key: str | None) -> None:
        if previous_key is not None and previous_key != key and previous_key in self._entries:
            at = self._order.index(previous_key) + 1
            # Never re-open what was already written out: a late item lands at the first open slot.
            self._order.insert(max(at, self._emit_from), key)
        else:
            self._order.append(key)

    def entry_for(self, item: ev.Item, previous_item_id: str | None, now: float, *, added: bool = False,
                  previous_key: str | None = None) -> Entry | None:
        """The transcript entry of ``item``, created and placed in order on first sight.

        ``added``: the server announces a new item (``conversation.item.added``); if the entry
        of that id is of another role, or was announced before and is already written, the id is
        being used again, for a new item (a transcript or a delta that overtook its item
        announces nothing)."""
        entry = self.get(item.id)
        if entry is not None and added and (entry.role != _role(item) or _spent(entry)):
            entry = None
        if entry is None:
            entry = _new_entry(item, now)
            if entry is not None:
                if entry.kind == "image":
                    entry.note = self._pictures.popleft() if self._pictures else "image"
                if previous_key is None and previous_item_id is not None:
                    previous_key = self._key(previous_item_id)
                self.remember(entry, previous_key)
        if entry is not None and added:
            entry.announced = True
        return entry

    def response_entry(self, item: ev.Item, response_id: str, now: float) -> Entry | None:
        """The entry of an output item of ``response_id``, placed after the response's last one
        (a new entry when the id's entry belongs to another response or is already written)."""
        entry = self._of_response(item.id, response_id) or self.get(item.id)
        if entry is None or not self._belongs(entry, response_id):
            entry = _new_entry(item, now)
            if entry is None:
                return None
            self.remember(entry, self._last_item_of(response_id))
        self._attach(entry, response_id)
        return entry

    def assistant_entry(self, item_id: str, response_id: str, now: float) -> Entry:
        """The reply an audio or text delta belongs to (created if the server skipped its item,
        or used its id before for an item of another response)."""
        entry = self._of_response(item_id, response_id) or self.get(item_id)
        if entry is None or not self._belongs(entry, response_id, late=True):
            entry = self.remember(Entry(item_id, "assistant", "audio", now), self._last_item_of(response_id))
            self._attach(entry, response_id)
        return entry

    def _of_response(self, item_id: str, response_id: str) -> Entry | None:
        """The entry of ``item_id`` placed in ``response_id`` (ids used again: one per response)."""
        for key in self._by_response.get(response_id, ()):
            if self._entries[key].item_id == item_id:
                return self._entries[key]
        for key in self._older.get(item_id, ()):  # a late event of a finished response
            if self._entries[key].response_id == response_id:
                return self._entries[key]
        return None

    @staticmethod
    def _belongs(entry: Entry | None, response_id: str, *, late: bool = False) -> bool:
        """Whether ``entry`` may be an item of ``response_id``: not one placed in another
        response or of a user (the server used the same id twice), nor, for a new output item,
        one written out already. ``late``: a delta, which may come late for its written item."""
        if entry is None:
            return True
        if entry.response_id is not None:
            return entry.response_id == response_id
        return entry.role != "user" and (late or entry.written is None)

    def user_placeholder(self, item_id: str, now: float) -> Entry:
        """A transcript that overtook its item: a user entry in arrival order until the item comes."""
        entry = self.get(item_id)
        return entry if entry is not None else self.remember(Entry(item_id, "user", "audio", now))

    def _last_item_of(self, response_id: str) -> str | None:
        items = self._by_response.get(response_id)
        return items[-1] if items else None

    def _attach(self, entry: Entry, response_id: str) -> None:
        if entry.response_id != response_id:
            entry.response_id = response_id
            self._by_response.setdefault(response_id, []).append(entry.key)

    def show_call(self, item: ev.Item, response_id: str, call: fx.ToolCall, now: float) -> None:
        """A function call of ``response_id``: shown as ``name(arguments)`` until its result comes."""
        entry = self.response_entry(item, response_id, now)
        if entry is not None:
            entry.call = call
            entry.text = call.text

    def answer(self, item_id: str, output: str, now: float) -> None:
        """The output of a call's item is sent: its turn is final."""
        entry = self.get(item_id)
        if entry is not None:
            entry.result = output
            finish(entry, now)

    def response_items(self, response_id: str) -> list[Entry]:
        """The items of a response that just finished (forgotten as it is asked)."""
        return [self._entries[i] for i in self._by_response.pop(response_id, ())]

    # ---- writing out ------------------------------------------------------------------------

    def emit_ready(self) -> list[fx.Effect]:
        """Write out the turns at the front that are final and no longer held."""
        out: list[fx.Effect] = []
        while self._emit_from < len(self._order):
            entry = self._entries[self._order[self._emit_from]]
            if not entry.final and self._abandoned(entry):
                entry.final = entry.interrupted = True  # what came of it is kept, marked cut short
                entry.note = entry.note or "the server did not finish it"
            if not entry.final:
                break
            if self._held(entry.item_id):
                break  # still being played: a barge-in may yet cut it to what was heard
            self._emit_from += 1
            entry.written = turn_of(entry)
            out.append(fx.TurnFinished(entry.written))
        return out

    def _abandoned(self, entry: Entry) -> bool:
        """Whether the server left this reply unfinished for good: a later response of its own
        has finished (one response runs at a time), and nothing of this one is still playing.
        Without this, one reply the server never finishes held back every later turn until
        talk ended, and ``kill -9`` lost them all."""
        if entry.role != "assistant" or self._held(entry.item_id):
            return False
        for key in self._order[self._emit_from + 1 :]:
            later = self._entries[key]
            if later.final and later.response_id is not None and later.response_id != entry.response_id \
                    and later.response_id not in self._by_response:
                return True
        return False

    def expire_waits(self, now: float) -> None:
        """Give up on user transcripts whose wait is over."""
        for entry in self.open_entries():
            if not entry.final and entry.deadline is not None and now >= entry.deadline:
                finish(entry, now, note="no transcript")

    def finish_all(self, now: float | None, played: Mapping[str, int] | None, no_result: str) -> None:
        """Make every unwritten turn final: a reply cut at what ``played`` says was heard, a user
        turn with no words noted, a call with no result noted with ``no_result``."""
        for item_id, samples in (played or {}).items():
            entry = self.get(item_id)
            if entry is None or entry.written is not None:
                continue
            if cut(entry, samples) is not None and now is not None:
                entry.ended_at = now
        for entry in self.open_entries():
            if entry.final:
                continue
            entry.final = True
            entry.interrupted = entry.interrupted or entry.role == "assistant"
            if now is not None:
                entry.ended_at = now
            if entry.role == "user" and not entry.text:
                entry.note = "no transcript"
            if entry.kind == "function_call" and entry.result is None:
                entry.note = no_result

    # ---- earlier turns ----------------------------------------------------------------------

    def restore(self, turns: Sequence[fx.Turn]) -> None:
        """Earlier turns (a saved transcript), counted as written: shown, never written again."""
        for turn in turns:
            self._restored += 1
            key = f"{RESUMED_PREFIX}{self._restored}"
            entry = Entry(key, turn.role, turn.kind, turn.started_at, text=turn.text, final=True, written=turn,
                          ended_at=turn.ended_at, key=key)
            self._entries[key] = entry
            self._order.insert(self._emit_from, key)
            self._emit_from += 1

    def seed_items(self, connection: int) -> list[dict[str, Any]]:
        """The written turns as text items for a fresh server session, oldest first.

        Assistant audio cannot be re-created, so every turn goes back as text (reference §7.11):
        the user's words as ``input_text``; the assistant's as ``output_text``, only what the
        user heard of an interrupted reply; a tool call as a short ``system`` note of what it
        returned (its call id means nothing to the new session). Turns with no words (speech
        that was never transcribed, a picture, a reply cut before any word) are left out.
        """
        items = []
        for item_id in self._order[: self._emit_from]:
            turn = self._entries[item_id].written
            item = seed_item(turn) if turn is not None else None
            if item is not None:
                items.append(item)
        items = items[-MAX_SEED_TURNS:]
        for n, item in enumerate(items):
            item["id"] = f"{SEED_PREFIX}{connection}_{n}"
        return items


def _spent(entry: Entry) -> bool:
    """Whether the item of ``entry`` was announced and its turn is already written."""
    return entry.announced and entry.written is not None


def _role(item: ev.Item) -> str | None:
    """The role of the entry an item would get."""
    return "tool" if item.type == "function_call" else item.role


def _new_entry(item: ev.Item, now: float) -> Entry | None:
    if item.id.startswith(SEED_PREFIX):
        return None  # an earlier turn re-created in this server session: already shown
    if item.type == "message" and item.role in ("user", "assistant"):
        kinds = {p.kind for p in item.content}
        kind = "audio" if "audio" in kinds or (item.role == "assistant" and not kinds) else "text"
        if item.role == "user" and "image" in kinds:
            kind = "image"  # its turn shows the picture's label (the entry's note)
        return Entry(item.id, item.role, kind, now)
    if item.type == "function_call":
        return Entry(item.id, "tool", "function_call", now)
    return None  # system messages, tool outputs and re-seeded history are not shown again
