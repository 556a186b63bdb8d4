"""The secrets voicechat holds, and the one scrubber that keeps them out of everything it writes.

voicechat holds few secrets: the API key (``OPENAI_API_KEY`` or, with Azure,
``AZURE_OPENAI_API_KEY``), whatever a user put in a base URL's ``user:password@`` part (refused,
but known until then) and the values of its query parameters named like a credential. They are
remembered here, in one process-wide :data:`SECRETS`, as soon as they are read, and every place
that prints or writes text passes it through :func:`scrub`: stderr notices, the panel and the
plain status log, transcripts, the event log, ``--debug`` logging (:class:`ScrubLogRecords`, a
logging filter) and error messages at the CLI boundary.

A secret is elided in every form it could take on the way out: as it is, JSON-escaped (either
way), as Python's ``repr`` shows it (text or bytes), with control characters escaped as the
transcript does, percent-encoded, and base64-encoded at each of the three byte alignments (the
part of a longer base64 text that only the secret decides), so a server echoing the key, a
traceback quoting it or a Basic-auth header all come out as ``<elided>``.

Only real secrets are elided. A value shorter than :data:`MIN_SECRET` is no secret (no real key
is that short; the local backend's placeholder is never remembered at all). A secret shorter
than :data:`MIN_ANYWHERE` is elided only as a whole token (not inside a longer word), and has no
base64 form (a short base64 chunk would match by chance); a longer one, random enough never to
occur by chance, is elided wherever it appears. A text still arriving (the panel's reply, delta
by delta) also hides a tail that could be a secret's start (:meth:`Scrubber.scrub_growing`).

This module also knows which environment variables hold credentials (:data:`CREDENTIAL_ENV`:
the config reads the key from them, and :func:`credential_variables` adds those an MCP server's
headers came from; tool commands never see any of them) and what makes a key unusable
(:func:`key_problem`), without ever naming any part of it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from voicechat.escape import escape_control

OPENAI_KEY_ENV = "OPENAI_API_KEY"
AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"
CREDENTIAL_ENV = (OPENAI_KEY_ENV, AZURE_KEY_ENV)
"""Every environment variable voicechat reads a credential from (also in ``.env``); the config
reads the API key from these and a tool command is started without any of them."""
OPENAI_URL_ENV = "OPENAI_BASE_URL"
AZURE_URL_ENV = "AZURE_OPENAI_ENDPOINT"
URL_ENV = (OPENAI_URL_ENV, AZURE_URL_ENV)
"""Environment variables holding a base URL (whose ``user:password@`` part would be a secret)."""

ELIDED = "<elided>"
MIN_SECRET = 8
MIN_ANYWHERE = 16
HEAD = 5  # a text still arriving never shows this many of a secret's first characters
_TOKEN = "A-Za-z0-9"


# ---- what makes a key unusable ----------------------------------------------------------------


def _char_kind(ch: str) -> str:
    if ch in "\n\u2028\u2029\x85":
        return "a line break"
    if ch == "\r":
        return "a carriage return"
    if ch == "\t":
        return "a tab"
    if ch == " ":
        return "a space"
    if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
        return "a control character"
    return "a non-ASCII character"


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key (``"contains a line break at its end"``), or None.

    A key is one line of printable ASCII without spaces (what an HTTP header can carry as it
    is). The answer names the kind of character and where (start, end) but never the character
    itself nor any other part of the key.
    """
    bad = [i for i, ch in enumerate(key) if not "!" <= ch <= "~"]
    if not bad:
        return None
    kinds = list(dict.fromkeys(_char_kind(key[i]) for i in bad))
    what = ", ".join(kinds[:-1]) + (" and " if len(kinds) > 1 else "") + kinds[-1]
    leading = len(key) - len(key.lstrip("".join({key[i] for i in bad})))
    trailing = len(key) - len(key.rstrip("".join({key[i] for i in bad})))
    if len(bad) == trailing:
        where = " at its end"
    elif len(bad) == leading:
        where = " at its start"
    else:
        where = ""
    return f"contains {what}{where}"


KEY_HINT = ("an API key is one line of printable ASCII with no spaces: check for a line break, a space or a "
            "stray character picked up when it was copied")


def url_userinfo(url: str) -> tuple[str | None, str | None]:
    """The user name and password in ``url``'s ``user:password@`` part (None when absent)."""
    try:
        parts = urlsplit(url.strip())
        return parts.username, parts.password
    except ValueError:
        return None, None


def has_userinfo(url: str) -> bool:
    """Whether ``url`` has a ``user[:password]@`` part before its host."""
    try:
        return "@" in urlsplit(url.strip()).netloc
    except ValueError:
        return "@" in url.partition("://")[2].partition("/")[0]


def mask_url(url: str) -> str:
    """``url`` with any ``user:password@`` part shown as ``…@`` (for display)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(not shown: not a valid URL)" if "@" in url else url
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]).geturl()


# ---- the scrubber -----------------------------------------------------------------------------


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters only ``data`` decides, at each of the three byte alignments, and
    (longest first, so it wins) the same run to the end when ``data`` ends the encoded text."""
    found: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        start, end = -(-shift // 3) * 4, (shift + len(data)) // 3 * 4
        for core in (encoded[start:end], encoded[start:]):
            for variant in (core, core.translate(str.maketrans("+/", "-_"))):
                found |= {variant, variant.rstrip("=")}
    return found


def forms(secret: str) -> set[str]:
    """Every form of ``secret`` the scrubber elides (see the module docstring)."""
    spaced = secret.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    found = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        escape_control(secret),
        escape_control(spaced),
        " ".join(secret.split()),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    }
    found |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in list(found) if "%" in f}
    for encoding in ("utf-8", "latin-1"):
        try:
            data = secret.encode(encoding)
        except UnicodeEncodeError:
            continue
        found.add(repr(data)[2:-1])
        if len(secret) >= MIN_ANYWHERE:
            found |= _base64_cores(data)
    return {f for f in found if len(f) >= MIN_SECRET}


class Scrubber:
    """Elides known secrets, in every form, from text. Cheap when it knows none."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: dict[str, None] = {}
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Remember secrets; values too short to be one (and ``None``) are ignored."""
        fresh = [s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET and s not in self._secrets]
        if not fresh:
            return
        for secret in fresh:
            self._secrets[secret] = None
        anywhere: set[str] = set()
        tokens: set[str] = set()
        for secret in self._secrets:
            (anywhere if len(secret) >= MIN_ANYWHERE else tokens).update(forms(secret))
        alternatives = [re.escape(f) for f in sorted(anywhere, key=len, reverse=True)]
        alternatives += [f"(?<![{_TOKEN}]){re.escape(f)}(?![{_TOKEN}])" for f in sorted(tokens, key=len, reverse=True)]
        self._pattern = re.compile("|".join(alternatives))  # one assignment: safe for other threads

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __contains__(self, secret: object) -> bool:
        return secret in self._secrets

    def scrub(self, text: str) -> str:
        """``text`` with every form of every known secret replaced by ``<elided>``."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        for _ in range(3):  # an elision could join two halves into a new match: repeat until none
            cleaned = pattern.sub(ELIDED, text)
            if cleaned == text:
                break
            text = cleaned
        return text

    def scrub_growing(self, text: str) -> str:
        """`scrub`, for a text still arriving (a reply on the panel, delta by delta): a tail that
        could be the start of a secret (its first `HEAD` characters or more) is elided too, so a
        key split across deltas never shows, not even while its first half waits for the rest."""
        text = self.scrub(text)
        for secret in self._secrets:
            for n in range(min(len(secret) - 1, len(text)), HEAD - 1, -1):
                if text.endswith(secret[:n]):
                    return text[:-n] + ELIDED
        return text

    def scrub_value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string (keys too) scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(v) for v in value]
        return value


SECRETS = Scrubber()
"""Every secret this process holds. Remember one with :func:`remember`, as soon as it is read."""


def remember(*secrets: str | None) -> None:
    SECRETS.add(*secrets)


_SECRET_PARAM = re.compile(r"key|token|secret|password|sig", re.IGNORECASE)


def remember_url(url: str | None) -> None:
    """Remember the credentials in ``url``: its ``user:password@`` part (refused, but known until
    then) and the values of query parameters named like one (``api-key=…``, ``token=…``)."""
    if not url:
        return
    remember(*url_userinfo(url))
    try:
        query = parse_qsl(urlsplit(url.strip()).query)
    except ValueError:
        return
    remember(*(value for name, value in query if _SECRET_PARAM.search(name)))


def remember_sources(environ: Mapping[str, str | None], *more: Mapping[str, Any] | None) -> None:
    """Remember the credentials of the environment, ``.env`` values and flags, before resolving."""
    for mapping in (environ, *more):
        if not mapping:
            continue
        for var in CREDENTIAL_ENV:
            value = mapping.get(var)
            remember(value if isinstance(value, str) else None)
        for var in (*URL_ENV, "base_url"):
            value = mapping.get(var)
            remember_url(value if isinstance(value, str) else None)


def remember_settings(settings: Any) -> None:
    """Remember the secrets of resolved settings (the API key, a base URL's userinfo, the header
    values of MCP servers and the variables they came from)."""
    remember(getattr(settings, "api_key", None))
    remember_url(getattr(settings, "base_url", None))
    for server in getattr(settings, "mcp", ()):
        for _, value in server.headers:
            remember(value, *value.split())  # "Bearer TOKEN": the token alone too
        remember_variable(*server.variables)


_VARIABLES: dict[str, None] = {}


def remember_variable(*names: str) -> None:
    """Environment variables voicechat read a credential from, beyond `CREDENTIAL_ENV` (an MCP
    server's header): tool commands never see them either."""
    _VARIABLES.update(dict.fromkeys(names))


def credential_variables() -> tuple[str, ...]:
    """Every environment variable voicechat reads a credential from in this process."""
    return (*CREDENTIAL_ENV, *_VARIABLES)


def scrub(text: str) -> str:
    """``text`` without any secret this process holds (see `Scrubber.scrub`)."""
    return SECRETS.scrub(text)


def _scrub_bytes(data: bytes) -> bytes:
    # latin-1 maps bytes to characters one to one: ASCII forms match wherever they are.
    return SECRETS.scrub(data.decode("latin-1")).encode("latin-1")


def _scrub_arg(arg: Any) -> Any:
    """A log argument with known secrets elided before it is formatted (and maybe cut short).

    websockets logs each frame as ``< TEXT '{"type": …' [123 bytes]``, eliding the middle of
    a long payload: the key must go before that cut, or a fragment of it would be left.
    """
    if isinstance(arg, bytes | bytearray):
        cleaned = _scrub_bytes(bytes(arg))
        return arg if cleaned == arg else cleaned
    data = getattr(arg, "data", None)
    if dataclasses.is_dataclass(arg) and not isinstance(arg, type) and isinstance(data, bytes | bytearray):
        cleaned = _scrub_bytes(bytes(data))
        if cleaned != data:
            with contextlib.suppress(TypeError, ValueError):
                return dataclasses.replace(arg, data=cleaned)
            return f"<{type(arg).__name__}: {len(data)} bytes, a secret elided>"
    return arg


class ScrubLogRecords(logging.Filter):
    """A handler filter: log records leave with every known secret elided (message, traceback, stack)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Change a record only where it holds a secret (other filters and handlers see it as is)."""
        if not SECRETS:
            return True
        if isinstance(record.args, tuple):
            args = tuple(_scrub_arg(a) for a in record.args)
            if any(new is not old for new, old in zip(args, record.args, strict=True)):
                record.args = args
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it; keep what is safe to show
            message = str(record.msg)
        scrubbed = SECRETS.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if SECRETS.scrub(text) != text:
                record.exc_text = SECRETS.scrub(text)
        elif record.exc_text:
            record.exc_text = SECRETS.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = SECRETS.scrub(record.stack_info)
        return True


def scrub_logging(logger: logging.Logger | None = None) -> None:
    """Attach `ScrubLogRecords` to every handler of ``logger`` (the root logger by default), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubLogRecords) for f in handler.filters):
            handler.addFilter(ScrubLogRecords())
