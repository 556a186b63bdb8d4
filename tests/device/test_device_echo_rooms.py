"""Device tier: spoken conversations in the echo rooms, through real PortAudio streams.

`bench.echo_rooms.run_room` drives ``voicechat talk`` (default settings: ``--echo auto``) in a
room of `bench.rooms` with espeak-ng speech: replies heard out with the user silent, and
replies talked over at the echo's own level (0 dB speech to echo). ``make bench`` runs the same
with 30 replies per room and prints the echo table.

Rooms here: ``worst`` (the speaker is the microphone) and ``headset``. The reverberant laptop
rooms are measured by ``make bench`` (0 self-interruptions in 25 replies each, barge-in at 0 dB
10/10 laptop and 9/10 loud-laptop), but not yet held here: this short conversation in
``laptop`` interrupted itself after a barge-in in 3 of 11 runs (three in a row, then none in
eight, two of them with both cores kept busy); the cause is not found yet, and a strict test
must not fail now and then. Issue 11 stays open for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import echo_rooms

pytestmark = [pytest.mark.device, pytest.mark.slow]


@pytest.mark.parametrize("room", ["worst", "headset"])
def test_the_assistant_never_interrupts_itself_and_a_normal_voice_interrupts_it(
    pulse: dict[str, str], tmp_path: Path, room: str
) -> None:
    result = echo_rooms.run_room(room, pulse, tmp_path, silent=2, barges={0.0: 2}, seed=3)
    story = "\n".join(str(vars(t)) for t in result.trials) + "\n" + result.stderr_tail
    print(f"\n{room}: {result.summary()}")
    assert result.exit_status == 130, story
    assert [t.self_interruptions for t in result.trials] == [0, 0, 0, 0], story
    barges = [t for t in result.trials if t.kind == "barge"]
    assert all(t.heard for t in barges), story  # speech_started within 1 s of the user's onset
    assert all(t.stopped for t in barges), story  # the speaker silent within 300 ms of it
    assert result.echo_sent_dbfs < -60, story  # what reached the server while replies played
