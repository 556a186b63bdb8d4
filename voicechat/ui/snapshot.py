"""Everything the live panel shows, as frozen plain data.

The event loop builds a new :class:`Snapshot` whenever it wants the panel to change (at most
ten times a second) and hands it to the front end, which compares it with the one it drew last.
A snapshot never refers to live objects: every field is a string, a number, a bool or a tuple of
further frozen views, so equal snapshots draw the same panel. Build updates with
``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicechat.effects import Turn
from voicechat.pricing import Spend
from voicechat.protocol.events import Usage
from voicechat.redact import SECRETS
from voicechat.session import Activity

ACTIVITIES: tuple[str, ...] = tuple(a.value for a in Activity)
ROLES: tuple[str, ...] = ("user", "assistant", "tool", "mcp", "notice")
CONNECTION_STATES: tuple[str, ...] = ("connecting", "connected", "reconnecting", "closed")
CLOCK_MINUTES_FROM_S = 600  # with more time left than this, the panel's clock counts whole minutes


@dataclass(frozen=True, slots=True)
class Header:
    """The panel's first line: what is talking to what, and for how much longer."""

    model: str = ""
    voice: str = ""
    turn_mode: str = ""  # "server VAD" | "semantic VAD" | "push-to-talk"
    echo: str = ""  # "aec" | "gate" | "half-duplex" | "off"
    connection: str = "connecting"  # one of CONNECTION_STATES
    seconds_left: float | None = None  # of the server session, when known
    reasoning: str = ""  # the reasoning effort asked for, when one is
    profile: str = ""  # the config file's profile in use, when one is
    audio_format: str = ""  # the wire audio when it is not PCM16 24 kHz ("G.711 μ-law 8 kHz")


@dataclass(frozen=True, slots=True)
class TurnView:
    """One line of the conversation as the panel draws it.

    ``role`` is one of :data:`ROLES`; ``notice`` is a message from voicechat itself (an error,
    a reconnect) shown in line with the conversation. ``final`` is false while assistant text is
    still streaming or a user transcript is still awaited. An interrupted assistant turn holds
    only the words the user actually heard.
    """

    role: str
    text: str = ""
    interrupted: bool = False
    final: bool = True
    kind: str = "text"  # "audio" | "text" | "image" | "function_call"
    tool_name: str | None = None
    tool_args: str | None = None
    tool_result: str | None = None
    note: str | None = None  # e.g. "no transcript"
    audio_ms: int = 0  # length of the user's speech, for turns with no words
    item_id: str = ""

    @classmethod
    def from_turn(
        cls, turn: Turn, *, final: bool = True, tool_result: str | None = None
    ) -> TurnView:
        """A view of a session ``Turn``; a tool turn shows its call's name and arguments apart.

        Every secret voicechat holds is elided from the text first (server text may echo one);
        from a turn still arriving, a tail that could be a secret's start too.
        """
        name = args = None
        text = SECRETS.scrub(turn.text) if final else SECRETS.scrub_growing(turn.text)
        result = tool_result if tool_result is not None else turn.result
        call = turn.tool_call
        if call is not None:
            name, args, text = SECRETS.scrub(call.name), SECRETS.scrub(call.arguments), ""
        return cls(
            role="mcp" if call is not None and call.server else turn.role,  # a call of an MCP server's
            text=text,
            interrupted=turn.interrupted,
            final=final,
            kind=turn.kind,
            tool_name=name,
            tool_args=args,
            tool_result=SECRETS.scrub(result) if result else result,
            note=SECRETS.scrub(turn.note) if turn.note else turn.note,
            audio_ms=turn.audio_ms,
            item_id=turn.item_id,
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """The stats line: how quick, how smooth and how expensive the conversation has been."""

    latency_ms: float | None = None  # last turn: end of user speech -> first assistant audio
    underruns: int = 0
    tokens_in: int = 0  # text + audio (+ image)
    tokens_out: int = 0
    cost_usd: float | None = None  # None when the model has no known price
    cost_estimated: bool = False  # priced from its family's price: the panel says so

    @classmethod
    def from_spend(cls, spend: Spend, *, latency_ms: float | None = None, underruns: int = 0) -> Stats:
        """The stats of a conversation's `Spend` (usage priced once, by the conversation)."""
        return cls(latency_ms=latency_ms, underruns=underruns, tokens_in=spend.usage.input_tokens,
                   tokens_out=spend.usage.output_tokens, cost_usd=spend.cost_usd, cost_estimated=spend.estimated)

    @classmethod
    def from_usage(
        cls, model: str, usage: Usage, *, latency_ms: float | None = None, underruns: int = 0
    ) -> Stats:
        return cls.from_spend(Spend.of(model, usage), latency_ms=latency_ms, underruns=underruns)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole panel at one instant. ``Snapshot()`` is a valid, empty panel."""

    header: Header = Header()
    turns: tuple[TurnView, ...] = ()  # the whole conversation; the renderer shows what fits
    activity: str = Activity.IDLE.value  # one of ACTIVITIES
    muted: bool = False
    ptt_talking: bool = False  # push-to-talk key held
    user_speaking: bool = False
    assistant_speaking: bool = False
    mic_dbfs: float | None = None  # None (or -inf) when there is no signal to show
    output_dbfs: float | None = None
    stats: Stats = Stats()
    input_line: str = ""  # what the user is typing
    status: str | None = None  # one line of status or help under the input line
