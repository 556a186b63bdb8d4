"""What an ``error`` event from the server means for the conversation: one pure judgement.

Most errors are said and the conversation goes on. Some end it (the beta interface refused, an
unknown model, settings rejected while configuring); some say a new connection may succeed (a
transient ``server_error``, an expired session); some are races of an honest client (cancel
with nothing active, a create while another response runs) and only logged; a few change the
session's own bookkeeping (our ``response.create`` refused, an empty commit). `judge` reads the
event alone and returns a ``Verdict``; the facade applies it to the parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voicechat import effects as fx
from voicechat.errors import BetaShapeError, NotFoundError, SessionError
from voicechat.protocol import events as ev
from voicechat.protocol.constants import BENIGN_ERROR_CODES

SESSION_UPDATE_ID = "vc_session_update"


@dataclass(frozen=True)
class Verdict:
    """The effects of an error event, and what it changes in the session."""

    effects: list[fx.Effect] = field(default_factory=list)
    retry_hint: str | None = None  # a new connection may succeed (why)
    busy_elsewhere: bool = False  # another response is active: ask again once it is done
    may_refuse_create: bool = False  # if it names our pending response.create, none is coming
    commit_empty: bool = False  # the server found nothing to commit: no reply follows


def judge(e: ev.ErrorEvent, *, configuring: bool) -> Verdict:
    """The verdict on one error event (``configuring``: our ``session.update`` is unanswered)."""
    code = e.code or ""
    where = f" ({e.param})" if e.param else ""
    said = f"server error{f' [{code}]' if code else ''}: {e.message}{where}"
    if code == "beta_api_shape_disabled":
        return Verdict([fx.Fatal(BetaShapeError(f"the server refused the beta interface: {e.message}"))])
    if code == "model_not_found":
        return Verdict([fx.Fatal(NotFoundError(e.message, hint="check --model"))])
    if code == "session_expired":
        # The session is over; a new one continues the conversation (reference §4.8).
        return Verdict([fx.Reconnect(f"the server ended the session: {e.message}")], retry_hint=e.message)
    if e.type == "server_error":
        # Transient: the session may go on; if the server closes the connection after it,
        # a new connection is worth a try (whatever the close code).
        return Verdict([fx.Notice("error", said)], retry_hint=e.message)
    if code == "conversation_already_has_active_response":
        return Verdict([fx.Notice("debug", e.message)], busy_elsewhere=True)
    # A race of an honest client is never about the session settings, whenever it lands.
    if code in BENIGN_ERROR_CODES or "already shorter than" in e.message:
        return Verdict([fx.Notice("debug", e.message)])
    if configuring or e.client_event_id == SESSION_UPDATE_ID:
        return Verdict([fx.Fatal(SessionError(f"the server rejected the session settings: {e.message}{where}"))])
    if code == "input_audio_buffer_commit_empty":
        return Verdict([fx.Notice("warning", "nothing was said: the turn had under 100 ms of audio")],
                       may_refuse_create=True, commit_empty=True)
    return Verdict([fx.Notice("error", said)], may_refuse_create=True)
