"""The echo table: room × mode → self-interruptions, barge-in success, talk-over, onset lost, ERLE, CPU.

``python -m bench.echo_table [--replies N] [--rooms worst,laptop] [--modes aec,gate] [--out PATH]``
runs it alone; ``make bench`` runs it as its last phase. Every cell is one conversation of
`bench.echo_rooms.run_room` through real PortAudio streams on its own headless PulseAudio, two
conversations at a time (each needs well under a core; the 2-core machine keeps real time).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import echo_rooms
from bench.devices import headless_pulse_env, stop_pulse

ROOMS = ("worst", "laptop", "loud-laptop", "headset")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "echo.json"


def plan(replies: int, modes: tuple[str, ...]) -> list[tuple[str, str, int, dict[float, int]]]:
    """(room, mode, silent replies, barge-ins by speech-to-echo dB) for every cell.

    The default mode gets the full count in every room: ``replies`` heard out, as many talked
    over at 0 dB and half as many at -6 dB. Other modes, for comparison, a quarter of that.
    """
    cells = []
    for mode in modes:
        n = replies if mode == "aec" else max(2, replies // 4)
        for room in ROOMS if mode == "aec" else ("worst", "laptop"):
            cells.append((room, mode, n, {0.0: n, -6.0: max(1, n // 2)}))
    return cells


def _cell(room: str, mode: str, silent: int, barges: dict[float, int], seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"echo-{room}-{mode}-") as tmp:
        try:
            env = headless_pulse_env(Path(tmp) / "pulse")
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            return {"room": room, "mode": mode, "error": f"no headless PulseAudio here: {e}"}
        t0 = time.monotonic()
        try:
            result = echo_rooms.run_room(room, env, Path(tmp) / "work", mode=mode, silent=silent, barges=barges,
                                         seed=seed)
        except Exception as e:  # a cell that fails is reported, not the whole table lost
            return {"room": room, "mode": mode, "error": f"{type(e).__name__}: {e}"}
        finally:
            stop_pulse(env)
        out = result.summary()
        out["wall_s"] = round(time.monotonic() - t0, 1)
        out["trials"] = [vars(t) for t in result.trials]
        return out


def echo_table(replies: int = 20, modes: tuple[str, ...] = ("aec", "gate"), rooms: tuple[str, ...] = ROOMS,
               parallel: int = 2, log: Any = print) -> list[dict[str, Any]]:
    cells = [c for c in plan(replies, modes) if c[0] in rooms]
    results: list[dict[str, Any]] = []
    with cf.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(_cell, room, mode, silent, barges, seed): (room, mode)
                   for seed, (room, mode, silent, barges) in enumerate(cells)}
        for future in cf.as_completed(futures):
            row = future.result()
            log(f"  echo {row['room']} / {row['mode']}: " + ("error: " + row["error"] if "error" in row else
                f"{row['self_interruptions']} self-interruptions in {row['replies']} replies, barge-in 0 dB "
                f"{_pct(row.get('barge_+0dB_success'))}"))
            results.append(row)
    order = {(room, mode): i for i, (room, mode, _, _) in enumerate(cells)}
    return sorted(results, key=lambda r: order[(r["room"], r["mode"])])


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f} %"


def _erle(r: dict[str, Any]) -> str:
    """ERLE of the whole echo path; '>N' when nothing but digital silence reached the server."""
    mic, sent = r.get("echo_mic_dbfs", math.nan), r.get("echo_sent_dbfs", math.nan)
    if math.isnan(mic) or math.isnan(sent):
        return "n/a"
    return f">{mic + 120:.0f}" if sent <= -120 else f"{mic - sent:.0f}"


def _ms(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("room", "mode", "replies", "self-int./reply", "barge 0 dB", "barge -6 dB", "talk-over ms",
            "heard ms", "onset lost ms", "ERLE dB", "CPU s/min")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append((r["room"], r["mode"], "error", r["error"][:60], "", "", "", "", "", "", ""))
            continue
        lines.append((
            r["room"], r["mode"], str(r["replies"]), f"{r['self_interruptions_per_reply']:.2f}",
            f"{_pct(r.get('barge_+0dB_success'))} of {r.get('barge_+0dB_n', 0)}",
            f"{_pct(r.get('barge_-6dB_success'))} of {r.get('barge_-6dB_n', 0)}",
            _ms(r.get("barge_+0dB_talk_over_ms")), _ms(r.get("barge_+0dB_heard_ms")),
            _ms(r.get("barge_+0dB_onset_lost_ms")), _erle(r), f"{r['cpu_s_per_min']:.2f}",
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for k, line in enumerate(lines):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print("barge-in: the server's speech_started within 1 s of the user's onset and the speaker silent within "
          "300 ms; talk-over, heard and onset lost are medians at 0 dB; ERLE: the echo at the microphone "
          "against what reached the server over heard-out replies ('>N': only digital silence reached it).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo_table", description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=20, help="heard-out replies and 0 dB barge-ins per aec cell")
    parser.add_argument("--rooms", default=",".join(ROOMS))
    parser.add_argument("--modes", default="aec,gate")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    rows = echo_table(args.replies, tuple(args.modes.split(",")), tuple(args.rooms.split(",")), args.parallel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"echo_rooms": rows, "wall_s": round(time.monotonic() - t0, 1)}, indent=2) + "\n")
    print_table(rows)
    print(f"\n{args.out} written in {time.monotonic() - t0:.0f} s")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
