"""Endpoint URLs, key safety and connect-failure mapping (loopback only; DNS failure injected)."""

from __future__ import annotations

import socket

import pytest

from voicechat.errors import DnsError, RefusedError, UsageError
from voicechat.transport import connect
from voicechat.urls import Endpoint, is_loopback, realtime_url


@pytest.mark.parametrize(
    "base, expected",
    [
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"),
        ("https://api.openai.com/v1/", "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"),
        ("http://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime-2.1"),
        ("ws://localhost:9/v1", "ws://localhost:9/v1/realtime?model=gpt-realtime-2.1"),
        ("http://[::1]:8765/v1", "ws://[::1]:8765/v1/realtime?model=gpt-realtime-2.1"),
    ],
)
def test_realtime_url(base: str, expected: str) -> None:
    assert realtime_url(base, "gpt-realtime-2.1") == expected


@pytest.mark.parametrize(
    "base",
    [
        "https://res.openai.azure.com",
        "https://res.openai.azure.com/",
        "https://res.openai.azure.com/openai",
        "https://res.openai.azure.com/openai/v1",
        "https://res.openai.azure.com/openai/v1/",
    ],
)
def test_azure_url_uses_the_ga_path(base: str) -> None:
    url = realtime_url(base, "my-deployment", azure=True)
    assert url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-deployment"


def test_azure_cognitive_services_host_and_a_compatible_server() -> None:
    assert realtime_url("https://r.cognitiveservices.azure.com/", "dep", azure=True) == (
        "wss://r.cognitiveservices.azure.com/openai/v1/realtime?model=dep")
    # Any OpenAI-compatible server: its base URL + /realtime, the model as a query parameter.
    assert realtime_url("https://llm.example.com/proxy/openai/v1", "gpt-realtime-2.1") == (
        "wss://llm.example.com/proxy/openai/v1/realtime?model=gpt-realtime-2.1")
    assert realtime_url("https://llm.example.com:8443/v1", "m x") == "wss://llm.example.com:8443/v1/realtime?model=m+x"


def test_401_hint_names_the_azure_key() -> None:
    from voicechat.closes import status_error

    azure = Endpoint("wss://r.openai.azure.com/openai/v1/realtime?model=d", api_key="k", azure=True)
    assert "AZURE_OPENAI_API_KEY" in (status_error(401, azure).hint or "")
    openai = Endpoint("wss://api.openai.com/v1/realtime?model=m", api_key="k")
    assert "AZURE" not in (status_error(401, openai).hint or "")


@pytest.mark.parametrize("base", ["http://example.com/v1", "ws://10.0.0.5:8765/v1", "http://192.168.1.2/v1"])
def test_plain_ws_to_a_remote_host_is_refused(base: str) -> None:
    with pytest.raises(UsageError, match="unencrypted"):
        realtime_url(base, "m")


@pytest.mark.parametrize("base", ["ftp://x/v1", "api.openai.com/v1", ""])
def test_bad_base_url(base: str) -> None:
    with pytest.raises(UsageError, match="base-url"):
        realtime_url(base, "m")


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("api.openai.com")


def test_endpoint_repr_and_headers_never_leak_elsewhere() -> None:
    ep = Endpoint("wss://api.openai.com/v1/realtime?model=m", api_key="sk-canary-123")
    assert "sk-canary" not in repr(ep)
    assert ep.headers() == {"Authorization": "Bearer sk-canary-123"}
    assert "OpenAI-Beta" not in ep.headers()
    azure = Endpoint("wss://r.openai.azure.com/openai/v1/realtime?model=d", api_key="k", azure=True)
    assert azure.headers() == {"api-key": "k"}


async def test_dns_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DnsError, match=r"cannot resolve host 'api\.openai\.com'"):
        await connect(Endpoint("wss://api.openai.com/v1/realtime?model=m", api_key="k"), open_timeout=5)


async def test_refused_connection_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(RefusedError, match=f"127.0.0.1:{port}"):
            await connect(Endpoint(f"ws://127.0.0.1:{port}/v1/realtime?model=m", api_key="k"), open_timeout=5)


# ---- plain ws:// goes only where the name resolves to loopback ------------------------------------


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    """A ``socket.getaddrinfo`` that resolves every name to ``addresses`` (a hosts-like seam)."""
    asked: list[str] = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        asked.append(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, int(port), 0, 0) if ":" in a else (a, int(port))) for a in addresses]

    getaddrinfo.asked = asked  # type: ignore[attr-defined]
    return getaddrinfo


@pytest.fixture
def no_websocket(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail on any WebSocket open or socket connect (the refusal must come first)."""
    import voicechat.transport as transport

    tried: list[str] = []

    async def refuse(*args, **kwargs):
        tried.append(repr(args))
        raise AssertionError(f"connected anyway: {args!r}")

    monkeypatch.setattr(transport, "ws_connect", refuse)
    monkeypatch.setattr(transport, "_open_socket", refuse)
    return tried


@pytest.mark.parametrize("name", ["localhost", "localhost.localdomain", "LOCALHOST."])
@pytest.mark.parametrize("addresses", [("192.0.2.7",), ("127.0.0.1", "192.0.2.7"), ("::1", "2001:db8::5")],
                         ids=["remote", "one-of-two", "ipv6"])
async def test_a_loopback_name_resolving_elsewhere_is_refused(
        monkeypatch: pytest.MonkeyPatch, no_websocket: list[str], name: str, addresses: tuple[str, ...]) -> None:
    fake = resolving_to(*addresses)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    url = realtime_url(f"http://{name}:8765/v1", "gpt-realtime-2.1")
    with pytest.raises(UsageError) as caught:
        await connect(Endpoint(url, api_key="sk-resolve-test-key"), open_timeout=5)
    bad = next(a for a in addresses if a not in ("127.0.0.1", "::1"))
    assert str(caught.value).startswith(f"refusing plain ws:// to {name.lower()}: it resolves to {bad}, "
                                        "which is not a loopback address")
    assert fake.asked and no_websocket == []


@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses(address: str) -> None:
    from voicechat.urls import is_loopback_address

    assert is_loopback_address(address) and is_loopback_address(f"[{address}]")


@pytest.mark.parametrize("address", ["192.0.2.7", "10.0.0.1", "::", "0.0.0.0", "2001:db8::1", "::ffff:10.0.0.1", "x"])
def test_not_loopback_addresses(address: str) -> None:
    from voicechat.urls import is_loopback_address

    assert not is_loopback_address(address)


async def expect_session(url: str) -> None:
    from voicechat.protocol import events as ev

    conn = await connect(Endpoint(url, api_key="sk-loopback-resolve"), open_timeout=5)
    try:
        first = await anext(conn.events())
        assert isinstance(first, ev.SessionCreated)
    finally:
        await conn.close()


@pytest.mark.parametrize("host, bind", [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("localhost", "127.0.0.1")])
async def test_plain_ws_to_real_loopback_connects(host: str, bind: str) -> None:
    from voicechat.server import LocalServer, ServerOptions

    try:
        server = LocalServer(ServerOptions(recognizer="none"), host=bind, port=0)
        await server.start()
    except OSError:
        pytest.skip(f"cannot listen on {bind} here")
    try:
        await expect_session(realtime_url(f"http://{host}:{server.port}/v1", "gpt-realtime-2.1"))
    finally:
        await server.close()


async def test_a_name_resolving_to_two_loopback_addresses_tries_each(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicechat.server import LocalServer, ServerOptions

    # localhost as ::1 first, with the server on 127.0.0.1 only: the next checked address is used.
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("::1", "127.0.0.1"))
    async with LocalServer(ServerOptions(recognizer="none"), host="127.0.0.1", port=0) as server:
        await expect_session(realtime_url(f"http://localhost:{server.port}/v1", "gpt-realtime-2.1"))


def test_talk_refuses_localhost_resolving_elsewhere_in_one_line(
        tmp_path, monkeypatch: pytest.MonkeyPatch, no_websocket: list[str]) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from voicechat.cli import app
    from voicechat.errors import ExitStatus

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("192.0.2.7"))
    wav = tmp_path / "q.wav"
    from voicechat.audio.wav import write_wav

    write_wav(wav, __import__("numpy").zeros(2400, dtype="int16"), 24_000)
    env = {"OPENAI_API_KEY": "sk-resolve-test-key", "VOICECHAT_CONFIG_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["talk", "--base-url", "http://localhost:8765/v1", "--input-file", str(wav)],
                                env=env)
    assert result.exit_code == ExitStatus.USAGE, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("voicechat: error")]
    assert errors == [("voicechat: error: refusing plain ws:// to localhost: it resolves to "
                                             "192.0.2.7, which is not a loopback address, and the API key would "
                                             "travel unencrypted")]
    assert "Traceback" not in result.output and no_websocket == []


async def test_a_key_a_header_cannot_carry_is_refused_before_any_contact(no_websocket: list[str]) -> None:
    from voicechat.errors import ConfigError

    # The config refuses it first; a caller that builds an Endpoint itself meets the same check.
    with pytest.raises(ConfigError, match=r"^the API key contains a line break at its end "):
        await connect(Endpoint("wss://api.openai.com/v1/realtime?model=m", api_key="sk-abcdefgh\n"))
    assert no_websocket == []


@pytest.mark.parametrize("base", ["https://user:pw@api.example.com/v1", "http://:pw@127.0.0.1:9/v1",
                                  "https://user@api.example.com/v1"])
def test_a_base_url_with_userinfo_is_refused(base: str) -> None:
    with pytest.raises(UsageError, match="must not hold a user name or password") as caught:
        realtime_url(base, "m")
    assert "pw" not in str(caught.value) and "user@" not in str(caught.value)
