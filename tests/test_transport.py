"""Endpoint URLs, key safety and connect-failure mapping (loopback only; DNS failure injected)."""

from __future__ import annotations

import socket

import pytest

from voicechat.errors import DnsError, RefusedError, UsageError
from voicechat.transport import Endpoint, connect, is_loopback, realtime_url


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
    from voicechat.transport import status_error

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
