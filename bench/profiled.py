"""Run ``python -m voicechat`` under cProfile with a per-thread CPU clock: where the loop's CPU goes.

``python -m bench.profiled OUT.prof talk ...`` runs ``voicechat talk ...`` and writes the
profile of its main thread (the event loop: echo handling, resampling, the wire, the panel) to
``OUT.prof`` when it ends, however it ends. The clock is the thread's own CPU time, so time the
loop spends waiting in ``epoll`` counts for nothing, and the audio callbacks' threads are not in
it. `bench.device_cpu --profile` drives it through real devices and prints the table.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import time
from pathlib import Path
from typing import Any

# Entry points whose cumulative time says what the loop spends it on (indented: part of the line above).
AREAS = (
    ("echo handling", "voicechat/audio/echo.py", "process"),
    ("  the canceller (WebRTC AEC3)", "voicechat/audio/aec.py", "process"),
    ("  the linear stage", "voicechat/audio/linear.py", "judge"),
    ("resampling (both ways)", "voicechat/audio/resample.py", "process"),
    ("server events: parsed", "voicechat/transport.py", "events"),
    ("server events: the session", "voicechat/session/core.py", "handle"),
    ("client events: sent", "voicechat/transport.py", "send"),
    ("panel: the snapshot", "voicechat/ui/view.py", "snapshot"),
    ("panel: drawing it", "voicechat/ui/live.py", "update"),
)


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["voicechat", *args]
    profile = cProfile.Profile(time.thread_time)
    try:
        profile.runcall(runpy.run_module, "voicechat", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.dump_stats(out)


def areas(path: Path, entries: dict[Any, Any] | None = None) -> dict[str, float]:
    """CPU-s of the loop thread in each of `AREAS` (names stripped), and ``total``; from the
    profile's ``entries`` when already read."""
    if entries is None:
        entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    out = {"total": sum(v[2] for v in entries.values())}
    for what, suffix, name in AREAS:
        out[what.strip()] = sum(v[3] for (file, _, func), v in entries.items() if file.endswith(suffix) and func == name)
    return out


def table(path: Path, process_cpu_s: float | None = None, top: int = 15) -> list[str]:
    """Lines of the profile's tables: the areas, then the functions that spent the most CPU
    themselves, each as a share of the loop thread's CPU."""
    entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    spent = areas(path, entries)
    total = spent["total"] or 1e-9
    lines = [f"the loop thread: {total:.1f} CPU-s" + (f" of the process's {process_cpu_s:.1f}" if process_cpu_s else "")]
    lines.append(f"  {'where':36}{'CPU-s':>8}{'share':>8}")
    for what, _, _ in AREAS:
        cum = spent[what.strip()]
        lines.append(f"  {what:36}{cum:8.2f}{100 * cum / total:7.1f}%")
    lines.append(f"  {'function (own time)':60}{'CPU-s':>8}{'share':>8}{'calls':>9}")
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for (file, line, func), v in ranked:
        where = f"{_short(file)}:{line}({func})" if file != "~" else func
        lines.append(f"  {where[-60:]:60}{v[2]:8.2f}{100 * v[2] / total:7.1f}%{v[1]:9d}")
    return lines


def _short(file: str) -> str:
    for mark in ("site-packages/", "voicechat/", "python3."):
        if mark in file:
            return file[file.index(mark) + (len(mark) if mark == "site-packages/" else 0):]
    return file


if __name__ == "__main__":
    main()
