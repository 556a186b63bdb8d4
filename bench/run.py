"""``python -m bench [--quick] [--out PATH]``: measure the DESIGN.md performance targets.

Phases (about 3 min in full on 2 cores, ~40 s with ``--quick``):

1. start — ``voicechat --help`` wall time, repeated.
2. echo canceller — ``bench.erle.measure_erle`` (ERLE, double talk, CPU) in a spawned process
   (livekit must not be used in a forked child, so the bench process never imports it).
3. real-time conversation — the instrumented client (``bench.client``) talks to a local server
   (in its own process) at the real-time block clock, with a barge-in on every reply:
   first-audio delay, barge-in cut, truncation error, mic-to-wire, talk-over silence (loopback).
4. talk-over and echo, side by side — the same barge-in conversation against a server whose
   events arrive ``SERVER_DELAY_MS`` late (a stand-in for a network round trip and a slower
   server VAD), with local onset detection on and off: how soon the speaker falls silent after
   the user starts talking over it, and what local onset gains over the server's speech_started;
   and polite turns with the reply leaking into the mic at full level (``--echo gate``, and
   ``aec`` when installed) counting false stops.
5. side by side, one process each (all low-CPU at real-time pace): instrumented clients behind a
   frame-delaying proxy (σ = 0/10/30/60 ms, a 200 ms stall, fixed-prebuffer comparisons with
   adaptation off) counting playback underruns; the barge-in conversation again with a 48 kHz
   file device (the Player resamples); and real CLI clients (``bench.cpu_client``) with
   ``--echo off``/``gate``/``aec``, and ``off`` with the live panel drawing on a pseudo-terminal,
   holding a 30 s full-duplex conversation each for the CPU figure (their servers in a second
   server process, so they do not slow the jitter proxies down).
6. memory — the real CLI with ``--fast`` (10× block clock) through 10 minutes of turns, its RSS
   sampled from /proc.
7. loop stalls — ``bench.stall``: the real client with the live panel on a pseudo-terminal fills
   it with 500 typed turns, then talks at real time; a 5 ms watchdog task on its loop records how
   late it wakes (the longest hold of the loop by any callback, redraws included).
8. through real devices — ``bench.device_cpu``: ``voicechat talk`` (panel in a pty, ``--quiet``, and
   ``--echo off`` as a headset user runs it) and the floor client (``bench.floor``) alternating on
   headless PulseAudio at 44.1 and 48 kHz: CPU talking/idle, wake-ups, terminal bytes per idle
   minute, stop latency, underruns (sigma 30 ms); and the floor's two streams alone.

Results: a table on stdout and JSON in ``bench/results/latest.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import audio as A
from bench.client import USER_ONSET_WINDOW_S, run_instrumented
from bench.servers import ServerHost
from bench.stats import median, percentile, summary
from bench.terminal import TerminalSink

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
NO_TRANSCRIPT = {"recognizer": "none"}  # the server: no offline recogniser (CPU, determinism)
RT_PACING = {"speed": 1.0, "delta_ms": (20, 40)}  # reply generated at real time, 20–40 ms deltas
DEFAULT_PACING: dict[str, Any] = {}  # ServerOptions defaults: 4× real time, 20–240 ms deltas
SERVER_DELAY_MS = 150  # talk-over runs: every server event arrives this late (sigma 0: constant)
ECHO_LEAK = {"echo_gain": 1.0, "echo_delay_ms": 60}  # false-stop runs: the reply back in the mic at full level


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---- phase 1: start ---------------------------------------------------------------------------


def voicechat_cmd() -> list[str]:
    script = Path(sys.executable).with_name("voicechat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "voicechat"]


def measure_start(reps: int) -> dict[str, Any]:
    cmd = [*voicechat_cmd(), "--help"]
    subprocess.run(cmd, capture_output=True, check=True, timeout=30)  # warm the page cache
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
    return {"times_ms": times, "cmd": " ".join(Path(c).name for c in cmd)}


# ---- phase 2: echo canceller -----------------------------------------------------------------


def echo_canceller(quick: bool) -> dict[str, Any]:
    """``bench.erle.measure_erle`` in a spawned process (never livekit in this one: see the doc)."""
    from bench.erle import measure_erle

    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(measure_erle, quick).result(timeout=600)


# ---- phase 3: real-time conversation --------------------------------------------------------


def realtime_conversation(cycles: int) -> dict[str, Any]:
    with ServerHost([{"options": {"seed": 7, **NO_TRANSCRIPT, **DEFAULT_PACING}}]) as host:
        return run_instrumented({"base_url": host.urls[0], "script": {"kind": "barge_in", "cycles": cycles}})


# ---- phase 4: talk-over with a distant server, and the echo leaking into the mic ---------------------


def talk_over_and_echo(quick: bool, aec: bool) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Side by side: the barge-in conversation with server events ``SERVER_DELAY_MS`` late (local
    onset on and off), and the echo-leak runs of `echo_leak_runs`."""
    delayed = {"sigma_ms": 0, "mu_ms": SERVER_DELAY_MS, "seed": 0, "stall_ms": 0}
    barge_in = {"kind": "barge_in", "cycles": 2 if quick else 12}
    runs = {"local_onset": {"script": barge_in, "local_onset": True},
            "server_only": {"script": barge_in, "local_onset": False}}
    specs = [{"options": {"seed": 7, **NO_TRANSCRIPT, **DEFAULT_PACING}, "proxy": delayed} for _ in runs]
    leaks = echo_leak_runs(quick, aec)
    specs += [{"options": {"seed": 30 + k, **NO_TRANSCRIPT, **DEFAULT_PACING}} for k in range(len(leaks))]
    runs |= {f"leak:{name}": spec for name, spec in leaks.items()}
    with ServerHost(specs) as host:
        start_at = time.time() + 3.0
        jobs = [{"base_url": url, "start_at": start_at, **spec} for url, spec in zip(host.urls, runs.values(), strict=True)]
        with cf.ProcessPoolExecutor(max_workers=len(jobs), mp_context=mp.get_context("spawn")) as pool:
            results = dict(zip(runs, pool.map(run_instrumented, jobs, timeout=300), strict=True))
    talk = {name: results[name] for name in ("local_onset", "server_only")}
    return talk, {name: results[f"leak:{name}"] for name in leaks}


def echo_leak_runs(quick: bool, aec: bool) -> dict[str, dict[str, Any]]:
    """Polite turns with the reply leaking into the mic at full level, per echo mode.

    The headline runs use a recorded voice (the echo brain replies with it, so the echo is real
    speech); the full run repeats them with the synthetic, strictly periodic voice."""
    turns = 1 if quick else 4
    recorded = {"kind": "turns", "turns": turns, "gap_s": 4.5, "recorded": True}
    synthetic = {"kind": "turns", "turns": turns, "speech_s": 3.0, "gap_s": 4.5}
    modes = ["gate", "aec"] if aec else ["gate"]
    # A server answering its own echo would go on until the app's 60 s limit: stop sooner.
    leak = {**ECHO_LEAK, "max_tail_ms": 3000 if quick else 8000}
    runs = {mode: {"script": recorded, "echo": mode, **leak} for mode in modes}
    if not quick:
        runs |= {f"{mode}_synthetic_voice": {"script": synthetic, "echo": mode, **leak} for mode in modes}
    return runs


# ---- phase 5: jitter, false stops, CPU (side by side) --------------------------------------------


def jitter_conditions(quick: bool) -> list[dict[str, Any]]:
    """(pacing name, server pacing options, proxy options) per condition."""
    if quick:
        return [{"pacing": "realtime", "sigma_ms": 30, "stall_ms": 0, "seed": 1}]
    out = []
    for sigma, seed in ((0, 1), (10, 2), (30, 3), (30, 4), (60, 5)):
        out.append({"pacing": "realtime", "sigma_ms": sigma, "stall_ms": 0, "seed": seed})
    out.append({"pacing": "realtime", "sigma_ms": 0, "stall_ms": 200, "seed": 6})
    # Comparison: the same σ = 30 ms and jitter seed with adaptation off and the prebuffer fixed
    # at N ms (60 = the adaptive floor, i.e. the old default; 200 = a generous fixed buffer).
    for prebuffer, seed in ((60, 3), (200, 3)):
        out.append({"pacing": "realtime", "sigma_ms": 30, "stall_ms": 0, "seed": seed, "prebuffer_ms": prebuffer})
    for sigma, seed in ((30, 7), (60, 8)):
        out.append({"pacing": "default", "sigma_ms": sigma, "stall_ms": 0, "seed": seed})
    out.append({"pacing": "default", "sigma_ms": 0, "stall_ms": 200, "seed": 9})
    return out


def _server_spec(cond: dict[str, Any]) -> dict[str, Any]:
    pacing = RT_PACING if cond["pacing"] == "realtime" else DEFAULT_PACING
    return {
        "options": {"seed": cond["seed"], **NO_TRANSCRIPT, **pacing},
        "proxy": {"sigma_ms": cond["sigma_ms"], "seed": cond["seed"], "stall_ms": cond["stall_ms"], "stall_at": (2, 5)},
    }


def _client_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICECHAT_"))}
    env.update({"OPENAI_API_KEY": "sk-bench", "VOICECHAT_CONFIG_DIR": str(tmp), "NO_COLOR": "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _talk_args(base_url: str, wav: Path, out: Path) -> list[str]:
    return ["talk", "--base-url", base_url, "--input-file", str(wav), "--output-file", str(out),
            "--silence-duration-ms", "400", "--no-transcribe"]


def cpu_modes(quick: bool, aec: bool) -> list[str]:
    """The ``--echo`` mode of each CPU client (``off`` is what ``auto`` resolves to for files);
    ``+panel``: its stderr is a pseudo-terminal, so the live panel draws."""
    per_mode = ({"off": 1, "off+panel": 1, "gate": 1, "aec": 1} if quick
                else {"off": 2, "off+panel": 2, "gate": 2, "aec": 2})
    return [mode for mode, n in per_mode.items() if aec or mode != "aec" for _ in range(n)]


def jitter_and_cpu(quick: bool, aec: bool) -> dict[str, Any]:
    """Phase 5: the jitter clients, the 48 kHz-device barge-in client and the CPU clients, side by side."""
    conds = jitter_conditions(quick)
    turns = {"kind": "turns", "turns": 1, "speech_s": 2.0, "gap_s": 3.0} if quick else {"kind": "turns", "turns": 4}
    cpu_turns = (1, 2.0, 3.0) if quick else (4, 3.0, 4.2)
    modes = cpu_modes(quick, aec)
    device48 = {"script": {"kind": "barge_in", "cycles": 1 if quick else 12}, "device_rate": 48000}
    specs = [_server_spec(c) for c in conds]
    specs.append({"options": {"seed": 7, **NO_TRANSCRIPT, **DEFAULT_PACING}})  # the 48 kHz run
    cpu_specs = [{"options": {"seed": 20 + k, **NO_TRANSCRIPT}} for k in range(len(modes))]
    # Two server processes: the CPU clients' servers must not slow the jitter proxies down.
    with ServerHost(specs) as host, ServerHost(cpu_specs) as cpu_host, \
            tempfile.TemporaryDirectory(prefix="vc-bench-") as tmpdir:
        tmp = Path(tmpdir)
        wav = A.write(tmp / "cpu-in.wav", A.turns_script(*cpu_turns))
        # Let every process (about 20 in full) finish importing first: ~0.4 s of CPU each, 2 cores.
        start_at = time.time() + (3.0 if quick else 8.0)
        urls = iter(host.urls)
        jobs = [{"base_url": next(urls), "script": turns, "start_at": start_at, "prebuffer_ms": c.get("prebuffer_ms")}
                for c in conds]
        jobs.append({"base_url": next(urls), "start_at": start_at, **device48})
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx) as pool:
            futures = [pool.submit(run_instrumented, job) for job in jobs]
            cpu_procs = _start_cpu_clients(cpu_host.urls, modes, wav, tmp, start_at)
            cpu = _finish_cpu_clients(cpu_procs)
            results = [f.result(timeout=300) for f in futures]
    stats = host.stats
    jitter = results[: len(conds)]
    for cond, res, st in zip(conds, jitter, stats[: len(conds)], strict=True):
        res["condition"] = cond
        res["proxy"] = st
    for run in cpu:
        run["input_s"] = A.turns_script(*cpu_turns).size / A.RATE
    return {"jitter": jitter, "rt48": results[len(conds)], "cpu": cpu,
            "server_hosts": {"jitter": host.usage, "cpu_clients": cpu_host.usage}}


def _start_cpu_clients(urls: list[str], modes: list[str], wav: Path, tmp: Path,
                       start_at: float) -> list[tuple[subprocess.Popen[str], Path, str, TerminalSink | None]]:
    """One real CLI client per URL (``--echo MODE``), in parallel, each reporting its own CPU use.

    Each is a fresh interpreter (never a fork), so the ``aec`` clients may load livekit; each
    imports at once and starts talking at ``start_at`` with the instrumented clients. A
    ``MODE+panel`` client gets a 100x32 pseudo-terminal as stderr (colour on), so the live panel
    runs as it would for a user; the others' stderr is a pipe (plain status lines)."""
    procs = []
    env = {**_client_env(tmp), "BENCH_START_AT": repr(start_at)}
    for k, (url, mode) in enumerate(zip(urls, modes, strict=True)):
        echo, _, extra = mode.partition("+")
        report = tmp / f"cpu{k}.json"
        cmd = [sys.executable, "-m", "bench.cpu_client", str(report),
               *_talk_args(url, wav, tmp / f"cpu{k}-out.wav"), "--echo", echo]
        term = TerminalSink() if extra == "panel" else None
        if term is not None:
            panel_env = {k: v for k, v in env.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color"}
            proc = subprocess.Popen(cmd, cwd=tmp, env=panel_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=term.slave, text=True)
            os.close(term.slave)  # the child holds its own copy
            term.start()
        else:
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        procs.append((proc, report, mode, term))
    return procs


def _finish_cpu_clients(
    procs: list[tuple[subprocess.Popen[str], Path, str, TerminalSink | None]],
) -> list[dict[str, Any]]:
    out = []
    for proc, report, mode, term in procs:
        _, err = proc.communicate(timeout=240)
        if term is not None:
            term.close()
            err = term.tail.decode(errors="replace")
        if proc.returncode != 0 or not report.exists():
            raise RuntimeError(f"the CPU client ({mode}) failed ({proc.returncode}): {(err or '')[-2000:]}")
        out.append({**json.loads(report.read_text()), "echo": mode,
                    "terminal_bytes": term.bytes if term is not None else None})
    return out


# ---- phase 7: loop stalls with a long transcript on screen ---------------------------------------


def stall_run(turns: int) -> dict[str, Any]:
    """``bench.stall`` in a fresh process (the live panel on a pseudo-terminal), its server in another."""
    with ServerHost([{"options": {"seed": 31, "speed": 4.0, **NO_TRANSCRIPT}}]) as host, \
            tempfile.TemporaryDirectory(prefix="vc-bench-") as tmpdir:
        report = Path(tmpdir) / "stall.json"
        proc = subprocess.run([sys.executable, "-m", "bench.stall", str(report), host.urls[0], str(turns)],
                              cwd=ROOT, env=_client_env(Path(tmpdir)) | {"TERM": "xterm-256color"},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not report.exists():
            raise RuntimeError(f"the stall run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(report.read_text())


# ---- phase 6: memory ----------------------------------------------------------------------------


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory_run(turns: int) -> dict[str, Any]:
    samples_audio = A.turns_script(turns)
    with ServerHost([{"options": {"seed": 12, "speed": 40.0, **NO_TRANSCRIPT}}]) as host, \
            tempfile.TemporaryDirectory(prefix="vc-bench-") as tmpdir:
        tmp = Path(tmpdir)
        wav = A.write(tmp / "long.wav", samples_audio)
        cmd = [*voicechat_cmd(), *_talk_args(host.urls[0], wav, tmp / "long-out.wav"), "--fast", "--quiet"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, env=_client_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        series: list[tuple[float, float]] = []
        while proc.poll() is None:
            rss = _rss_mb(proc.pid)
            if rss is not None:
                series.append((time.perf_counter() - t0, rss))
            time.sleep(0.1)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"the memory run failed ({proc.returncode}): {err[-2000:]}")
    return {"series": series, "input_s": samples_audio.size / A.RATE, "wall_s": time.perf_counter() - t0}


MIN_EXTRAPOLATION_MINUTES = 5.0


def analyse_memory(mem: dict[str, Any]) -> dict[str, Any]:
    series = mem["series"]
    wall = series[-1][0] if series else 0.0
    minutes = mem["input_s"] / 60
    # Wall time maps (nearly linearly) onto conversation time: the 10x block clock starts right
    # after startup and connect, which take well under a second.
    early = [r for t, r in series if 0.08 * wall <= t <= 0.12 * wall]
    late = [r for t, r in series if t >= 0.95 * wall]
    baseline = median(early) or series[0][1]
    end = median(late) or series[-1][1]
    half = [(t, r) for t, r in series if t >= 0.5 * wall]
    slope = _slope(half)  # MB per wall second
    sim_per_wall = minutes / max(1e-9, wall)  # simulated minutes per wall second
    slope_per_min = slope / sim_per_wall if sim_per_wall else 0.0
    growth = end - baseline
    extrapolated = None
    if minutes >= MIN_EXTRAPOLATION_MINUTES:
        extrapolated = growth + max(0.0, slope_per_min) * max(0.0, 30 - minutes)
    step = max(1, len(series) // 20)
    return {
        "simulated_minutes": round(minutes, 2),
        "wall_s": round(mem["wall_s"], 1),
        "rss_baseline_mb": round(baseline, 1),
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(max(r for _, r in series), 1),
        "growth_mb": round(growth, 2),
        "growth_covers_minutes": round((0.975 - 0.10) * minutes, 2),  # middle of early to middle of late window
        "late_slope_mb_per_min": round(slope_per_min, 3),
        "extrapolated_30min_mb": None if extrapolated is None else round(extrapolated, 2),
        "samples": len(series),
        "series_sim_min_mb": [(round(t * sim_per_wall, 2), round(r, 1)) for t, r in series[::step]],
    }


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


# ---- assembling the report --------------------------------------------------------------------


def calibration_ms(reps: int = 5) -> float:
    """A fixed pure-Python workload (median ms): compares machine speed between bench runs."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sum(i * i for i in range(200_000))
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    from voicechat import __version__

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "calibration_ms_at_start": calibration_ms(),
        "git_commit": commit.stdout.strip() or None,
        "voicechat": __version__,
    }


def metric(value: float | None, unit: str, target: float | None, target_text: str, met: bool | None,
           method: str, **details: Any) -> dict[str, Any]:
    return {"value": None if value is None else round(value, 3), "unit": unit, "target": target,
            "target_text": target_text, "met": met, "method": method, "details": details}


def _le(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def build_metrics(start: dict[str, Any], rt: dict[str, Any], side: dict[str, Any], mem: dict[str, Any],
                  talk: dict[str, dict[str, Any]], leak: dict[str, dict[str, Any]],
                  erle: dict[str, Any], stall: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rt48, jitter, cpu = side["rt48"], side["jitter"], side["cpu"]
    m: dict[str, dict[str, Any]] = {}
    start_med = median(start["times_ms"])
    m["start_ms"] = metric(
        start_med, "ms", 300, "≤ 300 ms", _le(start_med, 300),
        f"wall time of `{start['cmd']} --help` in a subprocess, median of {len(start['times_ms'])} runs "
        "after one warm-up run", **summary(start["times_ms"], 1))

    def pooled(key: str, pacing: str, sigma: float, stall: float = 0) -> list[float]:
        return [x for r in jitter if r["condition"]["pacing"] == pacing and r["condition"]["sigma_ms"] == sigma
                and r["condition"]["stall_ms"] == stall and not r["condition"].get("prebuffer_ms") for x in r[key]]

    fa = rt["first_audio_ms"]
    fa_med = median(fa)
    m["first_audio_ms"] = metric(
        fa_med, "ms", 80, "≤ 80 ms (the prebuffer target)", _le(fa_med, 80),
        "real client at the real-time 20 ms block clock (FileAudio speed 1) against the local server "
        "(own process; default pacing: 4x real time, 20-240 ms deltas): time from the first "
        "response.output_audio.delta of each response reaching the client (Connection.events) to the first "
        "FileAudio buffer.read_into that returned frames of that item; responses whose first delta found "
        "other audio still queued are skipped. Median over responses.",
        default_pacing=summary(fa, 1),
        realtime_pacing_20_40ms_deltas=summary(pooled("first_audio_ms", "realtime", 0), 1),
        realtime_pacing_sigma30=summary(pooled("first_audio_ms", "realtime", 30), 1),
        device_48khz_default_pacing=summary(rt48["first_audio_ms"], 1),
        skipped_busy=rt["first_audio_skipped_busy"])

    cut = rt["barge_in_cut_ms"]
    cut_med = median(cut)
    m["barge_in_cut_ms"] = metric(
        cut_med, "ms", 30, "≤ 1 device block + fade (≤ 30 ms)", _le(cut_med, 30),
        "same real-time run, every turn after the first talks over the previous reply: time from "
        "input_audio_buffer.speech_started reaching the client to the last FileAudio read_into that handed "
        "real frames of the interrupted item (the 5 ms fade block). The FileAudio block is 20 ms, so the "
        "resolution is one block. Median over barge-ins. Also run with a 48 kHz file device (details).",
        **summary(cut, 2), device_48khz=summary(rt48["barge_in_cut_ms"], 2),
        speech_started=rt["speech_started"], flushes=rt["flushes"],
        flushed_before_playing=rt["barge_in_flushed_before_playing"],
        ended_before_speech=rt["barge_in_ended_before_speech"],
        silenced_by_local_onset_first=rt["barge_in_silenced_by_local_onset"], response_cancel_sent=rt["cancels_sent"])

    m["talk_over_silence_ms"] = _talk_over(rt, talk)
    m["echo_false_stops"] = _false_stops(leak)

    te24, te48 = rt["truncation_error_ms"], rt48["truncation_error_ms"]
    te_all = te24 + te48
    te_max = max(te_all) if te_all else None
    past = rt["truncation_past_received"] + rt48["truncation_past_received"]
    m["truncation_error_ms"] = metric(
        te_max, "ms", 20, "≤ 1 block (20 ms); never past received audio",
        None if te_max is None else (te_max <= 20 and past == 0),
        "|audio_end_ms of each conversation.item.truncate sent − the item's frames the device was handed, "
        "fade included| in the real-time barge-in runs, with the file device at 24 kHz (no resampling) and at "
        "48 kHz (the Player resamples 24→48 kHz with soxr, as for a typical sound card). The device-side "
        "count comes from the bench's own map of ring positions to items (wrapping PlaybackBuffer.write/flush "
        "and FileAudio's read_into), not from the client's PlayoutTracker. Value is the MAX over all "
        "truncates; signed = audio_end_ms − played (positive: the client claims more than was handed to the "
        "device); 'past received' counts audio_end_ms beyond the audio the client had received.",
        device_24khz={**summary(te24, 2), "signed": summary(rt["truncation_signed_ms"], 2),
                      "truncates": rt["truncates"], "past_received": rt["truncation_past_received"]},
        device_48khz={**summary(te48, 2), "signed": summary(rt48["truncation_signed_ms"], 2),
                      "truncates": rt48["truncates"], "past_received": rt48["truncation_past_received"]},
        n=len(te_all), past_received=past,
        unattributed_frames=rt["unattributed_frames"] + rt48["unattributed_frames"])

    m["underruns_per_min"] = _underruns(jitter)

    mw = rt["mic_to_wire_ms"]
    p99 = percentile(mw, 99)
    m["mic_to_wire_p99_ms"] = metric(
        p99, "ms", 30, "≤ 30 ms p99", _le(p99, 30),
        "same real-time run (full duplex: replies streaming in while the mic streams out): FileAudio taking "
        "a mic block into the capture pipeline (timed from the oldest block an append holds) → Connection.send "
        "of its input_audio_buffer.append returning (frame written to the socket). FileAudio runs on the loop, "
        "so a PortAudio thread hop (the capture queue's call_soon_threadsafe) is not included.", **summary(mw, 3))

    by_mode: dict[str, dict[str, Any]] = {}
    for c in cpu:
        row = by_mode.setdefault(c["echo"], {"per_client_s_per_min": [], "run_cpu_s": [], "run_wall_s": [],
                                             "startup_cpu_s": [], "user_s": [], "sys_s": [], "maxrss_mb": [],
                                             "terminal_bytes": []})
        row["terminal_bytes"].append(c.get("terminal_bytes"))
        row["per_client_s_per_min"].append(round(c["run_cpu_s"] / c["run_wall_s"] * 60, 3) if c["run_wall_s"] else None)
        row["run_cpu_s"].append(round(c["run_cpu_s"], 3))
        row["run_wall_s"].append(round(c["run_wall_s"], 2))
        row["startup_cpu_s"].append(round(c["startup_cpu_s"], 3))
        row["user_s"].append(round(c["run_user_s"], 3))
        row["sys_s"].append(round(c["run_sys_s"], 3))
        row["maxrss_mb"].append(round(c["maxrss_mb"], 1))
    for row in by_mode.values():
        row["median_s_per_min"] = median([x for x in row["per_client_s_per_min"] if x is not None])
    per_min = by_mode["off+panel"]["median_s_per_min"]
    m["cpu_s_per_min"] = metric(
        per_min, "s/min", 1.5, "≤ 1.5 s per minute (2.5 % of a core), panel live", _le(per_min, 1.5),
        "the real CLI (`voicechat talk --input-file … --output-file … --echo MODE`, file audio at real time) "
        "in its own process via bench.cpu_client: getrusage(RUSAGE_SELF) user+sys over the run after the "
        "client's modules were imported, per minute of wall time; median over parallel clients, each with its "
        "own server in another process. Value: --echo off (what auto resolves to for files) with the live "
        "panel drawing on a 100x32 pseudo-terminal (stderr; terminal_bytes shows it drew). by_echo_mode also "
        "has off, gate and aec (the modes auto picks for a live device) with stderr a pipe (plain status "
        "lines, no panel); add the panel's cost (off+panel − off) to them for a live device. Conversation: polite turns (3 s "
        "speech, 4.2 s gap; the mic streams all the time, replies play about half the time); the file device "
        "leaks no echo into the mic. File audio has no resampling: a 48 kHz device adds two soxr streams and "
        "PortAudio callbacks (and aec would run at the device rate). Runs alongside the jitter clients.",
        by_echo_mode=by_mode, input_s=round(cpu[0]["input_s"], 1))

    mm = analyse_memory(mem)
    rss_value = mm["extrapolated_30min_mb"] if mm["extrapolated_30min_mb"] is not None else mm["growth_mb"]
    m["rss_growth_mb"] = metric(
        rss_value, "MB", 20, "≤ 20 MB over 30 minutes", _le(mm["extrapolated_30min_mb"], 20),
        f"the real CLI with --fast (10x block clock) through {mm['simulated_minutes']} minutes of polite turns "
        "against a server at 40x in another process; client VmRSS sampled from /proc every 0.1 s. Growth = "
        "median RSS over the last 5 % of the run − median over 8–12 %; value = that growth + the slope of the "
        "second half (least squares, per simulated minute) × the remaining minutes up to 30 (runs shorter than "
        f"{MIN_EXTRAPOLATION_MINUTES:g} simulated minutes report the raw growth and no verdict). The playback "
        "ring (120 s at the device rate, 5.8 MB at 24 kHz) is calloc'd and only becomes resident as it is "
        "first written, which is bounded one-off growth.", **mm)

    m["erle_db"] = _erle(erle)

    talking = stall["phases"].get("talking", {})
    worst = talking.get("max_ms")
    m["loop_stall_ms"] = metric(
        worst, "ms", 5, "≤ 5 ms with a 500-turn transcript on screen", _le(worst, 5),
        f"bench/stall.py: the real client with the live panel on a 100x32 pseudo-terminal types {stall['typed']} "
        "text turns (each interrupting the reply before it), then talks from the file microphone at real time "
        "with that transcript on screen. A watchdog task on the client's loop sleeps 5 ms at a time; the value "
        "is its largest lateness while talking (every other callback's longest hold of the loop). The typing "
        "phase's figures are in details.", turns_on_screen=stall["transcript_lines"], phases=stall["phases"],
        panel_live=stall["panel_live"], terminal_bytes=stall["terminal_bytes"])
    return m


def _talk_over(rt: dict[str, Any], talk: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def part(r: dict[str, Any]) -> dict[str, Any]:
        return {**summary(r["talk_over_ms"], 1),
                "from_speech_started": summary(r["talk_over_from_speech_started_ms"], 1),
                "speech_started_after": summary(r["talk_over_speech_started_after_ms"], 1),
                "stopped_by_local_onset": r["talk_over_by_local_onset"], "stopped_by_server": r["talk_over_by_server"],
                "not_playing": r["talk_over_not_playing"], "not_stopped": r["talk_over_not_stopped"],
                "attempts": r["talk_over_attempts"], "pauses": r["pauses"], "resumes": r["resumes"],
                "false_onsets": r["false_onsets"], "echo_mode": r["echo_mode"]}

    on = talk["local_onset"]
    value = median(on["talk_over_ms"])
    return metric(
        value, "ms", 150, "≤ 150 ms with local onset on", _le(value, 150),
        "the real client at the real-time block clock (file device, --echo default = auto → off for files; "
        "local onset fires on mic level ≥ the VAD threshold level for onset_ms while the reply is audible) "
        "in the barge-in conversation: every turn after the first starts speaking at a known mic sample "
        "while the previous reply plays. Time from the FileAudio tick that hands the block holding that "
        "first speech sample to the loop (on_mic) to the last device read that still handed frames of the "
        "playing reply (the fade block; after it the device gets no more of that reply). The block clock is "
        "20 ms, so the resolution is one block. Value: median over barge-ins with every server event "
        f"arriving {SERVER_DELAY_MS} ms late (a loopback proxy; a stand-in for the network round trip and a "
        "real server VAD's slower decision — the local server decides after 40 ms of speech), local onset "
        "on. Also: the same run with local onset off (server_only: only speech_started stops the speaker), "
        "and the phase-3 run straight to a loopback server (loopback_server). 'from_speech_started' is "
        "the cut measured from speech_started reaching the client, as the barge_in_cut_ms row does (negative: "
        "silent before the server spoke).",
        **part(on), server_delay_ms=SERVER_DELAY_MS, server_only=part(talk["server_only"]),
        loopback_server=part(rt))


def _false_stops(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def stops(r: dict[str, Any]) -> int:
        return int(r["unprompted_pauses"] + r["unprompted_speech_started"])

    per_run = {
        name: {"false_stops": stops(r), "echo_mode": r["echo_mode"],
               "pauses": r["pauses"], "unprompted_pauses": r["unprompted_pauses"],
               "unprompted_speech_started": r["unprompted_speech_started"],
               "unprompted_speech_started_during_reply": r["unprompted_speech_started_during_reply"],
               "speech_started": r["speech_started"], "user_turns": r["user_turns"],
               "user_turns_heard": r["user_turns_heard"], "responses": r["responses"],
               "assistant_s": round(r["assistant_played_s"], 1), "flushes": r["flushes"],
               "truncates": r["truncates"], "local_onsets": r["local_onsets"], "echo_onsets": r["echo_onsets"],
               "false_onsets": r["false_onsets"], "resumes": r["resumes"], "gated_blocks": r["echo_gated_blocks"],
               "learned_erl_db": r["echo_erl_db"], "cut_short": r["cut_short"]}
        for name, r in runs.items()
    }
    value = per_run["gate"]["false_stops"]
    return metric(
        value, "stops", 0, "0 with the reply leaking into the mic at full level", value == 0,
        "the real client in polite turns (no barge-in: each reply plays out before the next turn; the user is "
        "voicechat/data/question.wav, so the echo brain's replies are real speech) with the file device "
        f"leaking what it plays back into the mic at gain {ECHO_LEAK['echo_gain']} after "
        f"{ECHO_LEAK['echo_delay_ms']} ms (FileAudio echo_gain/echo_delay_ms), --echo gate. False stops = "
        "Player.pause calls (a local onset's Pause effect) + input_audio_buffer.speech_started received, each "
        f"counted unless it falls within {USER_ONSET_WINDOW_S:g} s after a user turn's first speech block "
        "(the user's own turn). Also per run: --echo aec (when the extra is installed) and, in the full run, "
        "both modes with the synthetic periodic voice as the user (and so as the reply); user_turns_heard "
        "checks the echo handling did not swallow the user's own turns; responses > user_turns means the "
        "server answered its own echo; cut_short: the bench ended the run 8 s (quick: 3 s) after the input "
        "file because replies to the echo kept coming (so its counts are per that window).",
        by_run=per_run)


def _erle(erle: dict[str, Any]) -> dict[str, Any]:
    details = {k: v for k, v in erle.items() if k not in ("erle_db",)}
    return metric(
        erle.get("erle_db"), "dB", None, "none in DESIGN.md (informational)", None,
        "bench.erle.measure_erle in a spawned process: the aec canceller (livekit WebRTC AEC3) on real speech "
        "through a synthetic room (48 kHz, 80 ms delay, RT60 200 ms, -10 dB echo path, 20 ms blocks). "
        "ERLE = echo power / residual power after the first 2 s; dt_near_kept_db = how much of a near-end "
        "talker at 0 dB against the echo survives double talk; cpu_ms_per_s = process time per second of "
        "audio. n/a when the aec extra is not installed.", **details)


def _underruns(jitter: list[dict[str, Any]]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for r in jitter:
        c = r["condition"]
        key = f"{c['pacing']}_" + (f"stall{c['stall_ms']:g}ms" if c["stall_ms"] else f"sigma{c['sigma_ms']:g}ms")
        if c.get("prebuffer_ms"):
            key += f"_fixed_prebuffer{c['prebuffer_ms']:g}ms"
        fixed = c.get("prebuffer_ms")
        row = rows.setdefault(key, {"prebuffer": f"fixed {fixed:g} ms, adaptation off" if fixed else "adaptive",
                                    "runs": 0, "underruns": 0, "underrun_ms": 0.0, "assistant_s": 0.0,
                                    "first_audio_median_ms": [], "prebuffer_end_ms": [], "prebuffer_max_ms": None,
                                    "max_proxy_hold_ms": 0.0})
        row["runs"] += 1
        row["underruns"] += r["underruns"]
        row["underrun_ms"] += r["underrun_ms"]
        row["assistant_s"] += r["assistant_played_s"]
        row["first_audio_median_ms"] += r["first_audio_ms"]
        row["prebuffer_end_ms"].append(r["prebuffer_end_ms"])
        row["prebuffer_max_ms"] = max(row["prebuffer_max_ms"] or 0.0, r["prebuffer_max_ms"] or 0.0)
        if r.get("proxy"):
            row["max_proxy_hold_ms"] = max(row["max_proxy_hold_ms"], r["proxy"]["max_hold_ms"])
    for row in rows.values():
        minutes = row["assistant_s"] / 60
        row["per_min"] = round(row["underruns"] / minutes, 2) if minutes else None
        row["underrun_ms"] = round(row["underrun_ms"], 1)
        row["assistant_s"] = round(row["assistant_s"], 1)
        fa = median(row["first_audio_median_ms"])
        row["first_audio_median_ms"] = None if fa is None else round(fa, 1)
        row["max_proxy_hold_ms"] = round(row["max_proxy_hold_ms"], 1)
    primary = rows.get("realtime_sigma30ms")
    value = primary["per_min"] if primary else None
    return metric(
        value, "/min", 0, "0 per minute at σ = 30 ms", None if value is None else value == 0,
        "instrumented clients at the real-time block clock, each behind a loopback proxy that releases every "
        "server WebSocket frame at max(previous, arrival + max(0, N(3σ, σ))) (order kept), plus runs with one "
        "200 ms downstream stall at the 5th audio delta of the 2nd reply. Underruns = PlaybackBuffer.underruns "
        "(running dry mid-reply), per minute of assistant audio handed to the device. Value: σ = 30 ms with "
        "the reply generated at real time in 20–40 ms deltas (the hard case: the buffer never gets ahead of "
        "the prebuffer); 'default' rows use the local server's default 4x pacing (20–240 ms deltas). The "
        "client's prebuffer adapts to measured arrival jitter (60 ms floor, 400 ms ceiling); "
        "'_fixed_prebufferN' rows are comparisons with adaptation off and the prebuffer fixed at N ms (same "
        "jitter seed as the first σ = 30 run). Per row: first_audio_median_ms (first delta received → first "
        "frame handed to the device, pooled over the row's runs), prebuffer_end_ms (the target the Player "
        "ended the run at, per run: conversation.player.prebuffer_ms) and prebuffer_max_ms (the highest "
        "target it set), so the trade-off between gaps and first-audio delay is visible.", conditions=rows)


# ---- output -----------------------------------------------------------------------------------


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g} {unit}" if abs(v) < 100 else f"{v:.0f} {unit}"


def _note(name: str, m: dict[str, Any]) -> str:
    d = m["details"]
    if name == "start_ms":
        return f"median of {d['n']}, max {d['max']}"
    if name == "barge_in_cut_ms":
        return f"median of {d['n']}, max {d['max']}; 48 kHz device median {d['device_48khz']['median']}"
    if name == "first_audio_ms":
        rtp = d["realtime_pacing_20_40ms_deltas"]
        return f"median of {d['default_pacing']['n']}, max {d['default_pacing']['max']}; real-time pacing median {rtp['median']}"
    if name == "truncation_error_ms":
        return (f"max of {d['n']}; 24 kHz device max {d['device_24khz']['max']}, 48 kHz device max "
                f"{d['device_48khz']['max']} (median {d['device_48khz']['median']}); past received {d['past_received']}")
    if name == "underruns_per_min":
        return "σ = 30 ms, reply generated at real time; every condition below"
    if name == "mic_to_wire_p99_ms":
        return f"{d['n']} blocks, median {d['median']}"
    if name == "cpu_s_per_min":
        modes = ", ".join(f"{mode} {row['median_s_per_min']:.2f}" for mode, row in d["by_echo_mode"].items())
        wall = d["by_echo_mode"]["off"]["run_wall_s"][0]
        return f"--echo {modes} s/min (medians, ~{wall:.0f} s runs); only +panel has the panel live"
    if name == "talk_over_silence_ms":
        so, lb = d["server_only"], d["loopback_server"]
        return (f"median of {d['n']}, p90 {d['p90']}, local onset stopped {d['stopped_by_local_onset']}/{d['n']}; "
                f"server {d['server_delay_ms']} ms away: cut from speech_started {d['from_speech_started']['median']}; "
                f"local onset off: {so['median']} (p90 {so['p90']}, cut from speech_started "
                f"{so['from_speech_started']['median']}); loopback server: {lb['median']}")
    if name == "echo_false_stops":
        return "; ".join(
            f"{run}: {r['unprompted_pauses']} pauses + {r['unprompted_speech_started']} speech_started "
            f"unprompted, {r['responses']} replies to {r['user_turns']} turns" + (" (cut short)" if r["cut_short"] else "")
            for run, r in d["by_run"].items())
    if name == "erle_db":
        if not d.get("available"):
            return f"n/a: {d.get('reason')}"
        return (f"double talk near end kept {d['dt_near_kept_db']} dB, CPU {d['cpu_ms_per_s']} ms per s of audio "
                f"({d['rate'] // 1000} kHz, {d['block_ms']} ms blocks)")
    if name == "rss_growth_mb":
        if d["extrapolated_30min_mb"] is None:
            return f"{d['growth_mb']} MB over {d['growth_covers_minutes']} min: too short to extrapolate"
        return (f"{d['growth_mb']} MB over {d['growth_covers_minutes']} min, slope {d['late_slope_mb_per_min']} "
                f"MB/min, extrapolated to 30 min")
    if name == "loop_stall_ms":
        d = m["details"]
        typing = d["phases"].get("typing", {})
        return (f"{d['turns_on_screen']} transcript lines; p99 {d['phases']['talking']['p99_ms']:.2f} ms; "
                f"typing {typing.get('max_ms', float('nan')):.1f} ms max")
    return ""


def print_table(metrics: dict[str, dict[str, Any]]) -> None:
    rows = [("metric", "value", "target", "result", "notes")]
    for name, m in metrics.items():
        result = {True: "pass", False: "MISS", None: "n/a"}[m["met"]]
        rows.append((name, _fmt(m["value"], m["unit"]), m["target_text"], result, _note(name, m)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for k, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
        if k == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    conditions = metrics["underruns_per_min"]["details"]["conditions"]
    print("\nunderruns by arrival condition (per minute of assistant audio played; prebuffer adaptive unless "
          "'fixed': adaptation off):")
    print(f"  {'condition':42} {'per min':>8} {'count':>6} {'gap ms':>8} {'audio s':>8} {'1st audio ms':>12} "
          f"{'prebuffer end ms':>17} {'max':>6}")
    for key, row in conditions.items():
        ends = "/".join(f"{x:g}" for x in row["prebuffer_end_ms"] if x is not None)
        print(f"  {key:42} {row['per_min']!s:>8} {row['underruns']:>6} {row['underrun_ms']:>8} {row['assistant_s']:>8} "
              f"{row['first_audio_median_ms']!s:>12} {ends:>17} {row['prebuffer_max_ms']!s:>6}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run (~40 s) for smoke tests")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--echo-replies", type=int, default=12,
                        help="echo table: heard-out replies and 0 dB barge-ins per room (0: skip; --quick skips it)")
    args = parser.parse_args(argv)
    quick = args.quick
    t0 = time.perf_counter()
    machine = machine_info()

    log("start time of `voicechat --help`")
    start = measure_start(3 if quick else 10)
    log("echo canceller ERLE (spawned process)")
    erle = echo_canceller(quick)
    log("real-time conversation with barge-ins")
    rt = realtime_conversation(2 if quick else 12)
    aec = bool(erle.get("available"))
    log(f"talk-over with a server {SERVER_DELAY_MS} ms away (local onset on/off) and echo leaking into the mic")
    talk, leak = talk_over_and_echo(quick, aec)
    log("arrival jitter, a 48 kHz device and client CPU per echo mode (parallel clients)")
    side = jitter_and_cpu(quick, aec)
    log("memory over a long --fast conversation")
    mem = memory_run(4 if quick else 83)

    log("event-loop stalls with a 500-turn transcript in the live panel")
    stall = stall_run(60 if quick else 500)

    from bench.device_cpu import measure as measure_devices
    from bench.device_cpu import print_table as print_device_table

    log("client CPU through real devices beside the floor client (44.1 and 48 kHz)")
    devices = measure_devices(quick)

    echo_rows: list[dict[str, Any]] = []
    if not quick and args.echo_replies > 0:
        from bench.echo_table import echo_table

        log("echo rooms through real devices (room x mode; about 18 min)")
        echo_rows = echo_table(args.echo_replies, parallel=1, log=log)

    rt48, jitter = side["rt48"], side["jitter"]
    metrics = build_metrics(start, rt, side, mem, talk, leak, erle, stall)
    report = {
        "schema": 1,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": {**machine, "loadavg_at_end": list(os.getloadavg()), "calibration_ms_at_end": calibration_ms(),
                    "calibration_note": "median ms of a fixed pure-Python loop; compare runs by it"},
        "metrics": metrics,
        "echo_rooms": echo_rows,
        "device_cpu": devices,
        "harness": {
            "realtime_run": {"wall_s": rt["wall_s"], "input_s": rt["input_s"], "responses": rt["responses"],
                             "tick_lateness_ms": summary(rt["tick_lateness_ms"], 2), "events": rt["events"]},
            "device_48khz_run": {"wall_s": rt48["wall_s"], "responses": rt48["responses"],
                                 "tick_lateness_ms": summary(rt48["tick_lateness_ms"], 2)},
            "jitter_runs": [{"condition": r["condition"], "wall_s": r["wall_s"], "responses": r["responses"],
                             "underruns": r["underruns"], "assistant_s": round(r["assistant_played_s"], 2),
                             "max_delta_gap_ms": r["max_delta_gap_ms"], "proxy": r["proxy"],
                             "prebuffer_end_ms": r["prebuffer_end_ms"], "prebuffer_max_ms": r["prebuffer_max_ms"],
                             "prebuffer_changes": r["prebuffer_changes"],
                             "tick_lateness_ms": summary(r["tick_lateness_ms"], 2)} for r in jitter],
            "phase5_server_processes": side["server_hosts"],
            "talk_over_runs": {name: {"wall_s": r["wall_s"], "responses": r["responses"], "events": r["events"],
                                      "tick_lateness_ms": summary(r["tick_lateness_ms"], 2)}
                               for name, r in talk.items()},
            "echo_leak_runs": {mode: {"wall_s": r["wall_s"], "responses": r["responses"], "events": r["events"],
                                      "tick_lateness_ms": summary(r["tick_lateness_ms"], 2)}
                               for mode, r in leak.items()},
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(metrics)
    print_device_table(devices["rows"])
    if echo_rows:
        from bench.echo_table import print_table as print_echo_table

        print()
        print_echo_table(echo_rows)
    else:
        print("\n(echo table skipped; run it alone with: python -m bench.echo_table)")
    if quick:
        print("\n--quick: a reduced run for smoke tests; its figures are not representative")
    print(f"\n{args.out} written in {report['duration_s']} s "
          f"({machine['cpus']} CPUs, load {machine['loadavg_at_start'][0]:.2f} at start)")
    return 0
