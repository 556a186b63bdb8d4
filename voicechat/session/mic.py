"""The user's side of a turn: microphone appends, push-to-talk, and the server's view of speech.

The microphone's wire audio arrives already cut into appends of ``APPEND_MS`` by the capture
pipeline (``voicechat.audio.capture``, where the length is chosen), and each whole one goes out
at once. A caller that hands less (a test, the piece a pipeline flushes at the end of a turn)
has it held here until an append is whole: a push-to-talk commit sends it first, a new
push-to-talk turn or a lost connection drops it. This part also keeps what the server said about the user's speech (its
item, its length, whether a commit awaits its reply) and the reply latency that follows it.
"""

from __future__ import annotations

from collections.abc import Callable

from voicechat import effects as fx
from voicechat.audio.g711 import WireAudio
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev
from voicechat.protocol.constants import APPEND_MS, BYTES_PER_MS, MIN_COMMIT_MS

APPEND_BYTES = APPEND_MS * BYTES_PER_MS
MIN_COMMIT_BYTES = MIN_COMMIT_MS * BYTES_PER_MS
VOICE_WINDOW_MS = 10
VOICE_RMS = 328  # -40 dBFS: a 10 ms window this loud (RMS) may be voice; a quiet room stays well below
MIN_VOICED_MS = 100  # a push-to-talk turn with less than this of it holds no words (a key's click: 1-3 windows)

BargeIn = Callable[[str], list[fx.Effect]]


class Mic:
    """Appends sent and held, the push-to-talk key, and the user's speech as the server saw it."""

    def __init__(self, next_id: Callable[[], str], request_response: Callable[[], list[fx.Effect]], *,
                 push_to_talk: bool = False, audio_format: str = "pcm") -> None:
        self._next_id = next_id
        self._wire = WireAudio(audio_format)  # PCM16 24 kHz -> the session's audio format
        self._request_response = request_response
        self.push_to_talk_mode = push_to_talk  # live --vad none: the mic is sent only while talking
        self.muted = False
        self.talking = False  # the push-to-talk key is down (a toggle)
        self._appended = 0  # bytes appended since the last commit or clear
        self._pending = bytearray()  # captured, not yet appended (less than APPEND_BYTES)
        self.speech_item: str | None = None  # the server hears the user now (this item)
        self._speech_start_ms = 0
        self.pending_user_ms = 0  # length of the last speech, for the item that follows it
        self.committed_waiting = False  # a commit of the server's VAD waits for its reply
        self._turn_ended_at: float | None = None
        self.last_latency_ms: float | None = None  # end of the user's turn -> first reply audio
        self._voiced_ms = 0  # of the push-to-talk turn being spoken: windows loud enough for voice

    def reset(self) -> None:
        """A new server session: what was captured or said for the old one is stale."""
        self._appended = 0
        self._pending.clear()
        self.pending_user_ms = 0
        self.speech_item = None
        self.committed_waiting = False
        self._turn_ended_at = None
        self.talking = False

    # ---- the microphone -------------------------------------------------------------------

    def audio(self, pcm: bytes) -> list[fx.Effect]:
        """Wire audio from the microphone (the caller checked the session is ready)."""
        if self.muted or not pcm or (self.push_to_talk_mode and not self.talking):
            return []
        if self.talking:
            self._voiced_ms += voiced_ms(pcm)
        self._pending += pcm
        if len(self._pending) < APPEND_BYTES:
            return []
        return self._append_pending()

    def _append_pending(self) -> list[fx.Effect]:
        """Send what the microphone gave since the last append (none when nothing is waiting)."""
        if not self._pending:
            return []
        pcm = bytes(self._pending)
        self._pending.clear()
        self._appended += len(pcm)
        return [fx.SendAudio(cmd.input_audio_append(self._wire.outgoing(pcm)), len(pcm))]

    def commit(self) -> list[fx.Effect]:
        """End a manual turn: commit the buffer (at least 100 ms) and ask for a reply."""
        out: list[fx.Effect] = self._append_pending()  # the turn's last few ms belong to it
        if self._appended < MIN_COMMIT_BYTES:
            ms = self._appended / BYTES_PER_MS
            return [*out, fx.Notice("warning", f"too short to send: {ms:.0f} ms of audio (100 ms minimum)")]
        self._appended = 0
        out.append(fx.Send(cmd.input_audio_commit(self._next_id())))
        return out + self._request_response()

    def push_to_talk(self, now: float, barge_in: BargeIn) -> list[fx.Effect]:
        """The push-to-talk key (a toggle): start a turn, interrupting the assistant, or end it.

        Starting clears the server's input buffer so the turn holds only what is said now;
        ending commits it (at least 100 ms, or it is dropped with a warning) and asks for a reply.
        """
        if not self.talking:
            self.talking = True
            out = barge_in("push-to-talk")
            self._appended = 0
            self._voiced_ms = 0
            self._pending.clear()  # said before the key: not part of this turn
            out.append(fx.Send(cmd.input_audio_clear(self._next_id())))
            return out
        self.talking = False
        self._turn_ended_at = now
        if self._appended + len(self._pending) < MIN_COMMIT_BYTES:
            return self._drop("too short to send (100 ms minimum): press the key, speak, press it again")
        if self._voiced_ms < MIN_VOICED_MS:  # two quick taps: a reply to silence would still be paid for
            return self._drop("nothing said between the presses: not sent (press the key, speak, press it again)")
        return self.commit()

    def _drop(self, why: str) -> list[fx.Effect]:
        """A push-to-talk turn not worth a reply: the server's buffer is cleared, nothing committed."""
        self._pending.clear()
        self._appended = 0
        return [fx.Send(cmd.input_audio_clear(self._next_id())), fx.Notice("warning", why)]

    # ---- the user's speech as the server saw it ---------------------------------------------

    def speech_started(self, e: ev.SpeechStarted) -> None:
        self.speech_item = e.item_id
        self._speech_start_ms = e.audio_start_ms

    def speech_stopped(self, e: ev.SpeechStopped, now: float) -> int:
        """The server's VAD ended the user's speech: returns its length in ms."""
        duration = max(0, e.audio_end_ms - self._speech_start_ms)
        self.pending_user_ms = duration
        self.speech_item = None
        self._turn_ended_at = now
        return duration

    def committed(self, server_responds: bool) -> None:
        """``input_audio_buffer.committed``: a reply follows by itself when the server responds."""
        self._appended = 0
        self.speech_item = None
        if server_responds:
            self.committed_waiting = True

    def commit_refused(self) -> None:
        """The server found nothing to commit."""
        self.committed_waiting = False

    def reply_audio(self, now: float) -> None:
        """The first reply audio since the user's turn ended: that is the reply's latency."""
        if self._turn_ended_at is not None:
            self.last_latency_ms = (now - self._turn_ended_at) * 1000
            self._turn_ended_at = None


def voiced_ms(pcm: bytes) -> int:
    """How many ms of ``pcm`` (24 kHz PCM16) lie in 10 ms windows loud enough to be voice."""
    samples = memoryview(pcm[: len(pcm) // 2 * 2]).cast("h")
    window = VOICE_WINDOW_MS * BYTES_PER_MS // 2
    limit = VOICE_RMS * VOICE_RMS * window
    loud = 0
    for start in range(0, len(samples) - window + 1, window):
        part = samples[start : start + window]
        if sum(x * x for x in part) >= limit:
            loud += 1
    return loud * VOICE_WINDOW_MS
