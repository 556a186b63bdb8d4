"""The voicechat error tree and exit statuses.

Every error a user can cause or meet is a ``VoicechatError`` carrying a short, actionable,
lowercase message and an exit status. ``cli.py`` is the one boundary that turns them into
``voicechat: error: …`` on stderr and a process exit status; nothing else prints them.

    VoicechatError
    ├── UsageError            bad flag or argument value                  (2)
    ├── ConfigError           bad config file, .env or environment value  (3)
    ├── AudioError            audio device or file problem                (4)
    │   └── PortAudioMissing  the PortAudio library is not installed
    ├── ConnectError          could not open the WebSocket                (5)
    │   ├── DnsError          host name does not resolve                  (6)
    │   ├── RefusedError      nothing listens at host:port                (7)
    │   ├── AuthError         missing key, or HTTP 401/403 at handshake   (8)
    │   └── NotFoundError     HTTP 404, or unknown/retired model          (9)
    ├── ProtocolError         the server broke the protocol or rejected us (10)
    │   └── BetaShapeError    beta interface used (close 4000)
    ├── SessionError          the server ended the session (expiry, error) (11)
    └── Interrupted           SIGINT (130) / SIGHUP (129) / SIGTERM (143)

Core modules raise these; they never call ``sys.exit``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    AUDIO = 4
    CONNECT = 5
    DNS = 6
    REFUSED = 7
    AUTH = 8
    NOT_FOUND = 9
    PROTOCOL = 10
    SESSION = 11
    SIGHUP = 129
    SIGINT = 130
    SIGPIPE = 141
    SIGTERM = 143


class VoicechatError(Exception):
    """Base of every error voicechat reports to a user."""

    status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(VoicechatError):
    status = ExitStatus.USAGE


class ConfigError(VoicechatError):
    status = ExitStatus.CONFIG


class AudioError(VoicechatError):
    status = ExitStatus.AUDIO


class PortAudioMissing(AudioError):
    pass


class ConnectError(VoicechatError):
    status = ExitStatus.CONNECT


class DnsError(ConnectError):
    status = ExitStatus.DNS


class RefusedError(ConnectError):
    status = ExitStatus.REFUSED


class AuthError(ConnectError):
    status = ExitStatus.AUTH


class NotFoundError(ConnectError):
    status = ExitStatus.NOT_FOUND


class ProtocolError(VoicechatError):
    status = ExitStatus.PROTOCOL


class BetaShapeError(ProtocolError):
    pass


class SessionError(VoicechatError):
    status = ExitStatus.SESSION


class Interrupted(VoicechatError):
    status = ExitStatus.SIGINT

    def __init__(self, message: str = "interrupted", *, status: ExitStatus = ExitStatus.SIGINT) -> None:
        super().__init__(message)
        self.status = status
