"""``python -m bench.erle [--quick]``: how much echo `voicechat.audio.aec` removes, and at what cost.

A synthetic but realistic echo path: the far end (what the speaker plays) is real speech —
``voicechat/data/question.wav`` plus espeak-ng sentences when espeak-ng is installed — and the
microphone hears it through a room (exponentially decaying noise, RT60 150–250 ms, with a
direct path) at an echo-path gain of -10 dB, late by the device latency (40–120 ms, and one
long Bluetooth-like path), over -65 dBFS of white noise.

* ERLE (echo return loss enhancement): echo power in the mic over residual power after the
  canceller, in dB, over the 10 ms frames where echo is present, after the first 2 s (and,
  separately, within them, while it converges). The residual includes what is left of the mic
  noise, so figures near 40 dB are at the scene's floor.
* Double talk: near-end speech (a different voice) at -6/0/+6 dB against the echo while the far
  end plays. "Kept" is how much of the near end survives, in dB: per 20 ms frame, the
  canceller's output is projected onto the near end as the same canceller passes it with no
  echo (that pass carries its delay and high-pass filter), over frames with both talkers.
* CPU: process time per second of audio, fed in 20 ms blocks as the app does.

`measure_erle` returns the figures as a dict; ``python -m bench.erle`` prints them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from voicechat.audio.aec import EchoCanceller, aec_available
from voicechat.audio.resample import resample_all
from voicechat.audio.wav import read_wav
from voicechat.errors import AudioError

ROOT = Path(__file__).resolve().parents[1]
QUESTION = ROOT / "voicechat" / "data" / "question.wav"
BLOCK_MS = 20
SKIP_S = 2.0  # convergence time left out of every figure
NEAR_START_S = 4.0

# espeak-ng voice, options and text for each far-end sentence and the near-end barge-in.
FAR_SENTENCES = (
    ("en-us", "165", "The forecast for tomorrow is mostly sunny, with a light breeze from the "
     "west and a high of twenty two degrees."),
    ("en-gb+m3", "150", "Would you like me to remind you to bring an umbrella on Thursday, when "
     "the rain returns?"),
)
NEAR_SENTENCE = ("en-us+f3", "170", "Wait, stop, I have a different question about my train ticket.")

Array = np.ndarray


def _speak(voice: str, speed: str, text: str, workdir: Path, rate: int) -> Array:
    path = workdir / f"s{len(list(workdir.iterdir()))}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", speed, "-p", "60", "-w", str(path), text],
        check=True, capture_output=True, timeout=30,
    )
    samples, file_rate = read_wav(path)
    return resample_all(samples, file_rate, rate).astype(np.float64)


def _level(x: Array, dbfs: float) -> Array:
    """Scale ``x`` so its active (non-silent 10 ms frames) RMS is ``dbfs``."""
    frames = x[: x.size // 80 * 80].reshape(-1, 80)
    power = (frames**2).mean(axis=1)
    active = power > power.max() * 1e-3
    return x * (10 ** (dbfs / 20) * 32768 / np.sqrt(power[active].mean()))


def speech(rate: int) -> tuple[Array, Array, str]:
    """Far-end and near-end speech at ``rate`` (float, int16 scale) and where it came from."""
    question, file_rate = read_wav(QUESTION)
    q = resample_all(question, file_rate, rate).astype(np.float64)
    gap = np.zeros(rate // 4)
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            sentences = [_speak(*s, Path(tmp), rate) for s in FAR_SENTENCES]
            near = _speak(*NEAR_SENTENCE, Path(tmp), rate)
        parts = [q, *sentences]
        source = "question.wav + espeak-ng"
    else:  # question.wav at three speeds; the near end is it reversed and faster
        parts = [resample_all(question, file_rate, int(rate * s)).astype(np.float64)
                 for s in (1.0, 1.15, 0.9, 1.05, 0.95)]
        near = resample_all(question[::-1].copy(), file_rate, int(rate / 1.2)).astype(np.float64)
        source = "question.wav only (no espeak-ng)"
    far = np.concatenate([p for s in parts for p in (_level(s, -20.0), gap)])
    return far, _level(near, -20.0), source


def room_response(rate: int, rt60_s: float, gain_db: float, seed: int = 7) -> Array:
    """Exponentially decaying noise with a direct path, scaled to an echo-path gain of ``gain_db``."""
    n = int(rate * rt60_s * 1.5)
    t = np.arange(n) / rate
    h = np.random.default_rng(seed).standard_normal(n) * np.exp(-6.908 * t / rt60_s)
    h[0] = 12.0 * np.sqrt((h[: rate // 100] ** 2).mean())  # direct path above the early tail
    return h * (10 ** (gain_db / 20) / np.sqrt((h**2).sum()))


def _convolve(x: Array, h: Array) -> Array:
    n = x.size + h.size - 1
    nfft = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: x.size]


def _pcm(x: Array) -> Array:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@dataclass
class Scene:
    rate: int
    far: Array  # int16: what the speaker is handed
    echo: Array  # float: the echo part of the mic signal
    near: Array  # float: the near-end talker's part (zeros without double talk)
    noise: Array  # float

    @property
    def mic(self) -> Array:
        return _pcm(self.echo + self.near + self.noise)


def echo_scene(
    rate: int,
    *,
    delay_ms: int = 80,
    rt60_s: float = 0.2,
    gain_db: float = -10.0,
    noise_dbfs: float = -65.0,
    near_db: float | None = None,
    voices: tuple[Array, Array] | None = None,
) -> Scene:
    """The far end through a room into the mic; with ``near_db``, a near-end talker that many dB
    louder than the echo joins at `NEAR_START_S`."""
    far, near_speech = voices if voices is not None else speech(rate)[:2]
    late = int(rate * delay_ms / 1000)
    echo = np.concatenate([np.zeros(late), _convolve(far, room_response(rate, rt60_s, gain_db))])
    echo = echo[: far.size]
    noise = np.random.default_rng(3).standard_normal(far.size) * 10 ** (noise_dbfs / 20) * 32768
    near = np.zeros(far.size)
    if near_db is not None:
        start = int(NEAR_START_S * rate)
        talker = near_speech * 10 ** ((gain_db + near_db) / 20)  # both at -20 dBFS before the path
        near[start : start + talker.size] = talker[: far.size - start]
    return Scene(rate, _pcm(far), echo, near, noise)


def run_canceller(
    canceller: EchoCanceller, mic: Array, ref: Array, block_ms: int = BLOCK_MS
) -> tuple[Array, float]:
    """Feed ``mic`` and ``ref`` in blocks; the joined output and the process time spent (s)."""
    block = canceller.rate * block_ms // 1000
    out = np.empty_like(mic)
    t0 = time.process_time()
    for i in range(0, mic.size, block):
        out[i : i + block] = canceller.process(mic[i : i + block], ref[i : i + block])
    return out, time.process_time() - t0


def _frame_power(x: Array, n: int) -> Array:
    m = x.size // n * n
    return (np.asarray(x[:m], dtype=np.float64).reshape(-1, n) ** 2).sum(axis=1)


def erle_db(scene: Scene, out: Array, start_s: float = SKIP_S, end_s: float | None = None) -> float:
    """Echo power over residual power, in frames with echo, from ``start_s`` to ``end_s``."""
    n = scene.rate // 100
    echo, residual = _frame_power(scene.echo, n), _frame_power(out, n)
    frames = echo > echo.max() * 1e-3
    frames[: int(start_s * 100)] = False
    if end_s is not None:
        frames[int(end_s * 100) :] = False
    return float(10 * np.log10(echo[frames].sum() / max(residual[frames].sum(), 1e-9)))


def near_kept_db(scene: Scene, out: Array, clean: Array, skip_s: float = SKIP_S) -> tuple[float, float]:
    """How much of the near end survives double talk (projected, and plain power), in dB.

    ``clean`` is the near end (plus noise) through a fresh canceller with a silent reference.
    """
    n = scene.rate // 50
    m = out.size // n * n
    o = out[:m].astype(np.float64).reshape(-1, n)
    c = clean[:m].astype(np.float64).reshape(-1, n)
    near, echo = _frame_power(scene.near, n), _frame_power(scene.echo, n)
    both = (near > near.max() * 1e-3) & (echo > echo.max() * 1e-3)
    both[: int(skip_s * 50)] = False
    pc = (c**2).sum(axis=1)
    g = (o * c).sum(axis=1) / np.maximum(pc, 1e-9)
    kept = 10 * np.log10((g[both] ** 2 * pc[both]).sum() / pc[both].sum())
    power = 10 * np.log10((o[both] ** 2).sum() / pc[both].sum())
    return float(kept), float(power)


def processing_delay_ms(rate: int) -> float:
    """The canceller's own delay: where a click comes out with a silent reference."""
    c = EchoCanceller(rate)
    x = np.zeros(rate // 2, dtype=np.int16)
    x[rate // 10 :: rate // 10] = 10000
    out, _ = run_canceller(c, x, np.zeros_like(x))
    first = rate // 10
    return float(np.argmax(np.abs(out[first : first + rate // 20])) * 1000 / rate)


def _erle_case(rate: int, voices: tuple[Array, Array], *, delay_ms: int = 80, hint_ms: int | None = None,
               rt60_s: float = 0.2) -> dict[str, Any]:
    hint = delay_ms if hint_ms is None else hint_ms
    scene = echo_scene(rate, delay_ms=delay_ms, rt60_s=rt60_s, voices=voices)
    out, cpu = run_canceller(EchoCanceller(rate, delay_ms=hint), scene.mic, scene.far)
    seconds = scene.far.size / rate
    return {
        "rate": rate, "delay_ms": delay_ms, "hint_ms": hint, "rt60_ms": int(rt60_s * 1000),
        "erle_db": round(erle_db(scene, out), 1),
        "erle_first_2s_db": round(erle_db(scene, out, 0.0, SKIP_S), 1),
        "cpu_ms_per_s": round(cpu / seconds * 1000, 2),
    }


def _double_talk(rate: int, voices: tuple[Array, Array], near_db: float) -> dict[str, Any]:
    scene = echo_scene(rate, near_db=near_db, voices=voices)
    out, _ = run_canceller(EchoCanceller(rate, delay_ms=80), scene.mic, scene.far)
    alone = _pcm(scene.near + scene.noise)
    clean, _ = run_canceller(EchoCanceller(rate, delay_ms=80), alone, np.zeros_like(alone))
    kept, power = near_kept_db(scene, out, clean)
    return {"rate": rate, "near_vs_echo_db": near_db, "near_kept_db": round(kept, 1),
            "out_vs_near_db": round(power, 1)}


def _backend_name() -> str:
    try:
        return f"livekit {metadata.version('livekit')} (WebRTC APM, AEC3)"
    except metadata.PackageNotFoundError:
        return "livekit (version unknown)"


def measure_erle(quick: bool = False) -> dict[str, Any]:
    """ERLE, double-talk near-end retention and CPU of the echo canceller (see the module doc).

    Headline figures are at 48 kHz, 80 ms delay, RT60 200 ms, -10 dB echo path, 20 ms blocks.
    Without the ``aec`` extra: ``{"available": False, ...}`` with the reason.
    """
    if not aec_available():
        return {"available": False, "reason": "the 'aec' extra is not installed",
                "erle_db": None, "dt_near_kept_db": None, "cpu_ms_per_s": None, "rate": None}
    rate = 48000
    voice_cache: dict[int, tuple[Array, Array]] = {}
    source = ""

    def voices(r: int) -> tuple[Array, Array]:
        nonlocal source
        if r not in voice_cache:
            far, near, source = speech(r)
            voice_cache[r] = (far, near)
        return voice_cache[r]

    cases = [_erle_case(rate, voices(rate))]
    talk = [_double_talk(rate, voices(rate), 0.0)]
    if not quick:
        cases += [_erle_case(r, voices(r)) for r in (16000, 24000, 44100)]
        cases += [_erle_case(rate, voices(rate), delay_ms=d, rt60_s=t)
                  for d, t in ((40, 0.15), (120, 0.25))]
        cases += [_erle_case(rate, voices(rate), delay_ms=120, hint_ms=0),
                  _erle_case(rate, voices(rate), delay_ms=700, hint_ms=700),
                  _erle_case(rate, voices(rate), delay_ms=700, hint_ms=0)]
        talk += [_double_talk(rate, voices(rate), db) for db in (-6.0, 6.0)]
        talk += [_double_talk(24000, voices(24000), 0.0)]
    # Per-call cost of one 20 ms block at the headline rate.
    c = EchoCanceller(rate)
    block = np.asarray(voices(rate)[0][: rate // 50], dtype=np.int16)
    for _ in range(20):
        c.process(block, block)
    calls = 100 if quick else 500
    t0 = time.perf_counter()
    for _ in range(calls):
        c.process(block, block)
    per_block_ms = (time.perf_counter() - t0) / calls * 1000
    return {
        "available": True,
        "backend": _backend_name(),
        "speech": source,
        "rate": rate,
        "block_ms": BLOCK_MS,
        "erle_db": cases[0]["erle_db"],
        "dt_near_kept_db": talk[0]["near_kept_db"],
        "cpu_ms_per_s": cases[0]["cpu_ms_per_s"],
        "block_wall_ms": round(per_block_ms, 3),
        "processing_delay_ms": processing_delay_ms(rate),
        "cases": cases,
        "double_talk": talk,
    }


def _print(report: dict[str, Any]) -> None:
    if not report["available"]:
        print(f"echo cancellation: not measured ({report['reason']})")
        return
    print(f"echo cancellation: {report['backend']}; speech: {report['speech']}")
    print(f"headline @ {report['rate']} Hz, {report['block_ms']} ms blocks: "
          f"ERLE {report['erle_db']} dB, double-talk near end kept {report['dt_near_kept_db']} dB, "
          f"CPU {report['cpu_ms_per_s']} ms per s of audio, {report['block_wall_ms']} ms per block, "
          f"processing delay {report['processing_delay_ms']:.1f} ms")
    print(f"{'rate':>6} {'delay':>6} {'hint':>5} {'RT60':>5} {'ERLE dB':>8} {'0-2 s dB':>9} "
          f"{'CPU ms/s':>9}")
    for c in report["cases"]:
        print(f"{c['rate']:>6} {c['delay_ms']:>6} {c['hint_ms']:>5} {c['rt60_ms']:>5} "
              f"{c['erle_db']:>8} {c['erle_first_2s_db']:>9} {c['cpu_ms_per_s']:>9}")
    print(f"{'rate':>6} {'near-echo dB':>12} {'kept dB':>8} {'out-near dB':>11}")
    for t in report["double_talk"]:
        print(f"{t['rate']:>6} {t['near_vs_echo_db']:>12} {t['near_kept_db']:>8} {t['out_vs_near_db']:>11}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.erle", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the headline case only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = measure_erle(quick=args.quick)
    except AudioError as e:
        print(f"bench.erle: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
