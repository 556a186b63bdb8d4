"""Event-loop stalls with a long conversation on screen.

``python -m bench.stall OUT.json BASE_URL [TURNS]`` runs the real client (``voicechat.app.talk``)
in this process with the live panel drawing on a 100x32 pseudo-terminal, against a local server
in another process. First it types ``TURNS`` text turns (each interrupts the reply before it,
so every barge-in path runs too) until that many turns are on screen; then it holds a spoken
conversation from the file microphone at real time. A watchdog task on the same loop sleeps
5 ms at a time and records how late it wakes: any callback that holds the loop (a redraw, a
large event, a flush) shows as lateness. The figures for the spoken phase, with the long
transcript on screen, are the ones that count; the typing phase is reported too.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from bench import audio as A
from bench.terminal import TerminalSink
from voicechat import keys
from voicechat.app import make_output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.config import resolve

WATCH_PERIOD_S = 0.005
TYPE_GAP_S = 0.03  # between typed turns: faster than any reply, so each one interrupts


class _Watchdog:
    def __init__(self) -> None:
        self.phase = "connecting"
        self.late: dict[str, list[float]] = {}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(WATCH_PERIOD_S)
            self.late.setdefault(self.phase, []).append(max(0.0, loop.time() - t0 - WATCH_PERIOD_S))


async def _typing(turns: int, watchdog: _Watchdog, typed: list[int]) -> AsyncIterator[keys.Action]:
    watchdog.phase = "typing"
    for k in range(turns):
        yield keys.Submit(f"turn {k}: a line typed to fill the screen with a long conversation")
        typed[0] += 1
        await asyncio.sleep(TYPE_GAP_S)
    watchdog.phase = "talking"
    await asyncio.Event().wait()  # the keyboard stays open; the file microphone ends the talk


async def _main(base_url: str, turns: int) -> dict[str, Any]:
    typing_s = turns * TYPE_GAP_S + 2.0
    mic = np.concatenate([A.silence(typing_s), A.turns_script(3 if turns >= 100 else 1, 2.0, 3.5)])
    settings = resolve(flags={"base_url": base_url, "transcribe": False, "echo": "off", "silence_duration_ms": 400},
                       environ={"OPENAI_API_KEY": "bench"})
    term = TerminalSink()
    term.start()
    term_file = io.TextIOWrapper(os.fdopen(term.slave, "wb", buffering=0), encoding="utf-8", write_through=True)
    stdout = io.StringIO()
    out = make_output(settings, stdout, term_file)
    watchdog = _Watchdog()
    typed = [0]
    watch = asyncio.create_task(watchdog.run())
    t0 = time.perf_counter()
    try:
        await talk(settings, out, audio=FileAudio(mic, None), actions=_typing(turns, watchdog, typed))
    finally:
        watch.cancel()
    wall = time.perf_counter() - t0
    lines = [line for line in stdout.getvalue().splitlines() if line.strip()]
    phases = {}
    for phase, late in watchdog.late.items():
        ms = np.array(late) * 1000
        phases[phase] = {"samples": int(ms.size), "max_ms": float(ms.max()), "p99_ms": float(np.percentile(ms, 99)),
                         "median_ms": float(np.median(ms))}
    return {"typed": typed[0], "transcript_lines": len(lines), "panel_live": type(out.front).__name__ == "LivePanel",
            "terminal_bytes": term.bytes, "wall_s": wall, "phases": phases}


def main() -> int:
    out_path, base_url = sys.argv[1], sys.argv[2]
    turns = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    result = asyncio.run(_main(base_url, turns))
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
