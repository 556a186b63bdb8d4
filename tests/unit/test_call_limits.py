"""A server cannot make voicechat run tools without end: a cap on the calls of one response, and
on automatic follow-ups in a row with no user turn between them (issue 12). Generated call counts
and result orders; every call still gets exactly one answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_session_tools import call, done, ready, runs, start, types
from voicechat import effects as fx
from voicechat.protocol import events as ev
from voicechat.session.calls import MAX_CALLS_PER_RESPONSE, MAX_FOLLOW_UPS


def outputs(effects: list) -> list[str]:
    return [e.event["item"]["call_id"] for e in effects if isinstance(e, fx.Send)
            and e.event["type"] == "conversation.item.create" and e.event["item"]["type"] == "function_call_output"]


def warnings(effects: list) -> list[str]:
    return [e.message for e in effects if isinstance(e, fx.Notice) and e.level == "warning"]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 3 * MAX_CALLS_PER_RESPONSE), seed=st.randoms(use_true_random=False))
def test_the_calls_of_one_response_are_capped_and_every_call_answered_once(n: int, seed) -> None:  # type: ignore[no-untyped-def]
    s = ready()
    out = start(s, "r1")
    for i in range(n):
        out += call(s, "r1", i, f"fc{i}", f"call_{i}", "echo", "{}")
    out += done(s, "r1")
    ran = runs(out)
    assert len(ran) == min(n, MAX_CALLS_PER_RESPONSE)
    order = list(ran)
    seed.shuffle(order)
    for r in order:
        out += s.tool_result(r.call_id, '{"ok": true}', 3.0)
    answered = outputs(out)
    assert sorted(answered) == sorted(f"call_{i}" for i in range(n)), "every call answered, exactly once"
    assert len(warnings(out)) == (1 if n > MAX_CALLS_PER_RESPONSE else 0)
    assert types(out).count("response.create") == (1 if n else 0)


@settings(max_examples=10, deadline=None)
@given(rounds=st.integers(1, 3 * MAX_FOLLOW_UPS))
def test_follow_ups_in_a_row_are_capped_until_the_user_speaks(rounds: int) -> None:
    """A model that calls a tool in every reply: at most MAX_FOLLOW_UPS replies are asked for,
    then the results are still sent but no more; a user turn lets it go on again."""
    s = ready()
    asked = 0
    out: list = []
    for k in range(rounds):
        rid = f"r{k}"
        step = start(s, rid) + call(s, rid, 0, f"fc{k}", f"call_{k}", "echo", "{}") + done(s, rid)
        step += s.tool_result(f"call_{k}", "{}", 3.0)
        assert outputs(step) == [f"call_{k}"]
        asked += types(step).count("response.create")
        out += step
    assert asked == min(rounds, MAX_FOLLOW_UPS)
    assert len(warnings(out)) == (1 if rounds > MAX_FOLLOW_UPS else 0)
    # The user says something: the model may go on with its tools again.
    s.handle(ev.ItemAdded("e", ev.Item("u1", "message", role="user"), None), 4.0)
    step = start(s, "after") + call(s, "after", 0, "fc_after", "call_after", "echo", "{}") + done(s, "after")
    step += s.tool_result("call_after", "{}", 5.0)
    assert types(step).count("response.create") == 1
