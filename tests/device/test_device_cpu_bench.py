"""Device tier: the device-CPU bench (``python -m bench.device_cpu --quick``) runs to its end and
writes a row with numbers for voicechat, --quiet, --echo off (headset), the floor client and
the floor client's streams alone and its microphone's stream alone at both device rates; and its
profiled run (``--profile``).

Only the shape of the result is checked: its figures depend on the machine and its load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.device_cpu import FLAGS, KINDS, RATES, STREAM_KINDS
from bench.profiled import areas, table

pytestmark = [pytest.mark.device, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ("talking_cpu_s_per_min", "idle_cpu_s_per_min", "talking_wakeups_per_s", "idle_wakeups_per_s")


def test_the_quick_device_cpu_bench_reports_every_row(pulse: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "device_cpu.json"
    run = subprocess.run([sys.executable, "-m", "bench.device_cpu", "--quick", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    for rate in RATES:
        for kind in KINDS:
            row = rows[f"{kind}@{rate}"]
            for key in NUMBERS:
                assert isinstance(row[key], (int, float)), (kind, rate, key, row)
            assert isinstance(row["stop_ms"], (int, float)), (kind, rate, row)
            if kind in FLAGS:  # voicechat's rows have a terminal
                assert isinstance(row["idle_term_bytes_per_min"], (int, float)), (kind, rate, row)
                if kind != "quiet":  # the panel drew the reply's words
                    assert row["talking_term_bytes_per_min"] > 0, (kind, rate, row)
    assert isinstance(rows[f"voicechat@{RATES[0]}"]["underruns_per_min"], (int, float)), rows
    for rate in RATES:
        for kind in STREAM_KINDS:
            streams = rows[f"{kind}@{rate}"]
            assert streams["runs"] == 1 and streams["cpu_s_per_min"] > 0 and streams["wakeups_per_s"] > 0, streams
        for kind in FLAGS:
            assert set(rows[f"{kind}@{rate}"]["ratio_to_floor"]) == set(NUMBERS), (kind, rate, rows)


def test_the_profiled_run_says_where_the_loop_spends_its_cpu(pulse: dict[str, str], tmp_path: Path) -> None:
    """``--profile``: one real-device conversation per rate with the loop's thread profiled; the
    table names echo handling and the panel with CPU spent in them, within the process's CPU."""
    run = subprocess.run([sys.executable, "-m", "bench.device_cpu", "--quick", "--profile", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for rate in RATES:
        profile = tmp_path / f"voicechat-{rate}.prof"
        assert profile.stat().st_size > 0, rate
        spent = areas(profile)
        assert spent["echo handling"] > 0 and spent["the canceller (WebRTC AEC3)"] > 0, spent
        assert spent["panel: drawing it"] > 0 and spent["resampling (both ways)"] > 0, spent
        assert spent["the canceller (WebRTC AEC3)"] <= spent["echo handling"] <= spent["total"], spent
        assert any("echo handling" in line for line in table(profile)), table(profile)
    assert run.stdout.count("the loop thread:") == len(RATES), run.stdout
