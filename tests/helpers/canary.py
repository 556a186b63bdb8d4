"""The canary sweep: run voicechat with fake credentials, then look for them in every output.

A canary is a unique fake secret with a fixed, rare tail (`canary`). `leaks` finds it in a
text or file in every form it could be written in: as it is, JSON-escaped (both ways),
percent-encoded (each way), as Python shows it (repr), base64 at each of the three byte
alignments (standard and URL-safe), and — in text outputs — any trailing fragment longer than
four characters (the last four are what ``config show`` and ``doctor`` show on purpose).
These forms are computed here, independently of ``voicechat.redact``.

`voicechat` runs the real CLI (``python -m voicechat``, `tests.helpers.cli.run_voicechat`) as a
subprocess in a directory of its own, with a clean environment; servers are local and loopback only.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

from tests.helpers.cli import Run, clean_env, run_voicechat

FRAGMENT = 5  # trailing fragments this long (or longer) are leaks; the last 4 may be shown
TEXT_SUFFIXES = {".md", ".txt", ".jsonl", ".json", ".log", ".toml", ""}


def canary(kind: str = "key") -> str:
    """A fresh fake secret. ``key`` holds characters every encoding changes (``/"\\+%=``);
    ``password`` is URL-safe (it goes into ``user:password@``). Tails differ per kind."""
    middle = uuid.uuid4().hex[:20]
    if kind == "key":
        return f'sk-canary{middle}/"\\+%=Qq9QxW'
    if kind == "azure":
        return f"azcanary{middle}Zr7Jm"
    if kind == "password":
        return f"pwcanary{middle}Vk3Ty"
    raise ValueError(kind)


def _base64_cores(data: bytes) -> list[str]:
    found = []
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + data).decode()
            first_whole_block = -(-shift // 3) * 4
            found.append(encoded[first_whole_block : (shift + len(data)) // 3 * 4])
    return found


def forms(secret: str) -> dict[str, str]:
    """Every encoded form of ``secret`` that would still give it away, by name."""
    data = secret.encode()
    found = {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "percent": quote(secret, safe=""),
        "percent-path": quote(secret),
        "percent-plus": quote_plus(secret),
        "repr": repr(secret)[1:-1],
        "bytes-repr": repr(data)[2:-1],
    }
    for i, core in enumerate(_base64_cores(data)):
        found[f"base64-{i}"] = core
    return found


def leaks(secret: str, blob: str | bytes, *, text: bool = True) -> list[str]:
    """The forms of ``secret`` found in ``blob`` (``text``: trailing fragments count too)."""
    raw = blob if isinstance(blob, bytes) else blob.encode("utf-8", "surrogateescape")
    found = [name for name, form in forms(secret).items() if form.encode() in raw]
    if text and secret[-FRAGMENT:].encode() in raw:
        found.append(f"trailing fragment ({FRAGMENT}+ characters)")
    return found


@dataclass
class Outputs:
    """What one run (or several) wrote: named texts, plus every file under ``root``."""

    texts: dict[str, str] = field(default_factory=dict)
    root: Path | None = None

    def add(self, name: str, text: str) -> None:
        self.texts[name] = text

    def files(self) -> list[Path]:
        if self.root is None:
            return []
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def assert_no_leak(secrets: dict[str, str], outputs: Outputs) -> int:
    """No secret in any output, in any form; returns how many outputs were looked at."""
    problems = []
    looked = 0
    for where, text in outputs.texts.items():
        looked += 1
        for name, secret in secrets.items():
            problems += [f"{name} as {form} in {where}" for form in leaks(secret, text)]
    for path in outputs.files():
        looked += 1
        data = path.read_bytes()
        is_text = path.suffix.lower() in TEXT_SUFFIXES
        for name, secret in secrets.items():
            problems += [f"{name} as {form} in {path.name}" for form in leaks(secret, data, text=is_text)]
    assert not problems, "leaked: " + "; ".join(problems)
    return looked


async def voicechat(cwd: Path, *args: str, env: dict[str, str]) -> Run:
    """``voicechat ARGS`` in ``cwd`` with exactly ``env`` (`run_voicechat`)."""
    return await run_voicechat(cwd, *args, env=env)


def sweep_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """`clean_env` (no config file, no credentials of the caller) with ``values`` set."""
    return clean_env(tmp_path, **values)
