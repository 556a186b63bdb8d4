"""Opening handshake of the local server: paths, auth, model, beta header, forced statuses."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers.server import FAST, MODEL, TIMEOUT, client, headers
from voicechat.errors import UsageError
from voicechat.server import LocalServer, ServerOptions


async def refused(url: str, hdrs: dict[str, str]) -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=hdrs, open_timeout=TIMEOUT):
            pass
    response = info.value.response
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.body)


@pytest.fixture
async def srv():
    async with LocalServer(ServerOptions(**FAST), host="127.0.0.1", port=0) as server:
        yield server


async def test_urls_and_port(srv: LocalServer) -> None:
    assert srv.port > 0
    assert srv.http_base_url == f"http://127.0.0.1:{srv.port}/v1"
    assert srv.ws_url == f"ws://127.0.0.1:{srv.port}/v1/realtime"


async def test_missing_auth_is_401_with_an_openai_error_body(srv: LocalServer) -> None:
    status, body = await refused(f"{srv.ws_url}?model={MODEL}", {})
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert "didn't provide an API key" in body["error"]["message"]


async def test_wrong_key_is_401_when_a_key_is_configured() -> None:
    async with LocalServer(ServerOptions(api_key="sk-right", **FAST), host="127.0.0.1", port=0) as srv:
        status, body = await refused(f"{srv.ws_url}?model={MODEL}", headers("sk-wrong-key"))
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        async with client(srv, key="sk-right") as c:
            assert c.seen[0]["session"]["model"] == MODEL


async def test_unknown_path_is_404(srv: LocalServer) -> None:
    status, body = await refused(f"ws://127.0.0.1:{srv.port}/v1/realtimes?model={MODEL}", headers())
    assert status == 404 and "Invalid URL" in body["error"]["message"]


async def test_missing_model_is_400(srv: LocalServer) -> None:
    status, body = await refused(srv.ws_url, headers())
    assert status == 400
    assert body["error"]["code"] == "missing_required_parameter" and body["error"]["param"] == "model"


@pytest.mark.parametrize("code", [401, 403, 404, 500])
async def test_forced_status(code: int) -> None:
    async with LocalServer(ServerOptions(handshake_status=code, **FAST), host="127.0.0.1", port=0) as srv:
        status, _ = await refused(f"{srv.ws_url}?model={MODEL}", headers())
        assert status == code


async def test_beta_header_gets_error_then_close_4000(srv: LocalServer) -> None:
    async with connect(f"{srv.ws_url}?model={MODEL}", additional_headers=headers(**{"OpenAI-Beta": "realtime=v1"}),
                       open_timeout=TIMEOUT) as ws:
        event = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert event["type"] == "error" and event["error"]["code"] == "beta_api_shape_disabled"
    assert event["error"]["message"].startswith("The Realtime Beta API is no longer supported.")
    assert ws.close_code == 4000 and ws.close_reason == "invalid_request_error.beta_api_shape_disabled"


@pytest.mark.parametrize("model", ["gpt-4o-realtime-preview", "gpt-4o-mini", "whisper-1"])
async def test_bad_model_gets_model_not_found_and_1008(srv: LocalServer, model: str) -> None:
    async with connect(f"{srv.ws_url}?model={model}", additional_headers=headers(), open_timeout=TIMEOUT) as ws:
        event = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert event["error"]["code"] == "model_not_found" and model in event["error"]["message"]
    assert ws.close_code == 1008


async def test_extra_models_are_accepted() -> None:
    opts = ServerOptions(extra_models=("my-model",), **FAST)
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv, client(srv, model="my-model") as c:
        assert c.seen[0]["session"]["model"] == "my-model"


async def test_azure_path_with_api_key_header(srv: LocalServer) -> None:
    url = f"ws://127.0.0.1:{srv.port}/openai/v1/realtime?model=gpt-realtime"
    status, _ = await refused(url, {})
    assert status == 401
    async with connect(url, additional_headers={"api-key": "azure-key"}, open_timeout=TIMEOUT) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_subprotocol_auth(srv: LocalServer) -> None:
    protocols = ["realtime", "openai-insecure-api-key.sk-browser"]
    async with connect(f"{srv.ws_url}?model={MODEL}", subprotocols=protocols, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "realtime"
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_connections_are_counted(srv: LocalServer) -> None:
    async with client(srv), client(srv):
        pass
    assert srv.connections == 2


def test_non_loopback_host_needs_allow_remote() -> None:
    with pytest.raises(UsageError):
        LocalServer(ServerOptions(), host="0.0.0.0", port=0)
    LocalServer(ServerOptions(allow_remote=True), host="0.0.0.0", port=0)  # constructing binds nothing


def _serve_until_signalled(setup: str = "", ready: str = "pass") -> None:
    """``run_server`` in a child process: ``ready`` runs once it listens (after printing the
    port); with the default ``ready`` the test sends SIGINT itself (Ctrl-C). Either way the
    server must end quietly with status 0 (a hang, not a slow exit on a busy machine, fails
    after 60 s: 10 s was not enough once)."""
    import signal
    import subprocess
    import sys

    script = (
        f"import signal, sys, threading, time\n{setup}"
        "from voicechat.server import ServerOptions, run_server\n"
        "def ready(s):\n"
        "    sys.stdout.write(f'{s.port}\\n'); sys.stdout.flush()\n"
        f"    {ready}\n"
        "run_server(ServerOptions(recognizer='none'), '127.0.0.1', 0, ready=ready)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) > 0
        if ready == "pass":
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_run_server_blocks_and_ctrl_c_ends_it_quietly() -> None:
    _serve_until_signalled()


def test_ctrl_c_delivered_to_another_thread_still_ends_the_server() -> None:
    """The kernel may hand a process's SIGINT to any thread that does not block it (numpy's BLAS
    threads are there); the server must wake for it, not wait for a timer it never sets (before
    the fix: it never ended)."""
    other = "def other_thread():\n    time.sleep(0.3)\n    signal.pthread_kill(threading.get_ident(), signal.SIGINT)\n"
    _serve_until_signalled(other, "threading.Thread(target=other_thread, daemon=True).start()")
