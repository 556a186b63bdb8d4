"""The orchestrator: one ``voicechat talk``, its conversation's tasks, and the adapters' effects.

Rooms, each with one job: ``assemble.py`` builds a conversation from settings (audio adapter,
sinks, panel, endpoint, first connection, keyboard) and runs it; ``conversation.py`` runs its
tasks and carries out the session's effects; ``link.py`` is the connection's life (reconnect,
recycle, retire); ``outbox.py`` the bounded queue to the sender; ``keyboard.py`` what the user
types (slash commands, the push-to-talk key, a tool's question); ``output.py`` the stdout/stderr
seam; ``signals.py`` SIGINT/SIGTERM in every phase; ``echo.py`` the concrete echo mode;
``malformed.py`` rate-limited warnings about broken frames; ``observer.py`` the bench's hook.
Where to connect and how to let a connection go are shared with ``doctor``: ``voicechat.endpoint``.
"""

from voicechat.app.assemble import talk
from voicechat.app.conversation import AudioIO, Conversation
from voicechat.app.echo import aec_runs_at, echo_mode, make_echo_path
from voicechat.app.keyboard import CONFIRM_WAIT_S, cost_line, keyboard_actions, picture
from voicechat.app.link import (
    RECYCLE_MARGIN_ENV,
    SETUP_TIMEOUT_S,
    Link,
    Reliability,
    reliability_from_env,
)
from voicechat.app.malformed import MALFORMED_BURST, MALFORMED_EVERY_S
from voicechat.app.observer import Observer
from voicechat.app.outbox import AUDIO_BACKLOG, CONTROL_BACKLOG, Outbox
from voicechat.app.output import Output, make_output
from voicechat.app.signals import SignalGuard
from voicechat.endpoint import close_quietly, open_endpoint

_SignalGuard = SignalGuard  # the name tests/test_signals.py imports

__all__ = [
    "AUDIO_BACKLOG",
    "CONFIRM_WAIT_S",
    "CONTROL_BACKLOG",
    "MALFORMED_BURST",
    "MALFORMED_EVERY_S",
    "RECYCLE_MARGIN_ENV",
    "SETUP_TIMEOUT_S",
    "AudioIO",
    "Conversation",
    "Link",
    "Observer",
    "Outbox",
    "Output",
    "Reliability",
    "SignalGuard",
    "aec_runs_at",
    "close_quietly",
    "cost_line",
    "echo_mode",
    "keyboard_actions",
    "make_echo_path",
    "make_output",
    "open_endpoint",
    "picture",
    "reliability_from_env",
    "talk",
]
