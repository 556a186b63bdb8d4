"""Local servers (and jitter proxies) in a child process, so their CPU, memory and event-loop
time never count against the client being measured.

``ServerHost(specs)`` starts one spawn child that runs a ``LocalServer`` per spec (each
optionally behind a ``JitterProxy``) and hands back their base URLs; leaving the ``with``
block stops them and returns the proxies' statistics and the child's own CPU use (``cpu_s``
over ``wall_s``: a host near a full core delays every server and proxy in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import resource
import time
from typing import Any


def _host_main(specs: list[dict[str, Any]], conn: Any) -> None:
    asyncio.run(_host(specs, conn))


async def _host(specs: list[dict[str, Any]], conn: Any) -> None:
    from bench.proxy import JitterProxy
    from voicechat.server import LocalServer, ServerOptions

    loop = asyncio.get_running_loop()
    proxies: list[JitterProxy | None] = []
    t0, cpu0 = time.perf_counter(), _cpu()
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for spec in specs:
            opts = ServerOptions(**spec.get("options", {}))
            srv = await stack.enter_async_context(LocalServer(opts, host="127.0.0.1", port=0))
            url = srv.http_base_url
            proxy = None
            if spec.get("proxy") is not None:
                proxy = JitterProxy(srv.port, **spec["proxy"])
                await proxy.start()
                stack.push_async_callback(proxy.close)
                url = f"http://127.0.0.1:{proxy.port}/v1"
            proxies.append(proxy)
            urls.append(url)
        conn.send(urls)
        await loop.run_in_executor(None, conn.recv)  # "stop"
        usage = {"cpu_s": round(_cpu() - cpu0, 2), "wall_s": round(time.perf_counter() - t0, 2)}
        conn.send(([p.stats if p is not None else None for p in proxies], usage))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ServerHost:
    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.specs = specs
        self.urls: list[str] = []
        self.stats: list[dict[str, Any] | None] = []
        self.usage: dict[str, float] = {}
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_host_main, args=(specs, child), daemon=True, name="bench-servers")

    def __enter__(self) -> ServerHost:
        self._proc.start()
        if not self._conn.poll(60):
            self._proc.terminate()
            raise RuntimeError("the bench server process did not start")
        self.urls = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
            if self._conn.poll(10):
                self.stats, self.usage = self._conn.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
