"""voicechat config show / path / init, permission warnings, talk --help and shell completion."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicechat import config
from voicechat.cli import app

CANARY = "sk-proj-canary-DO-NOT-PRINT-9f8e7d6c5b4aWXYZ"


@pytest.fixture
def cfg_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """VOICECHAT_CONFIG_DIR in tmp_path, a working directory without .env, no inherited settings."""
    for var in [*config.ENV_KEYS, *config.AZURE_ENV_KEYS, "VOICECHAT_PROFILE", "XDG_CONFIG_HOME"]:
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    directory = tmp_path / "cfg"
    monkeypatch.setenv("VOICECHAT_CONFIG_DIR", str(directory))
    return directory


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env)


def rows(output: str) -> dict[str, tuple[str, str]]:
    """``config show`` lines as key -> (value, source)."""
    found = {}
    for line in output.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in (*config.FILE_KEYS, "profile", "api_key"):
            value, _, source = parts[1].rpartition("  ")
            found[parts[0]] = (value.strip(), source.strip())
    return found


# ---- config path ----------------------------------------------------------------------------


def test_path_follows_config_dir_xdg_and_the_flag(cfg_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke("config", "path")
    assert result.exit_code == 0 and result.stdout.strip() == str(cfg_dir / "config.toml")
    assert "config init" in result.stderr  # there is no file yet
    assert invoke("config", "path", "--config", str(tmp_path / "x.toml")).stdout.strip() == str(tmp_path / "x.toml")
    monkeypatch.delenv("VOICECHAT_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert invoke("config", "path").stdout.strip() == str(tmp_path / "xdg" / "voicechat" / "config.toml")


# ---- config init ----------------------------------------------------------------------------


def test_init_writes_a_private_commented_starter_and_refuses_to_overwrite(cfg_dir: Path) -> None:
    result = invoke("config", "init")
    path = cfg_dir / "config.toml"
    assert result.exit_code == 0 and str(path) in result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg_dir.stat().st_mode) == 0o700  # created, with its parents
    assert path.read_text(encoding="utf-8") == config.EXAMPLE_CONFIG
    assert config.parse_config_file(path, path.read_text()) == config.ConfigFile(path)  # comments only
    path.write_text('voice = "ash"\n')
    again = invoke("config", "init")
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output
    assert path.read_text() == 'voice = "ash"\n'
    path.chmod(0o644)
    forced = invoke("config", "init", "--force")
    assert forced.exit_code == 0 and path.read_text(encoding="utf-8") == config.EXAMPLE_CONFIG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_init_with_config_flag_creates_missing_directories(tmp_path: Path, cfg_dir: Path) -> None:
    target = tmp_path / "a" / "b" / "voice.toml"
    assert invoke("config", "init", "--config", str(target)).exit_code == 0
    assert target.is_file() and not (cfg_dir / "config.toml").exists()


# ---- config show ----------------------------------------------------------------------------

FILE = """\
voice = "alloy"
speed = 1.1
eagerness = "low"
default_profile = "work"

[profile.work]
voice = "cedar"
silence_duration_ms = 700

[profile.home]
voice = "sage"
"""


def test_show_names_every_source_and_masks_the_key(cfg_dir: Path) -> None:
    cfg_dir.mkdir()
    (cfg_dir / "config.toml").write_text(FILE)
    Path(".env").write_text(f"OPENAI_API_KEY={CANARY}\nVOICECHAT_LANGUAGE=fr\n")
    Path(".env").chmod(0o600)
    result = invoke("config", "show", env={"VOICECHAT_VAD_THRESHOLD": "0.7"})
    assert result.exit_code == 0, result.output
    shown = rows(result.stdout)
    assert set(shown) >= {*config.FILE_KEYS, "profile", "api_key"}
    assert shown["profile"] == ("work", "config file")
    assert shown["backend"] == ("openai", "default")
    assert shown["speed"] == ("1.1", "config file")
    assert shown["voice"] == ("cedar", "profile work")
    assert shown["silence_duration_ms"] == ("700", "profile work")
    assert shown["language"] == ("fr", ".env (VOICECHAT_LANGUAGE)")
    assert shown["vad_threshold"] == ("0.7", "environment (VOICECHAT_VAD_THRESHOLD)")
    assert shown["api_key"] == ("sk-…WXYZ", ".env (OPENAI_API_KEY)")
    assert "unused: it applies to --vad semantic only" in result.stdout  # eagerness with server VAD
    assert str(cfg_dir / "config.toml") in result.stdout
    assert CANARY not in result.output and CANARY[:-4] not in result.output


def test_show_takes_profile_and_config_flags(cfg_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(FILE)
    result = invoke("config", "show", "--config", str(other), "--profile", "home", env={"OPENAI_API_KEY": CANARY})
    assert result.exit_code == 0, result.output
    shown = rows(result.stdout)
    assert shown["profile"] == ("home", "flag") and shown["voice"] == ("sage", "profile home")
    assert shown["api_key"] == ("sk-…WXYZ", "environment (OPENAI_API_KEY)")
    assert CANARY not in result.output
    missing = invoke("config", "show", "--profile", "gym", "--config", str(other))
    assert missing.exit_code == 2 and "available: home, work" in missing.output


def test_show_without_anything(cfg_dir: Path) -> None:
    result = invoke("config", "show")
    assert result.exit_code == 0
    shown = rows(result.stdout)
    assert shown["api_key"] == ("(not set)", "default")
    assert all(source == "default" for _, source in shown.values())
    assert "(none)" in result.stdout.splitlines()[0]


def test_show_reports_a_bad_file_like_talk(cfg_dir: Path) -> None:
    cfg_dir.mkdir()
    (cfg_dir / "config.toml").write_text("speed = 7\n")
    result = invoke("config", "show")
    assert result.exit_code == 3 and f"speed in {cfg_dir / 'config.toml'} must be between 0.25 and 1.5" in result.output


# ---- permission warnings --------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_dotenv_with_a_key_open_to_others_is_warned_about(cfg_dir: Path) -> None:
    env = Path(".env")
    env.write_text(f"OPENAI_API_KEY={CANARY}\n")
    env.chmod(0o644)
    result = invoke("config", "show")
    assert "warning:" in result.stderr and "holds an API key" in result.stderr
    assert f"chmod 600 {env.resolve()}" in result.stderr
    env.chmod(0o600)
    assert "warning" not in invoke("config", "show").stderr
    env.write_text("VOICECHAT_VOICE=ash\n")  # no key: nothing to protect
    env.chmod(0o644)
    assert "warning" not in invoke("config", "show").stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_config_file_others_can_change_is_warned_about(cfg_dir: Path) -> None:
    cfg_dir.mkdir()
    path = cfg_dir / "config.toml"
    path.write_text('voice = "ash"\n')
    path.chmod(0o666)
    result = invoke("config", "show")
    assert "can be changed by other users" in result.stderr and f"chmod 600 {path}" in result.stderr
    path.chmod(0o644)  # readable is fine: the file holds no secret
    assert "warning" not in invoke("config", "show").stderr


# ---- help and completion --------------------------------------------------------------------

NEW_FLAGS = ["--instructions-file", "--eagerness", "--idle-timeout-ms", "--no-interrupt", "--no-auto-response",
             "--transcribe-model", "--language", "--noise-reduction", "--speed", "--max-output-tokens",
             "--profile", "--config", "--azure"]


def test_talk_help_lists_the_flags_and_examples() -> None:
    result = CliRunner().invoke(app, ["talk", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for flag in NEW_FLAGS:
        assert flag in result.stdout, flag
    assert "Examples:" in result.stdout
    for example in ("--instructions-file pirate.txt", "--eagerness low", "--idle-timeout-ms 8000",
                    "--profile work", "--azure --base-url"):
        assert example in result.stdout, example


def test_root_help_keeps_completion_and_lists_config() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "160"})
    assert "--install-completion" in result.stdout and "config" in result.stdout
    sub = CliRunner().invoke(app, ["config", "--help"], env={"COLUMNS": "160"})
    assert all(cmd in sub.stdout for cmd in ("show", "path", "init"))


def complete(words: str, env: dict[str, str]) -> list[str]:
    full = {**os.environ, **env, "_VOICECHAT_COMPLETE": "complete_bash", "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    script = Path(sys.executable).with_name("voicechat")  # completion keys on the program name
    proc = subprocess.run([str(script)], env=full, capture_output=True, text=True, timeout=60)
    return proc.stdout.split()


def test_completion_of_values_and_profiles(cfg_dir: Path) -> None:
    cfg_dir.mkdir()
    (cfg_dir / "config.toml").write_text(FILE)
    env = {"VOICECHAT_CONFIG_DIR": str(cfg_dir)}
    assert complete("voicechat talk --eagerness ", env) == ["low", "medium", "high", "auto"]
    assert complete("voicechat talk --profile ", env) == ["home", "work"]
    assert complete("voicechat talk --noise-reduction f", env) == ["far"]
