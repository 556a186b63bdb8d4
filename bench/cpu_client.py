"""Run the real ``voicechat`` CLI in this process and report its own CPU use.

``python -m bench.cpu_client OUT.json talk --base-url … --input-file …``

Imports the client's modules first (their one-off import cost is reported separately as
``startup_cpu_s``), then runs ``voicechat.cli.main()`` unchanged and writes
``getrusage(RUSAGE_SELF)`` before and after to OUT.json. Only this process is measured:
the server runs elsewhere. With ``BENCH_START_AT`` (a ``time.time()`` value) in the environment
it waits after the imports until then, so parallel clients do their imports before the clock
that the other clients are measured on starts.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def main() -> int:
    out_path, args = sys.argv[1], sys.argv[2:]
    wall_boot = time.perf_counter()
    import numpy  # noqa: F401
    import websockets  # noqa: F401

    import voicechat.app
    import voicechat.cli
    import voicechat.config

    start_at = os.environ.get("BENCH_START_AT")
    if start_at:
        time.sleep(max(0.0, float(start_at) - time.time()))
    cpu0, wall0 = _cpu(), time.perf_counter()
    code: int | str | None = 0
    try:
        sys.argv = ["voicechat", *args]
        voicechat.cli.main()
    except SystemExit as exc:
        code = exc.code
    finally:
        cpu1, wall1 = _cpu(), time.perf_counter()
        r = resource.getrusage(resource.RUSAGE_SELF)
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump({
                "startup_cpu_s": sum(cpu0),
                "startup_wall_s": wall0 - wall_boot,
                "run_cpu_s": sum(cpu1) - sum(cpu0),
                "run_user_s": cpu1[0] - cpu0[0],
                "run_sys_s": cpu1[1] - cpu0[1],
                "run_wall_s": wall1 - wall0,
                "maxrss_mb": r.ru_maxrss / 1024,
                "exit": code,
            }, f)
    return int(code or 0) if not isinstance(code, str) else 1


if __name__ == "__main__":
    raise SystemExit(main())
