"""Settings resolution: precedence, profiles, config-file parsing, value checks, Azure, the example file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from voicechat import config
from voicechat.config import ConfigFile, Settings, parse_config_file, resolve
from voicechat.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[2]
CFG = Path("/home/u/.config/voicechat/config.toml")

# ---- precedence ---------------------------------------------------------------------------

# One value per source for each key, as that source spells it, and the setting it becomes.
VALUES: dict[str, dict[str, tuple[Any, Any]]] = {
    "voice": {"file": ("alloy", "alloy"), "profile": ("ash", "ash"), "dotenv": ("ballad", "ballad"),
              "env": ("coral", "coral"), "flag": ("cedar", "cedar")},
    "speed": {"file": (0.5, 0.5), "profile": (0.75, 0.75), "dotenv": ("1.1", 1.1), "env": ("1.25", 1.25),
              "flag": (1.5, 1.5)},
    "interrupt": {"file": (False, False), "profile": (True, True), "dotenv": ("false", False),
                  "env": ("yes", True), "flag": (False, False)},
    "max_output_tokens": {"file": (100, 100), "profile": ("inf", "inf"), "dotenv": ("300", 300),
                          "env": ("INF", "inf"), "flag": ("500", 500)},
    "silence_duration_ms": {"file": (100, 100), "profile": (200, 200), "dotenv": ("300", 300),
                            "env": ("400", 400), "flag": (500, 500)},
    "base_url": {"file": ("https://a.example/v1", "https://a.example/v1"),
                 "profile": ("https://b.example/v1", "https://b.example/v1"),
                 "dotenv": ("https://c.example/v1", "https://c.example/v1"),
                 "env": ("https://d.example/v1", "https://d.example/v1"),
                 "flag": ("https://e.example/v1", "https://e.example/v1")},
}
ENV_NAME = {key: var for var, key in config.ENV_KEYS.items()}
ORDER = ("file", "profile", "dotenv", "env", "flag")
COMBOS = [(), ("file",), ("profile",), ("file", "profile"), ("file", "dotenv"), ("profile", "dotenv"),
          ("dotenv", "env"), ("file", "env"), ("file", "profile", "dotenv", "env"), ("env", "flag"),
          ("file", "flag"), ("file", "profile", "dotenv", "env", "flag")]


def source_name(layer: str, key: str) -> str:
    return {"file": "config file", "profile": "profile p", "dotenv": f".env ({ENV_NAME[key]})",
            "env": f"environment ({ENV_NAME[key]})", "flag": "flag"}[layer]


@pytest.mark.parametrize("key", list(VALUES))
@pytest.mark.parametrize("layers", COMBOS, ids=lambda c: "+".join(c) or "default")
def test_precedence_table(key: str, layers: tuple[str, ...]) -> None:
    given = {layer: VALUES[key][layer][0] for layer in layers}
    cfg = ConfigFile(path=CFG, values={key: given["file"]} if "file" in given else {},
                     profiles={"p": {key: given["profile"]} if "profile" in given else {}}, default_profile="p")
    settings = resolve(
        flags={key: given["flag"]} if "flag" in given else {},
        environ={ENV_NAME[key]: given["env"]} if "env" in given else {},
        dotenv={ENV_NAME[key]: given["dotenv"]} if "dotenv" in given else {},
        config_file=cfg,
    )
    winner = max(layers, key=ORDER.index, default=None)
    expected = VALUES[key][winner][1] if winner else getattr(Settings(), key)
    assert getattr(settings, key) == expected
    assert settings.source(key) == (source_name(winner, key) if winner else "default")


def test_resolve_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICECHAT_VOICE", "ash")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-real-environment")
    settings = resolve(flags={}, environ={})
    assert settings.voice == "marin" and settings.api_key is None


def test_flags_of_none_do_not_override() -> None:
    settings = resolve(flags={"voice": None, "speed": None}, environ={"VOICECHAT_VOICE": "sage"})
    assert settings.voice == "sage" and settings.speed is None


# ---- profiles -----------------------------------------------------------------------------

PROFILED = """\
voice = "alloy"
speed = 1.1
default_profile = "calm"

[profile.calm]
speed = 0.8

[profile.work]
voice = "cedar"
vad = "semantic"
eagerness = "low"
"""


def test_profile_layers_over_the_top_level() -> None:
    cfg = parse_config_file(CFG, PROFILED)
    s = resolve(flags={"profile": "work"}, environ={}, config_file=cfg)
    assert (s.voice, s.speed, s.vad, s.eagerness) == ("cedar", 1.1, "semantic", "low")
    assert s.profile == "work" and s.source("profile") == "flag"
    assert s.source("voice") == "profile work" and s.source("speed") == "config file"


def test_profile_choice_flag_beats_environment_beats_dotenv_beats_default() -> None:
    cfg = parse_config_file(CFG, PROFILED)
    assert resolve(flags={}, environ={}, config_file=cfg).profile == "calm"
    assert resolve(flags={}, environ={}, dotenv={"VOICECHAT_PROFILE": "work"}, config_file=cfg).profile == "work"
    both = resolve(flags={}, environ={"VOICECHAT_PROFILE": "calm"}, dotenv={"VOICECHAT_PROFILE": "work"},
                   config_file=cfg)
    assert both.profile == "calm" and both.source("profile") == "environment (VOICECHAT_PROFILE)"
    assert resolve(flags={"profile": "work"}, environ={"VOICECHAT_PROFILE": "calm"}, config_file=cfg).profile == "work"


def test_unknown_profile_lists_the_available_ones() -> None:
    cfg = parse_config_file(CFG, PROFILED)
    with pytest.raises(UsageError, match=r"no profile 'home' .*available: calm, work"):
        resolve(flags={"profile": "home"}, environ={}, config_file=cfg)
    with pytest.raises(ConfigError, match=r"VOICECHAT_PROFILE in the environment.*available: calm, work"):
        resolve(flags={}, environ={"VOICECHAT_PROFILE": "home"}, config_file=cfg)
    with pytest.raises(ConfigError, match=r"default_profile in .*config.toml.*no profile 'nope'"):
        resolve(flags={}, environ={}, config_file=parse_config_file(CFG, 'default_profile = "nope"\n'))
    with pytest.raises(UsageError, match="there is no config file"):
        resolve(flags={"profile": "work"}, environ={})


def test_a_profile_takes_every_top_level_key() -> None:
    lines = "\n".join(f"{key} = {value}" for key, value in EXAMPLE_VALUES.items())
    cfg = parse_config_file(CFG, f"[profile.all]\n{lines}\n")
    assert set(cfg.profiles["all"]) == set(config.FILE_KEYS)


# ---- the config file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("voice = ", "not valid TOML"),
        ("vad_treshold = 0.4", r"unknown setting 'vad_treshold'"),
        ('api_key = "sk-x"', "keep the API key in OPENAI_API_KEY"),
        ('[profile.x]\napi_key = "sk-x"', r"\[profile.x\] keep the API key"),
        ("[profile.x]\nvoicee = 'ash'", r"\[profile.x\] unknown setting 'voicee'"),
        ('profile = "work"', "profiles are tables"),
        ("default_profile = 3", "default_profile must be a profile name"),
    ],
)
def test_bad_config_files_name_the_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config_file(CFG, text)
    assert str(CFG) in info.value.message


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_file(CFG, "vad_treshold = 0.4")
    assert info.value.hint == "did you mean vad_threshold?"


def test_paths_in_the_file() -> None:
    cfg = parse_config_file(CFG, 'instructions_file = "pirate.txt"\ntranscript = "~/chat.md"\n'
                                 '[profile.p]\ninstructions_file = "/abs/x.txt"\n')
    assert cfg.values["instructions_file"] == CFG.parent / "pirate.txt"  # next to the config file
    assert cfg.values["transcript"] == Path("~/chat.md").expanduser()
    assert cfg.profiles["p"]["instructions_file"] == Path("/abs/x.txt")


def test_secret_looking_values_are_noticed() -> None:
    # No key of today's file holds a secret; structured keys (tools) may, at any depth.
    assert not parse_config_file(CFG, PROFILED).has_secrets
    assert config._has_secrets({"tools": [{"name": "x", "env": {"API_TOKEN": "abc"}}]})
    assert not config._has_secrets({"tools": [{"name": "key_lookup", "env": {"API_TOKEN": ""}}]})


# ---- values: checked, and reported by where they came from --------------------------------


@pytest.mark.parametrize(
    "kwargs, kind, message",
    [
        ({"flags": {"speed": 2.0}}, UsageError, "--speed must be between 0.25 and 1.5, not 2.0"),
        ({"flags": {"idle_timeout_ms": 1000}}, UsageError, "--idle-timeout-ms must be between 5000 and 30000"),
        ({"flags": {"max_output_tokens": "0"}}, UsageError, '--max-output-tokens must be between 1 and 32768 or "inf"'),
        ({"flags": {"max_output_tokens": "lots"}}, UsageError, '--max-output-tokens must be a whole number or "inf"'),
        ({"flags": {"vad": "semantic", "eagerness": "eager"}}, UsageError,
         "--eagerness must be one of low, medium, high, auto"),
        ({"flags": {"noise_reduction": "studio"}}, UsageError, "--noise-reduction must be one of near, far, off"),
        ({"flags": {"language": "english"}}, UsageError, "--language must be a two-letter ISO-639-1 code"),
        ({"file_values": {"speed": 3}}, ConfigError, "speed in the config file must be between 0.25 and 1.5"),
        ({"file_values": {"speed": "fast"}}, ConfigError, "speed in the config file must be a number, not 'fast'"),
        ({"file_values": {"interrupt": "no"}}, ConfigError, "interrupt in the config file must be true or false"),
        ({"config_file": ConfigFile(CFG, {}, {"p": {"language": "xx-yy"}}, "p")}, ConfigError,
         rf"language in \[profile.p\] of {CFG} must be a two-letter"),
        ({"environ": {"VOICECHAT_SPEED": "fast"}}, ConfigError, "VOICECHAT_SPEED in the environment must be a number"),
        ({"environ": {"VOICECHAT_IDLE_TIMEOUT_MS": "99"}}, ConfigError,
         "VOICECHAT_IDLE_TIMEOUT_MS in the environment must be between 5000 and 30000"),
        ({"dotenv": {"VOICECHAT_INTERRUPT": "maybe"}}, ConfigError, "VOICECHAT_INTERRUPT in .env must be true or false"),
        ({"dotenv": {"VOICECHAT_EAGERNESS": "eager"}}, ConfigError, "VOICECHAT_EAGERNESS in .env must be one of"),
    ],
)
def test_bad_values_name_their_source(kwargs: dict, kind: type, message: str) -> None:
    kwargs = {"flags": {}, "environ": {}, **kwargs}
    with pytest.raises(kind, match=message) as info:
        resolve(**kwargs)
    assert type(info.value) is kind


def test_normalised_values() -> None:
    s = resolve(flags={"language": "DE", "noise_reduction": "far_field"}, environ={})
    assert (s.language, s.noise_reduction) == ("de", "far")


# ---- settings that exclude or need each other ---------------------------------------------


def test_instructions_and_file_at_one_level_exclude_each_other() -> None:
    with pytest.raises(UsageError, match="--instructions and --instructions-file exclude each other"):
        resolve(flags={"instructions": "x", "instructions_file": Path("p.txt")}, environ={})
    with pytest.raises(ConfigError, match=r"instructions in .* and instructions_file in"):
        resolve(flags={}, environ={}, file_values={"instructions": "x", "instructions_file": Path("p.txt")})


def test_the_higher_of_instructions_and_file_wins() -> None:
    s = resolve(flags={"instructions": "from the flag"}, environ={}, file_values={"instructions_file": Path("p.txt")})
    assert (s.instructions, s.instructions_file) == ("from the flag", None)
    s = resolve(flags={"instructions_file": Path("p.txt")}, environ={"VOICECHAT_INSTRUCTIONS": "env"})
    assert (s.instructions, s.instructions_file) == (None, Path("p.txt"))


def test_load_instructions_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Talk like a pirate.\n")
    s = resolve(flags={"instructions_file": tmp_path / "p.txt"}, environ={})
    loaded = config.load_instructions(s, lambda p: p.read_text())
    assert loaded.instructions == "Talk like a pirate." and loaded.source("instructions") == "flag"
    assert loaded.session_config().to_wire()["instructions"] == "Talk like a pirate."


def test_load_instructions_errors_name_the_source(tmp_path: Path) -> None:
    def read(p: Path) -> str:
        return p.read_text()

    missing = resolve(flags={"instructions_file": tmp_path / "none.txt"}, environ={})
    with pytest.raises(UsageError, match=r"--instructions-file .*none.txt: no such file"):
        config.load_instructions(missing, read)
    from_file = resolve(flags={}, environ={}, config_file=ConfigFile(CFG, {"instructions_file": tmp_path}))
    with pytest.raises(ConfigError, match=r"instructions_file in .*is a directory"):
        config.load_instructions(from_file, read)


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"eagerness": "high"}, "--eagerness has no effect: it applies to --vad semantic only"),
        ({"vad": "semantic", "idle_timeout_ms": 6000}, "--idle-timeout-ms has no effect: it applies to --vad server"),
        ({"vad": "none", "interrupt": False}, "--no-interrupt has no effect"),
        ({"vad": "none", "auto_response": False}, "--no-auto-response has no effect"),
        ({"transcribe": False, "language": "de"}, "--language has no effect: input transcription is off"),
        ({"transcribe": False, "transcribe_model": "whisper-1"}, "--transcribe-model has no effect"),
        ({"text_only": True, "speed": 1.2}, "--speed has no effect: the assistant answers in text only"),
    ],
)
def test_a_flag_without_effect_is_an_error(flags: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(flags=flags, environ={})


def test_a_config_value_without_effect_is_kept_as_unused() -> None:
    s = resolve(flags={"vad": "server"}, environ={}, file_values={"eagerness": "low", "idle_timeout_ms": 8000})
    assert s.eagerness == "low" and set(config.unused(s)) == {"eagerness"}
    assert "turn_detection" in s.session_config().to_wire()["audio"]["input"]
    wire = s.session_config().to_wire()["audio"]["input"]["turn_detection"]
    assert wire["type"] == "server_vad" and wire["idle_timeout_ms"] == 8000 and "eagerness" not in wire


# ---- the wire shape of every session setting ----------------------------------------------


def wire(**flags: Any) -> dict[str, Any]:
    return resolve(flags=flags, environ={}).session_config().to_wire()


def test_session_config_carries_every_setting() -> None:
    w = wire(speed=1.2, max_output_tokens="inf", noise_reduction="near", language="fr",
             transcribe_model="gpt-4o-transcribe", interrupt=False, auto_response=False, idle_timeout_ms=7000)
    audio_in = w["audio"]["input"]
    assert w["audio"]["output"]["speed"] == 1.2 and w["max_output_tokens"] == "inf"
    assert audio_in["noise_reduction"] == {"type": "near_field"}
    assert audio_in["transcription"] == {"model": "gpt-4o-transcribe", "language": "fr"}
    td = audio_in["turn_detection"]
    assert (td["create_response"], td["interrupt_response"], td["idle_timeout_ms"]) == (False, False, 7000)
    semantic = wire(vad="semantic", eagerness="high")["audio"]["input"]["turn_detection"]
    assert semantic == {"type": "semantic_vad", "eagerness": "high", "create_response": True,
                        "interrupt_response": True}
    assert wire(noise_reduction="far")["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert wire(noise_reduction="off")["audio"]["input"]["noise_reduction"] is None
    assert wire(transcribe=False)["audio"]["input"]["transcription"] is None
    assert wire(max_output_tokens="250")["max_output_tokens"] == 250


# ---- Azure --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://res.openai.azure.com", "https://res.cognitiveservices.azure.com/openai/v1"])
def test_azure_is_detected_from_the_host(url: str) -> None:
    s = resolve(flags={"base_url": url}, environ={"OPENAI_API_KEY": "sk-openai", "AZURE_OPENAI_API_KEY": "az-key"})
    assert s.azure and s.source("azure") == "detected from base_url"
    assert s.api_key == "az-key" and s.source("api_key") == "environment (AZURE_OPENAI_API_KEY)"


def test_azure_key_falls_back_to_openai_key() -> None:
    s = resolve(flags={"azure": True, "base_url": "https://res.openai.azure.com"}, environ={"OPENAI_API_KEY": "sk-o"})
    assert s.api_key == "sk-o"


def test_azure_variables_are_ignored_without_azure() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "AZURE_OPENAI_API_KEY": "az", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"}
    s = resolve(flags={}, environ=env)
    assert (s.azure, s.api_key, s.base_url) == (False, "sk-o", "https://api.openai.com/v1")


def test_azure_endpoint_and_key_from_the_environment() -> None:
    env = {"OPENAI_BASE_URL": "https://proxy.example/v1", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com/",
           "AZURE_OPENAI_API_KEY": "az"}
    s = resolve(flags={"azure": True}, environ=env)
    assert (s.base_url, s.api_key) == ("https://r.openai.azure.com/", "az")
    assert s.source("base_url") == "environment (AZURE_OPENAI_ENDPOINT)"
    # .env's Azure key replaces the environment's generic one: the Azure name is the specific one.
    s = resolve(flags={"azure": True}, environ={"OPENAI_API_KEY": "sk-o", **env}, dotenv={})
    assert s.api_key == "az"


def test_azure_off_overrides_detection_and_azure_needs_an_endpoint() -> None:
    assert not resolve(flags={"azure": False, "base_url": "https://r.openai.azure.com"}, environ={}).azure
    with pytest.raises(UsageError, match="--azure needs your Azure resource endpoint"):
        resolve(flags={"azure": True}, environ={})
    with pytest.raises(ConfigError, match="azure in the config file needs"):
        resolve(flags={}, environ={}, file_values={"azure": True})


# ---- the example file and the starter config ----------------------------------------------

EXAMPLE = ROOT / "config.example.toml"
SETTING_LINE = re.compile(r"^# ?((?:[a-z_]+ = )|\[)")  # "# key = …" and "# [table]" lines
# A valid value for every key, for the all-keys profile test above: the starter config's own
# (each setting row's example, so a new setting needs no line here), and for the arrays of
# tables, which the starter shows as commented tables, one each.
EXAMPLE_VALUES = {
    **{key: value.strip() for key, value in reversed(re.findall(r"^# ?([a-z_]+) = (.*?)(?:\s+#.*)?$",
                                                                config.EXAMPLE_CONFIG, re.M))
       if key in config.FILE_KEYS},  # reversed: a key's first line wins (later ones are profiles')
    "tools": '[{ name = "t", description = "x", command = ["/bin/true"] }]',
    "mcp": '[{ label = "m", url = "https://m.example/mcp" }]',
    "prices": '{ m = { text_in = 1, text_cached = 0, text_out = 1, audio_in = 1, audio_cached = 0, audio_out = 1 } }',
}


def uncommented(text: str) -> str:
    return "\n".join(SETTING_LINE.sub(r"\1", line) for line in text.splitlines()) + "\n"


def test_the_example_file_is_the_starter_config() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == config.EXAMPLE_CONFIG, (
        "config.example.toml drifted from voicechat.config.EXAMPLE_CONFIG; regenerate it with "
        "`voicechat config init --config config.example.toml --force`"
    )


def test_the_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^# ?([a-z_]+) = ", text, re.M))
    documented |= set(re.findall(r"^# ?\[\[([a-z_]+)\]\]$", text, re.M))  # arrays of tables: [[tools]]
    documented |= set(re.findall(r"^# ?\[([a-z_]+)\.\"", text, re.M)) - {"profile"}  # [prices."MODEL"]
    assert set(config.FILE_KEYS) <= documented, set(config.FILE_KEYS) - documented
    assert "default_profile" in documented and "[profile." in text
    assert set(EXAMPLE_VALUES) == set(config.FILE_KEYS)


def test_the_example_parses_as_is_and_uncommented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert parse_config_file(EXAMPLE, text) == ConfigFile(EXAMPLE)  # all comments: changes nothing
    cfg = parse_config_file(EXAMPLE, uncommented(text))
    assert set(cfg.values) | {"instructions_file"} >= set(config.FILE_KEYS)
    assert cfg.default_profile in cfg.profiles and len(cfg.profiles) >= 2
    environ = {"DOCS_TOKEN": "example-header-value"}  # the [[mcp]] example's header reads it
    for name in cfg.profiles:
        s = resolve(flags={"profile": name}, environ=environ, config_file=cfg)
        assert s.profile == name
    assert resolve(flags={}, environ=environ, config_file=cfg).profile == cfg.default_profile


def test_file_keys_exclude_per_run_switches_and_the_secret() -> None:
    assert not {"api_key", "input_file", "output_file", "fast", "debug", "profile"} & set(config.FILE_KEYS)
    for key in config.FILE_KEYS:  # every scalar key has its VOICECHAT_<KEY>
        if not isinstance(getattr(Settings(), key), tuple | list | dict):
            assert key in config.ENV_KEYS.values(), key


@pytest.mark.parametrize("key, shown", [(None, "(not set)"), ("sk-proj-abcdefghijklmnop1234", "sk-…1234"),
                                        ("0123456789abcdef0123456789abcdef", "…cdef"), ("short", "(set, too short to show)")])
def test_mask_key(key: str | None, shown: str) -> None:
    assert config.mask_key(key) == shown


def test_config_path_locations(tmp_path: Path) -> None:
    home = Path("/home/u")
    assert config.config_path({}, home) == home / ".config/voicechat/config.toml"
    assert config.config_path({"XDG_CONFIG_HOME": "/x"}, home) == Path("/x/voicechat/config.toml")
    assert config.config_path({"VOICECHAT_CONFIG_DIR": str(tmp_path), "XDG_CONFIG_HOME": "/x"}, home) == (
        tmp_path / "config.toml")
