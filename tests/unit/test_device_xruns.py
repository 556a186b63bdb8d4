"""The panel's underrun count includes the sound device's own under/overflows (issue 14, item 1).

libasound reported ``underrun occurred`` while the panel said ``underruns 0``: only the playback
ring's underruns were counted, not PortAudio's status flags that `DeviceAudio` counts.
"""

from __future__ import annotations

from types import SimpleNamespace

from voicechat.ui.view import NOTHING_SPENT, read_status

SESSION = SimpleNamespace(activity=SimpleNamespace(value="listening"), muted=False, talking=False,
                          audible_items=(), paused=False, last_latency_ms=None)


def test_the_device_xruns_add_to_the_ring_underruns() -> None:
    player = SimpleNamespace(buffer=SimpleNamespace(underruns=2))
    assert read_status(SESSION, player, None, NOTHING_SPENT).underruns == 2  # type: ignore[arg-type]
    assert read_status(SESSION, player, None, NOTHING_SPENT, device_xruns=3).underruns == 5  # type: ignore[arg-type]
