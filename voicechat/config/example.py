"""``config.example.toml``, generated from the settings table.

``voicechat config init`` writes :data:`EXAMPLE_CONFIG` as a starter file, and the repository's
``config.example.toml`` is the same text (a test keeps them equal; regenerate the file with
``voicechat config init --config config.example.toml --force``). Each key is a commented line
with its default (or the row's example value) and the row's note, grouped under the row's
group; only the prose around the keys (where the file lives, profiles) is written here.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from voicechat.config.settings import Settings
from voicechat.config.spec import Group, Spec, spec_of

_HEADER = """\
voicechat configuration.

Where it lives: ~/.config/voicechat/config.toml ($XDG_CONFIG_HOME/voicechat/config.toml), or
$VOICECHAT_CONFIG_DIR/config.toml; `voicechat talk --config FILE` reads FILE instead.
`voicechat config init` writes this starter file, `voicechat config path` prints where it is,
and `voicechat config show` prints every effective setting and where it came from.

Precedence, lowest first: built-in defaults < this file's top level < the chosen profile
< .env < environment < flags. Each key is also the `voicechat talk` flag of the same name
(underscores become dashes) and the environment variable VOICECHAT_<KEY>, for example
VOICECHAT_SPEED=1.2 (base_url is OPENAI_BASE_URL). The commented lines show the default, or
an example where there is none; uncomment one to change it.

The API key never goes here: set OPENAI_API_KEY (or, for Azure, AZURE_OPENAI_API_KEY) in the
environment or in a .env file that only you can read (chmod 600 .env)."""

_PROFILE = Group(None, "profile")
_DEFAULT_PROFILE = ('default_profile = "work"', "the [profile.NAME] used when neither --profile nor\n"
                    "VOICECHAT_PROFILE names one (profiles are at the end)")

_PROFILES = Group(None, "profiles", intro="""\
A profile takes the same keys as the top level; its values replace the top level's, and
.env, environment and flags still win. Pick one with `voicechat talk --profile NAME`,
VOICECHAT_PROFILE=NAME, or default_profile above.""", outro="""\

[profile.work]
voice = "cedar"
vad = "semantic"
eagerness = "low"
transcript = "work.md"

[profile.pirate]
instructions_file = "pirate.txt"
speed = 1.2

[profile.azure]
azure = true
base_url = "https://my-resource.openai.azure.com"   # or AZURE_OPENAI_ENDPOINT
model = "my-realtime-deployment"

[prices."my-realtime-deployment"]   # USD per million tokens, for --max-cost and the panel
text_in = 4.0
text_cached = 0.4
text_out = 24.0
audio_in = 32.0
audio_cached = 0.4
audio_out = 64.0""")

_WIDTH = 93  # of a section's title line
_NOTE_COLUMN = 32  # where a key's note starts


def _comment(text: str, blank: str = "#") -> list[str]:
    return [f"# {line}" if line else blank for line in text.split("\n")]


def _title(title: str) -> str:
    head = f"# --- {title} "
    return head + "-" * (_WIDTH - len(head))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    return repr(value)


def _key_lines(assignment: str, note: str | None) -> list[str]:
    """``# key = value      # note``, the note's further lines under its first."""
    line = f"# {assignment}"
    if not note:
        return [line]
    first, *rest = note.split("\n")
    pad = line.ljust(_NOTE_COLUMN) if len(line) < _NOTE_COLUMN - 1 else line + "   "
    return [f"{pad}# {first}", *(f"#{'':{_NOTE_COLUMN - 1}}# {more}" for more in rest)]


def _row_lines(name: str, spec: Spec, default: Any) -> list[str]:
    value = default if spec.example is None else spec.example
    assert value is not None, f"{name}: a row shown in the example needs a default or an example"
    return _key_lines(f"{name} = {_toml(value)}", spec.text(spec.note))


def _section(group: Group, body: list[str]) -> list[str]:
    lines = [_title(group.title)]
    if group.intro:
        lines += _comment(group.intro)
    lines += body
    if group.outro:
        lines += _comment(group.outro)
    return [*lines, ""]


def example_config() -> str:
    """The commented starter config file, every key with its default (or an example) and note."""
    groups: dict[Group, list[str]] = {}
    for f in fields(Settings):
        spec = spec_of(f)
        if spec is None or not spec.file:
            continue
        body = groups.setdefault(spec.group, [])
        if spec.in_example:
            body += _row_lines(f.name, spec, f.default)
    lines = [*_comment(_HEADER), "", *_section(_PROFILE, _key_lines(*_DEFAULT_PROFILE))]
    for group, body in groups.items():
        lines += _section(group, body)
    lines += [_title(_PROFILES.title), *_comment(_PROFILES.intro), *_comment(_PROFILES.outro, blank="")]
    return "\n".join(lines) + "\n"


EXAMPLE_CONFIG = example_config()
