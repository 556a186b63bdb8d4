"""Observe the real client from the outside: timestamps at the device, the socket and the loop.

``install()`` yields a `Probe` for one run *in this process*; the run passes it to
``talk(..., audio=probe.file_audio(samples), observer=probe)``. Nothing in ``voicechat`` is
patched:

* The probe is the conversation's ``voicechat.app.Observer``: it is told every server event as
  the client receives it, every client event once ``Connection.send`` has written it to the
  socket and as it is queued (an append told apart by its type, ``SendAudio``), every effect
  (``Play`` names the item whose audio goes to the ring next; ``Pause``/``Resume`` are the local
  onset's) and every flush with what it found played. When the conversation starts it is handed
  it: with ``local_onset=False`` the echo path's onset callback is removed, so only the server's
  ``speech_started`` can stop the speaker; a ``prebuffer_ms`` what-if gets a Player with that
  fixed prebuffer; and the probe keeps its *own* map from ring positions to assistant items
  (the ring's ``write``/``flush`` of that one conversation's buffer are timestamped), so the
  per-item "actually played" figure is independent of the client's ``PlayoutTracker`` that
  ``audio_end_ms`` is computed from. The ring's ``set_prebuffer`` (the adaptive prebuffer) is
  timestamped too.
* `ProbeFileAudio` is the file device the run is given: the unchanged block clock, but the
  playback buffer it is given is wrapped so every ``read_into`` (the "device" taking a block) is
  timestamped, and every block's tick is timestamped as its microphone block is taken. On request
  it is built with ``echo_gain``/``echo_delay_ms``, so the played audio leaks back into the
  microphone. ``max_tail_ms`` ends a file conversation that is still going that long after the
  input file ran out (a server answering its own echo never stops by itself); the probe then
  says ``cut_short``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from voicechat import effects as fx
from voicechat.app import Observer
from voicechat.audio.filedev import FileAudio
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.player import Player
from voicechat.protocol import events as ev
from voicechat.protocol.constants import WIRE_RATE

clock = time.perf_counter


class Probe(Observer):
    """Everything one instrumented ``talk`` run observed (times from ``time.perf_counter``)."""

    def __init__(self, device_rate: int = WIRE_RATE, *, echo_gain: float = 0.0, echo_delay_ms: int = 60,
                 local_onset: bool = True, max_tail_ms: int | None = None,
                 prebuffer_ms: float | None = None) -> None:
        self.device_rate = device_rate
        self.prebuffer_ms = prebuffer_ms
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

    def on_sent(self, send: fx.Send, t: float) -> None:
        event = send.event
        if isinstance(send, fx.SendAudio):
            if self._mic_pending:
                self.mic_to_wire.append(t - self._mic_pending.popleft())
        elif event["type"] == "conversation.item.truncate":
            item = event["item_id"]
            self.truncates.append({
                "t": t,
                "item_id": item,
                "audio_end_ms": event["audio_end_ms"],
                "received_ms": self.received_samples[item] * 1000 / WIRE_RATE,
            })
        elif event["type"] == "response.cancel":
            self.cancels += 1

    def on_outbox_put(self, send: fx.Send, accepted: bool) -> None:
        if isinstance(send, fx.SendAudio) and accepted and self._mic_ticks:
            # An append may carry several 20 ms blocks: time it from the oldest one it holds.
            blocks = max(1, round(send.pcm_bytes / (2 * WIRE_RATE * 20 / 1000)))
            ticks = self._mic_ticks
            self._mic_pending.append(ticks[-min(blocks, len(ticks))])

    # ---- the conversation's observer ----------------------------------------------------------

    def started(self, conversation: Any) -> None:
        self.conversation = conversation
        if not self.local_onset:
            conversation.echo.on_onset = None
        if self.prebuffer_ms is not None:  # the what-if: a fixed prebuffer instead of the adaptive one
            conversation.player = Player(conversation.audio.rate, prebuffer_ms=self.prebuffer_ms, adaptive=False)
        self._watch_ring(conversation.player.buffer)

    def received(self, event: Any) -> None:
        self.on_event(event, clock())

    def sent(self, send: fx.Send) -> None:
        self.on_sent(send, clock())

    def queued(self, send: fx.Send, accepted: bool) -> None:
        self.on_outbox_put(send, accepted)

    def effect(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.Play):
            self.current_item = effect.item_id
        elif isinstance(effect, fx.Pause):
            self.pauses.append(clock())
        elif isinstance(effect, fx.Resume):
            self.resumes.append(clock())

    def flushed(self, item_ids: tuple[str, ...], played: Any) -> None:
        self.flushes.append((clock(), tuple(item_ids), dict(played)))

    def _watch_ring(self, buffer: PlaybackBuffer) -> None:
        """Timestamp this conversation's ring: its writes and flushes (for the probe's own map of
        ring positions to items) and its prebuffer target."""
        self.buffer = buffer
        write, flush, set_prebuffer = buffer.write, buffer.flush, buffer.set_prebuffer

        def ring_write(samples: np.ndarray) -> int:
            start = buffer.write_position
            accepted = write(samples)
            self.on_ring_write(start, accepted)
            return accepted

        def ring_flush() -> int:
            dropped = flush()
            self.on_ring_flush(buffer.write_position)
            return dropped

        def ring_set_prebuffer(frames: int) -> None:
            set_prebuffer(frames)
            self.prebuffer_frames.append((clock(), buffer.prebuffer))

        buffer.write = ring_write  # type: ignore[method-assign]
        buffer.flush = ring_flush  # type: ignore[method-assign]
        buffer.set_prebuffer = ring_set_prebuffer  # type: ignore[method-assign]

    def file_audio(self, mic: np.ndarray) -> ProbeFileAudio:
        """The file device for this run: ``mic`` as the microphone, clocked in real time."""
        return ProbeFileAudio(self, mic, None)


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
    """The file device, its ticks and its playback reads timestamped for one `Probe`."""

    def __init__(self, probe: Probe, *args: Any, **kwargs: Any) -> None:
        self.probe = probe
        if probe.echo_gain:
            kwargs.setdefault("echo_gain", probe.echo_gain)
            kwargs.setdefault("echo_delay_ms", probe.echo_delay_ms)
        super().__init__(*args, **kwargs)
        self.rate = probe.device_rate  # what Conversation sizes its Player (and resampler) for

    def _next_mic_block(self) -> np.ndarray:
        self.probe.on_tick(clock())  # the tick: its microphone block is about to go to the loop
        return super()._next_mic_block()

    async def run(
        self,
        buffer: PlaybackBuffer,
        on_mic: Callable[[bytes], None],
        on_block: Callable[[], bool],
    ) -> None:
        probe = self.probe

        def block() -> bool:
            if probe.max_tail_ms is not None and self.tail_ms >= probe.max_tail_ms:
                probe.cut_short = True
                if probe.conversation is not None:
                    probe.conversation.finished.set()
                return False
            return on_block()

        await super().run(_DeviceSide(buffer, probe), on_mic, block)  # type: ignore[arg-type]


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
    """A `Probe` for one ``voicechat.app.talk`` run in this process (pass it as its ``observer``
    and ``probe.file_audio(samples)`` as its ``audio``).

    ``device_rate`` (a multiple of 24 kHz) makes the file "device" run at that rate, so the
    client's Player resamples as it would for a 48 kHz sound card. ``prebuffer_ms`` is a
    what-if: the Player is built with that fixed (non-adaptive) prebuffer instead of its default.
    ``echo_gain``/``echo_delay_ms`` are passed to the file device (the speaker leaking into the
    mic); ``local_onset=False`` leaves the speaker to the server's ``speech_started`` alone;
    ``max_tail_ms`` caps how long a conversation may go on after the input file.
    """
    if device_rate % WIRE_RATE:
        raise ValueError("device_rate must be a multiple of 24000")
    yield Probe(device_rate, echo_gain=echo_gain, echo_delay_ms=echo_delay_ms, local_onset=local_onset,
                max_tail_ms=max_tail_ms, prebuffer_ms=prebuffer_ms)
