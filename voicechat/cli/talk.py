"""``voicechat talk``: its flags come from the settings table; it resolves them and runs the app.

The command's signature is generated (see :mod:`voicechat.cli.options`): every row of the
table with help is a flag, in table order, in its group's help panel. The body resolves the
flags with the config file, ``.env`` and the environment into one ``Settings`` and hands it to
``voicechat.app.talk``; errors end at the boundary (:mod:`voicechat.cli.boundary`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from voicechat.cli import sources
from voicechat.cli.boundary import debug_logging, guarded, sigterm_interrupts
from voicechat.cli.options import flags_of, table_command

TALK_EXAMPLES = """
Examples:

  voicechat talk --backend local --input-file question.wav --output-file reply.wav

  voicechat talk --voice cedar --vad semantic --eagerness low --transcript chat.md

  voicechat talk --instructions-file pirate.txt --speed 1.2 --max-output-tokens 800

  voicechat talk --idle-timeout-ms 8000 --noise-reduction far --language de

  voicechat talk --no-auto-response --no-interrupt --transcribe-model gpt-4o-transcribe

  voicechat talk --profile work --config ~/voicechat-work.toml

  voicechat talk --azure --base-url https://RESOURCE.openai.azure.com --model DEPLOYMENT

  voicechat talk --base-url http://127.0.0.1:8765/v1 --input-file q.wav > chat.txt

Every setting can also come from the config file (voicechat config show lists them and where
each came from) or from VOICECHAT_<SETTING>, e.g. VOICECHAT_SPEED=1.2. Precedence: defaults <
config file < profile < .env < environment < flags.
"""


def talk(**given: Any) -> None:
    """Hold a live voice conversation (transcript on stdout, status on stderr)."""
    import asyncio

    debug_logging(bool(given["debug"]))
    config_file = given.pop("config_file")
    with sigterm_interrupts():
        settings = sources.load_settings(flags_of(given), config_file)
        from voicechat.app import make_output, reliability_from_env
        from voicechat.app import talk as run_talk
        from voicechat.app.output import ForeignStderr

        reliability = reliability_from_env(os.environ)  # VOICECHAT_RECYCLE_MARGIN_S: a test knob
        # Real devices: what libasound writes to fd 2 must not reach the panel or the status log.
        foreign = ForeignStderr() if settings.input_file is None else None
        try:
            with foreign if foreign is not None else contextlib.nullcontext():
                out = make_output(settings, sys.stdout, sys.stderr)
                asyncio.run(run_talk(settings, out, reliability=reliability,
                                     profiles=_profiles(flags_of(given), config_file, settings.profile)))
        finally:  # fd 2 is the terminal again; the reason the conversation ended comes after this
            if foreign is not None and (line := foreign.summary()) is not None and not settings.quiet:
                print(line, file=sys.stderr)


def _profiles(flags: dict[str, Any], config_file: Any, active: str | None) -> Any:
    """``/profile``: the config file's profile names, read afresh, and the settings ``talk`` would
    resolve with ``--profile NAME`` and the same flags and environment."""
    from voicechat.app.keyboard import Profiles

    def names() -> tuple[str, ...]:
        found = sources.read_config_file(config_file, warn=False)
        return tuple(found.profiles) if found is not None else ()

    return Profiles(names, lambda name: sources.load_settings({**flags, "profile": name}, config_file), active)


command = guarded()(table_command(talk, keep=lambda spec: True))
"""``talk`` as typer registers it: every row with help is a flag."""
