"""Item ids a server uses more than once (issue 12: spoken replies vanished from the transcript).
Generated conversations draw every item id from a tiny pool, so user turns, replies and tool calls
share ids in every combination; every turn must be written, in order, with its own words."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_session import assistant_reply, ready_session, turns, user_audio_turn
from voicechat.protocol import events as ev

POOL = st.sampled_from(["item_1", "item_2", "item_x"])


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.tuples(POOL, POOL), min_size=1, max_size=6), skip_added=st.booleans())
def test_every_turn_is_written_whatever_the_server_does_with_ids(ids: list[tuple[str, str]],
                                                                  skip_added: bool) -> None:
    s = ready_session()
    out: list = []
    t = 1.0
    for n, (uid, aid) in enumerate(ids):
        out += user_audio_turn(s, uid, t=t)
        out += s.handle(ev.InputTranscriptCompleted("e", uid, 0, f"question {n}"), t + 1.5)
        if skip_added:  # a server that sends only deltas and done events for its replies
            rid = f"resp_{n}"
            out += s.handle(ev.ResponseCreated("e", ev.Response(rid, "in_progress")), t + 2)
            out += s.handle(ev.AudioTranscriptDelta("e", rid, aid, 0, 0, f"answer {n}"), t + 2)
            out += s.handle(ev.AudioDelta("e", rid, aid, 0, 0, b"\x01\x00" * 240), t + 2)
            out += s.handle(ev.AudioDone("e", rid, aid, 0, 0), t + 2.5)
            out += s.handle(ev.ResponseDone("e", ev.Response(rid, "completed")), t + 2.5)
            out += s.playback_drained()
        else:
            out += assistant_reply(s, f"resp_{n}", aid, f"answer {n}", 480, t=t + 2)
        t += 5
    written = [(turn.role, turn.text) for turn in turns(out)]
    expected = [pair for n in range(len(ids)) for pair in (("user", f"question {n}"), ("assistant", f"answer {n}"))]
    assert written == expected


@settings(max_examples=50, deadline=None)
@given(reuse=st.lists(st.booleans(), min_size=2, max_size=5))
def test_a_reply_reusing_the_id_of_one_still_playing_is_a_turn_of_its_own(reuse: list[bool]) -> None:
    """Replies back to back (no user turn between), some with the previous reply's id."""
    s = ready_session()
    out = user_audio_turn(s, "item_u") + s.handle(ev.InputTranscriptCompleted("e", "item_u", 0, "go"), 2.0)
    aid = "item_a0"
    for n, same in enumerate(reuse):
        aid = aid if same else f"item_a{n}"
        out += assistant_reply(s, f"resp_{n}", aid, f"part {n}", 480, t=3.0 + n)
    written = [(turn.role, turn.text) for turn in turns(out)]
    assert written == [("user", "go")] + [("assistant", f"part {n}") for n in range(len(reuse))]


def test_a_late_event_of_a_finished_response_stays_on_its_turn() -> None:
    """An id used by two responses; the first response ends, then a late done event of its item
    comes: it belongs to the first response's turn, not to a third turn (found by the fuzzer)."""
    s = ready_session()
    out = user_audio_turn(s, "item_u") + s.handle(ev.InputTranscriptCompleted("e", "item_u", 0, "go"), 2.0)
    out += assistant_reply(s, "resp_1", "item_a", "first", 480, t=3.0)
    out += assistant_reply(s, "resp_2", "item_a", "second", 480, t=4.0)
    out += s.handle(ev.AudioTranscriptDone("e", "resp_1", "item_a", 0, 0, "first"), 5.0)
    out += s.handle(ev.AudioTranscriptDone("e", "resp_2", "item_a", 0, 0, "second"), 5.0)
    out += s.tick(30.0)
    written = [(turn.role, turn.text) for turn in turns(out)]
    assert written == [("user", "go"), ("assistant", "first"), ("assistant", "second")]
    assert [(t.role, t.text) for t in s.transcript()] == written
