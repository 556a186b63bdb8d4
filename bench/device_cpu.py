"""The client's cost through the real device path, beside a floor client, in one run.

``python -m bench.device_cpu [--quick] [--out PATH]``

For each device rate (44.1 and 48 kHz: fresh headless PulseAudio, ``spk``/``mic`` null sinks
loaded at that rate) and each repetition, four runs alternate: ``voicechat talk`` with its
panel in a 120x40 pty, the floor client (``bench/floor.py``), ``voicechat talk --quiet``, and
``voicechat talk --echo off`` with its panel (the *headset* row: no echo handling, like the
floor, so the two compare like for like and the difference to the first row is what handling
the echo of a speaker costs). Each
run talks to the local server in this process through a ``JitterProxy`` (sigma 30 ms, the reply
generated at real time) and goes: a spoken question into the ``mic`` sink -> the reply plays
(the *talking* window) -> silence (the *idle* window) -> a second question -> a barge-in spoken
over its reply (the *stop latency*: the server's ``speech_started`` stamp to the last sounding
sample of the process's own playback stream). Each repetition also runs the floor client's two
streams with empty callbacks and no connection (the *streams* row: what the audio path alone
costs at 20 ms blocks), and its microphone stream alone (the *mic-stream* row: what listening
costs even with the speaker's stream asleep). Figures are medians over repetitions; the goals are printed beside
them, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.devices import PlaybackRecorder, ServerThread, headless_pulse_env, stop_pulse
from bench.echo_rooms import SpeechBrain
from bench.proxy import JitterProxy
from bench.speech import reply, say
from bench.terminal import TerminalSink
from voicechat.audio.wav import write_wav
from voicechat.server import ServerOptions

ROOT = Path(__file__).resolve().parents[1]
RATES = (44_100, 48_000)
KINDS = ("voicechat", "floor", "quiet", "headset")
STREAM_KINDS = {"streams": "the audio path alone (two streams, 20 ms blocks, empty callbacks)",
                "mic-stream": "the microphone's stream alone (what listening costs with the speaker asleep)"}
FLAGS = {"voicechat": (), "quiet": ("--quiet",), "headset": ("--echo", "off")}  # the kinds that are voicechat
STREAMS_SETTLE_S = 2.0  # the streams-only run: started and steady before its window opens
GOALS = {"talking_cpu_s_per_min": 1.5, "idle_cpu_s_per_min": 0.5, "quiet_cpu_s_per_min": 1.0,
         "stop_ms": 40.0, "underruns_per_min": 0.0}
CLK = os.sysconf("SC_CLK_TCK")
IDLE_AFTER_DONE_S = 1.5  # after response.done: the jitter buffer's last audio has played
UNDERRUNS = re.compile(rb"underruns (\d+)")


class CountingTerminal(TerminalSink):
    """A TerminalSink that also remembers the last underrun count the panel drew."""

    def __init__(self) -> None:
        super().__init__(rows=40, cols=120)
        self.underruns: int | None = None

    def _drain(self) -> None:
        carry = b""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.bytes += len(data)
            self.tail = (self.tail + data)[-4000:]
            found = UNDERRUNS.findall(carry + data)
            if found:
                self.underruns = int(found[-1])
            carry = data[-32:]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        total += sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


def load_sinks(env: dict[str, str], rate: int) -> tuple[str, str]:
    """Null sinks at ``rate`` (kept ticking by a loopback like the script's), made the defaults."""
    spk, mic = f"spk{rate}", f"mic{rate}"
    for name in (spk, mic):
        subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}", f"rate={rate}"],
                       env=env, check=True, capture_output=True)
        subprocess.run(["pactl", "load-module", "module-loopback", f"source={name}.monitor", "sink=keepalive",
                        "latency_msec=60"], env=env, check=False, capture_output=True)
    subprocess.run(["pactl", "set-default-sink", spk], env=env, check=True)
    subprocess.run(["pactl", "set-default-source", f"{mic}.monitor"], env=env, check=True)
    return spk, mic


class Window:
    def __init__(self, pid: int, term: CountingTerminal | None) -> None:
        self.pid, self.term = pid, term
        self.t, self.cpu, self.sw = time.monotonic(), cpu_s(pid), switches(pid)
        self.bytes = term.bytes if term else 0

    def until_now(self) -> dict[str, float]:
        minutes = (time.monotonic() - self.t) / 60
        return {"cpu_s_per_min": (cpu_s(self.pid) - self.cpu) / minutes,
                "wakeups_per_s": (switches(self.pid) - self.sw) / minutes / 60,
                "term_bytes_per_min": ((self.term.bytes if self.term else 0) - self.bytes) / minutes}


def wait_event(st: ServerThread, etype: str, after: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [t for t, _ in st.emitted.events(etype) if t > after]
        if found:
            return found[0]
        time.sleep(0.05)
    return None


def stop_ms(rec: PlaybackRecorder, barge_at: float, started: float, gap_ms: int = 250,
            threshold: int = 60) -> float | None:
    """When this process's playback fell silent (the start of its first quiet stretch of
    ``gap_ms`` after the barge-in began), relative to the server's ``speech_started``. Negative:
    it stopped before the server spoke (local onset detection). A pause in the reply that long
    would read as a stop: the figure is a median over runs for that reason."""
    x = rec.samples()
    if not len(x):
        return None
    i0 = rec.index_at(barge_at)
    loud = abs(x[i0 : i0 + 3 * rec.rate].astype(int)) > threshold
    gap = rec.rate * gap_ms // 1000
    quiet = 0
    for i, is_loud in enumerate(loud):
        quiet = 0 if is_loud else quiet + 1
        if quiet >= gap:
            return round((rec.time_of(i0 + i - gap + 1) - started) * 1000, 1)
    return None


def one_run(kind: str, rate: int, env: dict[str, str], mic: str, wavs: dict[str, Path],
            st: ServerThread, url: str, reply_s: float, idle_s: float, cfg: Path,
            profile: Path | None = None) -> dict[str, Any]:
    cenv = dict(env, OPENAI_API_KEY="sk-local", VOICECHAT_CONFIG_DIR=str(cfg), TERM="xterm-256color")
    term = CountingTerminal() if kind in FLAGS else None
    if kind == "floor":
        cmd = [sys.executable, "-m", "bench.floor", "--url", url, "--sample-rate", str(rate)]
        proc = subprocess.Popen(cmd, env=cenv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    else:
        cmd = [sys.executable, "-m", "voicechat", "talk", "--base-url", url, "--sample-rate", str(rate)]
        if profile is not None:  # the same run, its loop's thread under cProfile
            cmd[1:3] = ["-m", "bench.profiled", str(profile)]
        cmd += FLAGS[kind]
        assert term is not None
        proc = subprocess.Popen(cmd, env=cenv, cwd=ROOT, stdin=term.slave, stdout=term.slave, stderr=term.slave,
                                start_new_session=True)
        term.start()
    out: dict[str, Any] = {"kind": kind, "rate": rate}
    rec: PlaybackRecorder | None = None
    try:
        begun = time.monotonic()
        if wait_event(st, "session.updated", begun, 30) is None:
            raise RuntimeError(f"{kind}: no session.updated")
        time.sleep(1.0)
        rec = PlaybackRecorder(proc.pid, f"{mic.replace('mic', 'spk')}.monitor", env)
        mark = time.monotonic()
        subprocess.run(["paplay", "-d", mic, str(wavs["question"])], env=env, check=True)
        first = wait_event(st, "response.output_audio.delta", mark, 20)
        talk = Window(proc.pid, term)
        done = wait_event(st, "response.done", mark, reply_s * 3 + 20)
        time.sleep(max(0.0, (first or mark) + reply_s + 0.3 - time.monotonic()))
        out["talking"] = talk.until_now()
        out["talk_done"] = done is not None
        underruns0 = term.underruns if term else None
        # The reply outlasts the talking window (so that window is all talk): the idle window
        # starts once it has been generated and played out, not while its last seconds sound.
        wait_event(st, "response.done", mark, 60)
        time.sleep(IDLE_AFTER_DONE_S)
        idle = Window(proc.pid, term)
        time.sleep(idle_s)
        out["idle"] = idle.until_now()
        if term is not None and term.underruns is not None:
            out["underruns"] = term.underruns
            out["underruns_talking"] = underruns0
        out["reply_min"] = reply_s / 60
        mark = time.monotonic()
        subprocess.run(["paplay", "-d", mic, str(wavs["question"])], env=env, check=True)
        wait_event(st, "response.output_audio.delta", mark, 20)
        time.sleep(1.5)
        mark = time.monotonic()
        subprocess.run(["paplay", "-d", mic, str(wavs["barge"])], env=env, check=True)
        started = wait_event(st, "input_audio_buffer.speech_started", mark - 0.5, 5)
        time.sleep(1.0)
        out["stop_ms"] = stop_ms(rec, mark, started) if started is not None else None
    finally:
        if rec is not None:
            rec.stop()
        out["cpu_s"] = cpu_s(proc.pid) if proc.poll() is None else None  # the whole process, all threads
        interrupt(proc, 20)
        if term is not None:
            os.close(term.slave)
            term.close()
    return out


def streams_run(rate: int, env: dict[str, str], seconds: float, kind: str = "streams") -> dict[str, Any]:
    """The floor client's streams with empty callbacks, alone (``kind``, one of `STREAM_KINDS`:
    both, or the microphone's): one window of ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", "--streams-only", "--sample-rate", str(rate),
                             *(["--input-only"] if kind == "mic-stream" else [])],
                            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(STREAMS_SETTLE_S)
        if proc.poll() is not None:
            raise RuntimeError(f"streams-only run ended early: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
        window = Window(proc.pid, None)
        time.sleep(seconds)
        return {"kind": kind, "rate": rate, "window": window.until_now()}
    finally:
        interrupt(proc, 10)


def interrupt(proc: subprocess.Popen[Any], grace_s: float) -> None:
    """SIGINT the run's process group, as Ctrl-C would; SIGKILL it if it is not gone in ``grace_s``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def rate_runs(rate: int, reps: int, reply_s: float, idle_s: float, tmp: Path,
              profile_dir: Path | None = None) -> list[dict[str, Any]]:
    env = headless_pulse_env(tmp / f"pulse{rate}")
    runs: list[dict[str, Any]] = []
    try:
        _, mic = load_sinks(env, rate)
        wavs = {"question": tmp / "q.wav", "barge": tmp / "b.wav"}
        write_wav(wavs["question"], say("What is the weather like on the coast today?", level_dbfs=-20), 24_000)
        write_wav(wavs["barge"], say("Wait, stop, I have a question.", voice="en-gb+f4", level_dbfs=-18), 24_000)
        opts = ServerOptions(brain=SpeechBrain([reply(1, seconds=reply_s + 4)]), recognizer="none", seed=1, speed=1.0)
        with ServerThread(opts) as st:
            proxy = JitterProxy(st.server.port, sigma_ms=30, seed=3)
            asyncio.run_coroutine_threadsafe(proxy.start(), st.loop).result(10)
            url = f"http://127.0.0.1:{proxy.port}/v1"
            try:
                if profile_dir is not None:
                    print(f"device_cpu: {rate} Hz voicechat, profiled", file=sys.stderr, flush=True)
                    prof = profile_dir / f"voicechat-{rate}.prof"
                    run = one_run("voicechat", rate, env, mic, wavs, st, url, reply_s, idle_s, tmp / "cfg", prof)
                    return [dict(run, profile=str(prof))]
                for rep in range(reps):
                    for kind in KINDS:
                        print(f"device_cpu: {rate} Hz run {rep + 1}/{reps} {kind}", file=sys.stderr, flush=True)
                        runs.append(one_run(kind, rate, env, mic, wavs, st, url, reply_s, idle_s, tmp / "cfg"))
                    for kind in STREAM_KINDS:
                        print(f"device_cpu: {rate} Hz run {rep + 1}/{reps} {kind} only", file=sys.stderr, flush=True)
                        runs.append(streams_run(rate, env, idle_s, kind))
            finally:
                asyncio.run_coroutine_threadsafe(proxy.close(), st.loop).result(10)
    finally:
        stop_pulse(env)
    return runs


def _median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(statistics.median(got), 2) if got else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for rate in sorted({r["rate"] for r in runs}):
        for kind in KINDS:
            mine = [r for r in runs if r["rate"] == rate and r["kind"] == kind]
            row = {
                "talking_cpu_s_per_min": _median([r["talking"]["cpu_s_per_min"] for r in mine]),
                "idle_cpu_s_per_min": _median([r["idle"]["cpu_s_per_min"] for r in mine]),
                "talking_wakeups_per_s": _median([r["talking"]["wakeups_per_s"] for r in mine]),
                "idle_wakeups_per_s": _median([r["idle"]["wakeups_per_s"] for r in mine]),
                "talking_term_bytes_per_min": _median([r["talking"]["term_bytes_per_min"] for r in mine]),
                "idle_term_bytes_per_min": _median([r["idle"]["term_bytes_per_min"] for r in mine]),
                "stop_ms": _median([r.get("stop_ms") for r in mine]),
                "underruns_per_min": _median([r["underruns_talking"] / r["reply_min"] if r.get("underruns_talking")
                                              is not None else None for r in mine]),
                "runs": len(mine),
            }
            rows[f"{kind}@{rate}"] = row
        for kind in STREAM_KINDS:
            windows = [r["window"] for r in runs if r["rate"] == rate and r["kind"] == kind]
            rows[f"{kind}@{rate}"] = {
                "cpu_s_per_min": _median([w["cpu_s_per_min"] for w in windows]),
                "wakeups_per_s": _median([w["wakeups_per_s"] for w in windows]),
                "runs": len(windows),
            }
        floor = rows[f"floor@{rate}"]
        for kind in FLAGS:
            row = rows[f"{kind}@{rate}"]
            row["ratio_to_floor"] = {k: round(row[k] / floor[k], 2) for k in
                                     ("talking_cpu_s_per_min", "idle_cpu_s_per_min", "talking_wakeups_per_s", "idle_wakeups_per_s")
                                     if row[k] is not None and floor[k]}
    return rows


def print_table(rows: dict[str, Any]) -> None:
    print("\nthrough real devices (headless PulseAudio; medians; goals printed, not asserted)")
    cols = [("talking_cpu_s_per_min", "talk CPU s/min"), ("idle_cpu_s_per_min", "idle CPU s/min"),
            ("talking_wakeups_per_s", "talk wake/s"), ("idle_wakeups_per_s", "idle wake/s"),
            ("talking_term_bytes_per_min", "term B/talk min"), ("idle_term_bytes_per_min", "term B/idle min"),
            ("stop_ms", "stop ms"),
            ("underruns_per_min", "underruns/min")]
    print(f"  {'row':18}" + "".join(f"{title:>17}" for _, title in cols))
    for name, row in rows.items():
        if name.partition("@")[0] in STREAM_KINDS:
            continue
        cells = "".join(f"{'-' if row[k] is None else format(row[k], '.2f'):>17}" for k, _ in cols)
        print(f"  {name:18}{cells}")
        ratio = row.get("ratio_to_floor")
        if ratio:
            print(f"  {'  x floor':18}" + "".join(f"{ratio[k]:>17.2f}" if k in ratio else f"{'':>17}" for k, _ in cols))
    for name, row in rows.items():
        what = STREAM_KINDS.get(name.partition("@")[0])
        if what is not None and row["cpu_s_per_min"] is not None:
            print(f"  {name:18}{what}: {row['cpu_s_per_min']:.2f} CPU-s/min, {row['wakeups_per_s']:.0f} wake/s")
    print("  headset: voicechat talk --echo off (no echo handling, like the floor)")
    print("  goals: talking <= 1.5 CPU-s/min (panel), idle <= 0.5, --quiet (talking) <= 1.0, stop <= 40 ms, "
          "0 underruns/min (sigma 30 ms), loop stall <= 5 ms (main bench)")
    print("  underruns: the panel's count at the end of the reply (device xruns included); stop ms < 0: the "
          "client fell silent before the server's speech_started (local onset)")


def measure(quick: bool, reps: int | None = None) -> dict[str, Any]:
    default_reps, reply_s, idle_s = (1, 4.0, 4.0) if quick else (3, 8.0, 15.0)
    reps = reps or default_reps
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vc-devcpu-") as tmp:
        for rate in RATES:
            runs += rate_runs(rate, reps, reply_s, idle_s, Path(tmp))
    return {"rows": summarise(runs), "runs": runs, "goals": GOALS, "quick": quick}


def profile(out_dir: Path, quick: bool) -> list[dict[str, Any]]:
    """One voicechat run per rate with its loop's thread under cProfile (`bench.profiled`); the
    profiles are kept in ``out_dir``. Its figures are not the bench's: profiling costs CPU too."""
    _, reply_s, idle_s = (1, 4.0, 4.0) if quick else (3, 8.0, 15.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vc-devcpu-") as tmp:
        for rate in RATES:
            runs += rate_runs(rate, 1, reply_s, idle_s, Path(tmp), profile_dir=out_dir)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description="client CPU through real devices, beside the floor client")
    ap.add_argument("--quick", action="store_true", help="short replies and idle stretches, one repetition")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per rate (default 3; --quick: 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "device_cpu.json")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR",
                    help="instead: one run per rate with the loop profiled; profiles kept in DIR, tables printed")
    a = ap.parse_args()
    if a.profile is not None:
        from bench.profiled import table

        for run in profile(a.profile, a.quick):
            print(f"\nvoicechat @{run['rate']} Hz, panel on, profiled ({run['profile']}):")
            print("\n".join(table(Path(run["profile"]), run.get("cpu_s"))))
        return 0
    result = measure(a.quick, a.reps)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2))
    print_table(result["rows"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
