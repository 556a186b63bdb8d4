"""Remote MCP servers as data: the ``[[mcp]]`` tables of the config file and their wire shape.

The model calls an MCP server's tools itself (the Realtime service talks to the server, not
voicechat); the session only declares each server as a GA ``{"type": "mcp"}`` tool. A table:

    [[mcp]]
    label = "docs"                                  # server_label
    url = "https://mcp.example.com/mcp"             # server_url, or connector_id = "connector_…"
    allowed_tools = ["search"]                      # optional
    require_approval = "never"                      # "always" (the default) | "never"
    headers = { Authorization = "env:DOCS_TOKEN" }  # values only by reference to the environment

A header value is a secret, so the file only names where it is (``env:NAME``, the environment
or ``.env``): a literal value is refused, naming the file and the key and never the value.
:func:`parse_mcp` checks the tables; :meth:`McpServer.bind` fills in the values later, from a
lookup it is handed (``voicechat.config.resolve``), so this module reads no environment.
Pure: imports only the standard library and the error tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from voicechat.errors import ConfigError
from voicechat.tools.tables import parse_tables, table_name

MCP_KEYS = ("label", "url", "connector_id", "allowed_tools", "require_approval", "headers")
APPROVALS = ("always", "never")
LABEL_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REFERENCE_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an HTTP header name (a token)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class McpServer:
    """One remote MCP server the session declares; header values only once bound."""

    label: str
    url: str | None = None
    connector_id: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    require_approval: str = "always"
    references: tuple[tuple[str, str], ...] = ()
    """(header, environment variable) pairs, as the file names them."""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(header, value) pairs, once `bind` read the variables: secrets, never shown."""
    where: str = field(default="config", compare=False, repr=False)
    """The file and table it came from, for errors (``config.toml: mcp[0] (docs)``)."""

    @property
    def name(self) -> str:
        """How ``config show`` lists it (never with its headers)."""
        return self.label

    @property
    def variables(self) -> tuple[str, ...]:
        """The environment variables its headers come from (credentials: hidden from tool commands)."""
        return tuple(var for _, var in self.references)

    def bind(self, lookup: Callable[[str], str | None]) -> McpServer:
        """The server with each header's value read through ``lookup`` (environment, then ``.env``)."""
        values = []
        for header, var in self.references:
            value = lookup(var)
            if not value:
                raise ConfigError(f"{self.where}: headers.{header} names {var}, which is not set",
                                  hint=f"set {var} in the environment or in .env")
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
                raise ConfigError(f"{self.where}: headers.{header}: {var} holds a line break or a control character",
                                  hint="a header value is one line of text")
            values.append((header, value))
        return replace(self, headers=tuple(values))

    def definition(self) -> dict[str, Any]:
        """The server as ``session.update`` declares it (a ``tools[]`` entry of type ``mcp``)."""
        tool: dict[str, Any] = {"type": "mcp", "server_label": self.label}
        if self.url is not None:
            tool["server_url"] = self.url
        if self.connector_id is not None:
            tool["connector_id"] = self.connector_id
        if self.allowed_tools is not None:
            tool["allowed_tools"] = list(self.allowed_tools)
        tool["require_approval"] = self.require_approval
        if self.headers:
            tool["headers"] = dict(self.headers)
        return tool


def parse_mcp(value: Any, where: str = "config") -> tuple[McpServer, ...]:
    """The ``[[mcp]]`` tables of a config file, validated; errors name the file, table and key."""
    return parse_tables(value, where, "mcp", parse_server, lambda server: server.label,
                        "a second MCP server labelled")


def parse_server(table: Any, where: str) -> McpServer:
    label = table_name(table, where, keys=MCP_KEYS, name_key="label", pattern=LABEL_RE,
                       shape="an MCP server is a table with label, url (or connector_id) and options",
                       hint=f"an [[mcp]] table has {', '.join(MCP_KEYS)}")
    where = f"{where} ({label})"
    url, connector = table.get("url"), table.get("connector_id")
    if (url is None) == (connector is None):
        raise ConfigError(f"{where}: give either 'url' (the server's address) or 'connector_id', one of them")
    approval = table.get("require_approval", "always")
    if approval not in APPROVALS:
        raise ConfigError(f"{where}: 'require_approval' must be \"always\" or \"never\", not {approval!r}")
    return McpServer(
        label=label,
        url=_url(url, where) if url is not None else None,
        connector_id=_connector(connector, where) if connector is not None else None,
        allowed_tools=_allowed(table.get("allowed_tools"), where),
        require_approval=approval,
        references=_references(table.get("headers", {}), where),
        where=where,
    )


def _url(value: Any, where: str) -> str:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise ConfigError(f"{where}: 'url' must be the server's https:// address, not {value!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigError(f"{where}: 'url' must be https:// (http:// only to this machine)")
    if "@" in parts.netloc:
        raise ConfigError(f"{where}: 'url' must not hold a user or password; send them as headers from the "
                          "environment", hint='headers = { Authorization = "env:NAME" }')
    return value


def _connector(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.match(r"^connector_[a-z0-9_]+$", value):
        raise ConfigError(f"{where}: 'connector_id' must be a connector such as \"connector_googledrive\", "
                          f"not {value!r}")
    return value


def _allowed(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: 'allowed_tools' must be a list of tool names such as [\"search\"]")
    return tuple(value)


def _references(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The headers as (name, variable); a literal value is refused without ever being shown."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'headers' must be a table such as {{ Authorization = \"env:NAME\" }}")
    refs = []
    for header, ref in value.items():
        if not HEADER_RE.match(header):
            raise ConfigError(f"{where}: headers: {header!r} is not an HTTP header name")
        found = REFERENCE_RE.match(ref) if isinstance(ref, str) else None
        if found is None:  # never shown: it may be the secret itself
            raise ConfigError(f"{where}: headers.{header} holds a literal value: write \"env:NAME\" and keep the "
                              "secret in the environment or .env")
        refs.append((header, found.group(1)))
    return tuple(refs)

