"""A reply the server never finishes must not hold back the turns after it (issue 12: they
waited until talk ended, and ``kill -9`` lost them). Generated: where the stuck reply stands and
how many finished turns follow it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_session import assistant_reply, ready_session, turns, user_audio_turn
from voicechat.protocol import events as ev


@settings(max_examples=60, deadline=None)
@given(before=st.integers(0, 3), after=st.integers(1, 4), said=st.booleans())
def test_finished_turns_are_written_past_a_reply_the_server_never_finishes(before: int, after: int,
                                                                            said: bool) -> None:
    s = ready_session()
    out: list = []
    t = 1.0
    n = 0

    def turn(stuck: bool = False) -> None:
        nonlocal t, n, out
        uid = f"item_u{n}"
        out += user_audio_turn(s, uid, t=t)
        out += s.handle(ev.InputTranscriptCompleted("e", uid, 0, f"question {n}"), t + 1.5)
        out += assistant_reply(s, f"resp_{n}", f"item_a{n}", f"answer {n}" if said or not stuck else "", 480,
                               t=t + 2, done=not stuck, played=not stuck)
        if stuck:  # the server drops this response on the floor: no audio.done, no response.done
            out += s.playback_drained()
        n += 1
        t += 5

    for _ in range(before):
        turn()
    turn(stuck=True)
    for _ in range(after):
        turn()
    written = turns(out)
    roles = [(w.role, w.text) for w in written]
    expected_after = [pair for k in range(before + 1, before + 1 + after)
                      for pair in (("user", f"question {k}"), ("assistant", f"answer {k}"))]
    assert roles[-2 * after :] == expected_after, roles
    stuck = written[2 * before + 1]
    assert stuck.role == "assistant" and stuck.interrupted, stuck
    assert len(written) == 2 * (before + 1 + after)
