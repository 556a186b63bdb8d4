"""Observe the real client from the outside: timestamps at the device, the socket and the loop.

Nothing in ``voicechat`` has a benchmark hook, so ``install()`` swaps two names in
``voicechat.app`` for thin subclasses for the duration of one run *in this process*:

* ``FileAudio`` → ``ProbeFileAudio``: the unchanged block clock, but the playback buffer it is
  given is wrapped so every ``read_into`` (the "device" taking a block) is timestamped, and
  every mic block handed to the loop (``on_mic``) is timestamped. On request it is built with
  ``echo_gain``/``echo_delay_ms``, so the played audio leaks back into the microphone.
* ``Conversation`` → ``ProbeConversation``: the unchanged conversation, with its connection
  wrapped (every server event timestamped as the client receives it, every client event
  timestamped once ``Connection.send`` has written it to the socket) and its playback ring's
  ``write``/``flush`` wrapped so the probe keeps its *own* map from ring positions to assistant
  items. Frames handed to the device are attributed to items with that map at read time, so the
  per-item "actually played" figure is independent of the client's ``PlayoutTracker`` that
  ``audio_end_ms`` is computed from. The Player's ``pause``/``resume`` (local onset) and the
  ring's ``set_prebuffer`` (the adaptive prebuffer) are timestamped too; with
  ``local_onset=False`` the echo path's onset callback is removed, so only the server's
  ``speech_started`` can stop the speaker. ``max_tail_ms`` ends a file conversation that is
  still going that long after the input file ran out (a server answering its own echo never
  stops by itself); the probe then says ``cut_short``.

A cleaner production hook would be one optional observer on ``Conversation`` (called with
"event received", "event sent", "mic block", "device block" and "ring write/flush") instead of
these wrappers.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import voicechat.app as app_module
from voicechat.audio.filedev import FileAudio
from voicechat.audio.playback import PlaybackBuffer
from voicechat.protocol import events as ev
from voicechat.protocol.constants import WIRE_RATE

clock = time.perf_counter


class Probe:
    """Everything one instrumented ``talk`` run observed (times from ``time.perf_counter``)."""

    def __init__(self, device_rate: int = WIRE_RATE, *, echo_gain: float = 0.0, echo_delay_ms: int = 60,
                 local_onset: bool = True, max_tail_ms: int | None = None) -> None:
        self.device_rate = device_rate
        self.echo_gain = echo_gain
        self.echo_delay_ms = echo_delay_ms
        self.local_onset = local_onset
        self.max_tail_ms = max_tail_ms
        self.cut_short = False
        self.conversation: Any = None
        self.buffer: PlaybackBuffer | None = None
        self.t_start = clock()
        self.t_ready: float | None = None
        # device side
        self.ticks: list[float] = []  # each FileAudio tick (its on_mic call)
        self.reads = 0
        self.segments: deque[list[Any]] = deque()  # [start, end, item_id]: ring positions -> item
        self.current_item: str | None = None
        self.item_frames: dict[str, int] = defaultdict(int)
        self.item_first: dict[str, float] = {}
        self.item_last: dict[str, float] = {}
        self.unattributed_frames = 0
        # network side
        self.event_counts: Counter[str] = Counter()
        self.response_first: dict[str, tuple[float, str, int]] = {}  # rid -> (t, item, queued frames)
        self.received_samples: dict[str, int] = defaultdict(int)
        self.arrivals: list[tuple[float, int]] = []  # (t, samples) of audio deltas
        self.speech_started: list[tuple[float, bool]] = []  # (t, assistant audio queued or playing)
        self.pauses: list[float] = []  # Player.pause (a local onset's Pause effect)
        self.resumes: list[float] = []
        self.prebuffer_frames: list[tuple[float, int]] = []  # (t, new target) on every change
        self.flushes: list[tuple[float, tuple[str, ...], dict[str, int]]] = []
        self.truncates: list[dict[str, Any]] = []
        self.cancels = 0
        # mic -> wire
        self._mic_ticks: deque[float] = deque(maxlen=64)  # when each recent mic block was handed over
        self._mic_pending: deque[float] = deque()
        self.mic_to_wire: list[float] = []

    # ---- device side ------------------------------------------------------------------------

    def on_tick(self, t: float) -> None:
        self.ticks.append(t)
        self._mic_ticks.append(t)

    def on_read(self, head: int, real: int, t: float) -> None:
        self.reads += 1
        if not real:
            return
        pos, end = head, head + real
        segs = self.segments
        while segs and segs[0][1] <= pos:
            segs.popleft()
        covered = 0
        for seg in segs:
            if seg[0] >= end:
                break
            a, b = max(seg[0], pos), min(seg[1], end)
            if b > a:
                item = seg[2]
                self.item_frames[item] += b - a
                self.item_first.setdefault(item, t)
                self.item_last[item] = t
                covered += b - a
        self.unattributed_frames += real - covered

    def on_ring_write(self, start: int, accepted: int) -> None:
        if accepted <= 0:
            return
        item = self.current_item or "?"
        if self.segments and self.segments[-1][2] == item and self.segments[-1][1] == start:
            self.segments[-1][1] = start + accepted
        else:
            self.segments.append([start, start + accepted, item])

    def on_ring_flush(self, position: int) -> None:
        """The ring discarded every play position from ``position`` on (the kept fade ends there)."""
        segs = self.segments
        while segs and segs[-1][0] >= position:
            segs.pop()
        if segs and segs[-1][1] > position:
            segs[-1][1] = position

    # ---- network side -----------------------------------------------------------------------

    def on_event(self, event: Any, t: float) -> None:
        self.event_counts[type(event).__name__] += 1
        if isinstance(event, ev.AudioDelta):
            samples = len(event.audio) // 2
            self.received_samples[event.item_id] += samples
            self.arrivals.append((t, samples))
            if event.response_id not in self.response_first:
                queued = self.buffer.queued if self.buffer is not None else 0
                self.response_first[event.response_id] = (t, event.item_id, queued)
        elif isinstance(event, ev.SpeechStarted):
            buf = self.buffer
            active = buf is not None and (buf.active or buf.paused)
            self.speech_started.append((t, active))
        elif isinstance(event, ev.SessionUpdated) and self.t_ready is None:
            self.t_ready = t

    def on_sent(self, event: dict[str, Any], t: float) -> None:
        kind = event["type"]
        if kind == "input_audio_buffer.append":
            if self._mic_pending:
                self.mic_to_wire.append(t - self._mic_pending.popleft())
        elif kind == "conversation.item.truncate":
            item = event["item_id"]
            self.truncates.append({
                "t": t,
                "item_id": item,
                "audio_end_ms": event["audio_end_ms"],
                "received_ms": self.received_samples[item] * 1000 / WIRE_RATE,
            })
        elif kind == "response.cancel":
            self.cancels += 1

    def on_outbox_put(self, event: dict[str, Any], accepted: bool) -> None:
        if event["type"] == "input_audio_buffer.append" and accepted and self._mic_ticks:
            # An append may carry several 20 ms blocks: time it from the oldest one it holds.
            blocks = max(1, round(len(event["audio"]) * 3 / 4 / (2 * WIRE_RATE * 20 / 1000)))
            ticks = self._mic_ticks
            self._mic_pending.append(ticks[-min(blocks, len(ticks))])


_CURRENT: Probe | None = None


def _probe() -> Probe:
    if _CURRENT is None:
        raise RuntimeError("bench.probe.install() is not active")
    return _CURRENT


class _DeviceSide:
    """What ``FileAudio.run`` sees as the playback buffer: the real one, reads timestamped.

    With a device rate of k x 24 kHz it models a k x faster device: each tick takes k x as many
    frames from the ring (the block is still 20 ms) and hands ``FileAudio`` every k-th one.
    """

    def __init__(self, buffer: PlaybackBuffer, probe: Probe) -> None:
        self._buffer = buffer
        self._probe = probe
        self._ratio = probe.device_rate // WIRE_RATE
        self._block = np.zeros(0, dtype=np.int16)

    def read_into(self, out: np.ndarray) -> int:
        head = self._buffer.consumed_total
        if self._ratio == 1:
            real = self._buffer.read_into(out)
            self._probe.on_read(head, real, clock())
            return real
        if self._block.size != out.size * self._ratio:
            self._block = np.zeros(out.size * self._ratio, dtype=np.int16)
        real = self._buffer.read_into(self._block)
        self._probe.on_read(head, real, clock())
        out[:] = self._block[:: self._ratio]
        return -(-real // self._ratio)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)


class ProbeFileAudio(FileAudio):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        probe = _probe()
        if probe.echo_gain:
            kwargs.setdefault("echo_gain", probe.echo_gain)
            kwargs.setdefault("echo_delay_ms", probe.echo_delay_ms)
        super().__init__(*args, **kwargs)
        self.rate = _probe().device_rate  # what Conversation sizes its Player (and resampler) for

    async def run(
        self,
        buffer: PlaybackBuffer,
        on_mic: Callable[[bytes], None],
        on_block: Callable[[], bool],
    ) -> None:
        probe = _probe()

        def mic(pcm: bytes) -> None:
            probe.on_tick(clock())
            on_mic(pcm)

        await super().run(_DeviceSide(buffer, probe), mic, on_block)  # type: ignore[arg-type]


class ProbeConnection:
    """The real ``Connection``; ``send`` and ``events`` timestamped."""

    def __init__(self, conn: Any, probe: Probe) -> None:
        self._conn = conn
        self._probe = probe

    async def send(self, event: dict[str, Any]) -> None:
        await self._conn.send(event)
        self._probe.on_sent(event, clock())

    async def events(self) -> Any:
        async for event in self._conn.events():
            self._probe.on_event(event, clock())
            yield event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class ProbeConversation(app_module.Conversation):
    def __init__(self, settings: Any, conn: Any, audio: Any, out: Any, **kwargs: Any) -> None:
        probe = _probe()
        super().__init__(settings, ProbeConnection(conn, probe), audio, out, **kwargs)
        self._bench_probe = probe
        probe.conversation = self
        if not probe.local_onset:
            self.echo.on_onset = None
        buffer = self.player.buffer
        probe.buffer = buffer

        write, flush, set_prebuffer = buffer.write, buffer.flush, buffer.set_prebuffer

        def ring_write(samples: np.ndarray) -> int:
            start = buffer.write_position
            accepted = write(samples)
            probe.on_ring_write(start, accepted)
            return accepted

        def ring_flush() -> int:
            dropped = flush()
            probe.on_ring_flush(buffer.write_position)
            return dropped

        def ring_set_prebuffer(frames: int) -> None:
            set_prebuffer(frames)
            probe.prebuffer_frames.append((clock(), buffer.prebuffer))

        buffer.write = ring_write  # type: ignore[method-assign]
        buffer.flush = ring_flush  # type: ignore[method-assign]
        buffer.set_prebuffer = ring_set_prebuffer  # type: ignore[method-assign]

        play, player_flush = self.player.play, self.player.flush
        pause, resume = self.player.pause, self.player.resume

        def player_play(item_id: str, pcm: bytes) -> None:
            probe.current_item = item_id
            play(item_id, pcm)

        def flush_items(item_ids: tuple[str, ...]) -> dict[str, int]:
            t = clock()
            played = player_flush(item_ids)
            probe.flushes.append((t, tuple(item_ids), dict(played)))
            return played

        def player_pause() -> None:
            probe.pauses.append(clock())
            pause()

        def player_resume() -> None:
            probe.resumes.append(clock())
            resume()

        self.player.play = player_play  # type: ignore[method-assign]
        self.player.flush = flush_items  # type: ignore[method-assign]
        self.player.pause = player_pause  # type: ignore[method-assign]
        self.player.resume = player_resume  # type: ignore[method-assign]

        put = self.outbox.put
        outbox = self.outbox

        def outbox_put(event: dict[str, Any]) -> None:
            dropped = outbox.dropped_audio
            put(event)
            probe.on_outbox_put(event, outbox.dropped_audio == dropped)

        self.outbox.put = outbox_put  # type: ignore[method-assign]

    def _on_block(self) -> bool:
        probe = self._bench_probe
        if probe.max_tail_ms is not None and self.audio.tail_ms >= probe.max_tail_ms:
            probe.cut_short = True
            self.finished.set()
            return False
        return super()._on_block()


@contextlib.contextmanager
def install(
    device_rate: int = WIRE_RATE,
    prebuffer_ms: float | None = None,
    *,
    echo_gain: float = 0.0,
    echo_delay_ms: int = 60,
    local_onset: bool = True,
    max_tail_ms: int | None = None,
) -> Iterator[Probe]:
    """Instrument ``voicechat.app.talk`` runs in this process; yields the probe.

    ``device_rate`` (a multiple of 24 kHz) makes the file "device" run at that rate, so the
    client's Player resamples as it would for a 48 kHz sound card. ``prebuffer_ms`` is a
    what-if: the Player is built with that fixed (non-adaptive) prebuffer instead of its default.
    ``echo_gain``/``echo_delay_ms`` are passed to the file device (the speaker leaking into the
    mic); ``local_onset=False`` leaves the speaker to the server's ``speech_started`` alone;
    ``max_tail_ms`` caps how long a conversation may go on after the input file.
    """
    global _CURRENT
    if device_rate % WIRE_RATE:
        raise ValueError("device_rate must be a multiple of 24000")
    saved = (app_module.FileAudio, app_module.Conversation, app_module.Player)
    probe = Probe(device_rate, echo_gain=echo_gain, echo_delay_ms=echo_delay_ms, local_onset=local_onset,
                  max_tail_ms=max_tail_ms)
    _CURRENT = probe
    app_module.FileAudio = ProbeFileAudio  # type: ignore[misc]
    app_module.Conversation = ProbeConversation  # type: ignore[misc]
    if prebuffer_ms is not None:
        player_class = saved[2]
        app_module.Player = lambda rate: player_class(rate, prebuffer_ms=prebuffer_ms, adaptive=False)  # type: ignore[misc,assignment]
    try:
        yield probe
    finally:
        app_module.FileAudio, app_module.Conversation, app_module.Player = saved  # type: ignore[misc]
        _CURRENT = None
