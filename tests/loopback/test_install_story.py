"""The install story a fresh clone tells (issue 14, item 5): the README's first screen, pipx and
uv with the extras, links that exist in a clone, and a ``make demo`` that installs no test tools."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.loopback

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_first_screen_has_the_demo_and_the_tests() -> None:
    first_screen = "\n".join(README.splitlines()[:24])
    commands = re.search(r"```sh\n(.*?)```", first_screen, re.S)
    assert commands is not None, first_screen
    lines = [line.split("#")[0].strip() for line in commands.group(1).splitlines()]
    assert lines == ["make demo", "make test"]
    assert "--backend local" in first_screen and "no sound card" in first_screen


def test_pipx_and_uv_installs_with_the_extras_explained() -> None:
    assert "pipx install '.[asr]'" in README and "uv tool install '.[asr]'" in README
    for extra in ("`asr`", "`aec`", "`test`"):
        assert re.search(rf"^\| {re.escape(extra)} \|", README, re.M), extra
    assert "pocketsphinx" in README and "echo cancellation" in README


def test_every_relative_link_exists_in_the_clone() -> None:
    links = re.findall(r"\]\(([^)#][^)]*)\)", README)
    relative = [link for link in links if "://" not in link]
    assert "docs/architecture.md" in relative
    missing = [link for link in relative if not (ROOT / link).resolve().is_relative_to(ROOT)
               or not (ROOT / link).exists()]
    assert not missing, missing
    assert "../shared" not in README


def _dry_run(tmp_path: Path, target: str) -> list[str]:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_demo_installs_no_test_tools(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("needs make")
    demo = _dry_run(tmp_path, "demo")
    assert len(demo) == 1 and "'.[asr]'" in demo[0], demo
    test = _dry_run(tmp_path, "install")
    assert len(test) == 1 and "test" in test[0], test
