"""The benchmark harness runs end to end (``python -m bench --quick``) and writes its JSON.

A smoke test only: it checks the shape of the report, never the figures (benchmarks are not
timed assertions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METRICS = (
    "start_ms",
    "first_audio_ms",
    "barge_in_cut_ms",
    "talk_over_silence_ms",
    "echo_false_stops",
    "truncation_error_ms",
    "underruns_per_min",
    "mic_to_wire_p99_ms",
    "cpu_s_per_min",
    "rss_growth_mb",
    "loop_stall_ms",
)
OPTIONAL = ("erle_db",)  # n/a (None) when the aec extra is not installed; no DESIGN.md target


@pytest.mark.slow
def test_quick_bench_writes_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["timestamp"] and report["machine"]["cpus"]
    metrics = report["metrics"]
    assert set(metrics) == {*METRICS, *OPTIONAL}
    for name in METRICS:
        m = metrics[name]
        assert isinstance(m["value"], int | float) and not isinstance(m["value"], bool), (name, m["value"])
        assert m["met"] in (True, False, None), name
        assert isinstance(m["target"], int | float) and m["unit"] and m["method"], name
    assert metrics["loop_stall_ms"]["details"]["panel_live"] is True  # the panel drew while it was timed
    for name in OPTIONAL:
        value = metrics[name]["value"]
        assert value is None or (isinstance(value, int | float) and not isinstance(value, bool)), (name, value)
        assert metrics[name]["unit"] and metrics[name]["method"], name
    for name in metrics:
        assert name in proc.stdout  # the table lists every metric
