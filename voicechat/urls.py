"""Where voicechat connects: realtime endpoint URLs and the loopback rule, as pure values.

Plain ``ws://`` carries the key unencrypted, so `realtime_url` allows it only to a host that
names loopback (`is_loopback`); `voicechat.transport` then checks every address the name
resolves to (`is_loopback_address`) before it opens a socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from voicechat.errors import UsageError
from voicechat.redact import has_userinfo


def is_loopback(host: str) -> bool:
    """Whether ``host`` names loopback: a loopback address, or a localhost name.

    A name is only a claim: before plain ws:// is used, `voicechat.transport.loopback_addresses`
    checks what it resolves to.
    """
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return True
    return is_loopback_address(host)


def is_loopback_address(address: str) -> bool:
    """Whether ``address`` (an IP address, IPv6 possibly with a zone or in brackets) is loopback."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect and how to authenticate. ``repr`` never shows the key."""

    url: str
    api_key: str = field(repr=False)
    azure: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def headers(self) -> dict[str, str]:
        if self.azure:
            return {"api-key": self.api_key}
        return {"Authorization": f"Bearer {self.api_key}"}


def realtime_url(base_url: str, model: str, *, azure: bool = False) -> str:
    """``https://host/v1`` + model -> ``wss://host/v1/realtime?model=…`` (loopback may use ws)."""
    if has_userinfo(base_url):
        raise UsageError("the base URL must not hold a user name or password (user:password@host): voicechat "
                         "authenticates with the API key only", hint="remove the user:password@ part of the URL")
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port  # ValueError: out of range (port 99999), or not a number
    except ValueError as exc:
        raise UsageError(f"invalid --base-url {base_url!r}: {str(exc).rstrip('.')}",
                         hint="expected something like https://api.openai.com/v1") from None
    scheme = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname or port == 0:
        raise UsageError(
            f"invalid --base-url {base_url!r}",
            hint="expected something like https://api.openai.com/v1",
        )
    if scheme == "ws" and not is_loopback(parts.hostname):
        raise UsageError(
            f"refusing plain {parts.scheme}:// to {parts.hostname}: the API key would travel unencrypted",
            hint="use https:// (wss://); plain ws:// is allowed only for loopback hosts",
        )
    path = parts.path.rstrip("/")
    if azure:
        # The resource endpoint as Azure shows it (https://RES.openai.azure.com/), with or
        # without /openai or /openai/v1: all mean the GA path /openai/v1/realtime.
        path = path.removesuffix("/openai/v1").removesuffix("/openai") + "/openai/v1"
    query = urlencode({"model": model})
    return urlunsplit((scheme, parts.netloc, f"{path}/realtime", query, ""))


def netloc(url: str) -> str:
    return urlsplit(url).netloc
