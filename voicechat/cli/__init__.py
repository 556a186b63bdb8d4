"""The command line: flags to settings, and the one error boundary.

The rooms: :mod:`~voicechat.cli.root` (the Typer app and ``--version``),
:mod:`~voicechat.cli.boundary` (every failure of every command ends there as one line and an exit
status; ``--debug`` shows the traceback too), :mod:`~voicechat.cli.options` (typer options and
whole command signatures generated from the settings table), :mod:`~voicechat.cli.sources` (the
``.env`` and config files, read safely), and the commands: :mod:`~voicechat.cli.talk`,
:mod:`~voicechat.cli.config_cmd` and :mod:`~voicechat.cli.commands` (devices, serve, doctor).

Heavy modules (numpy, websockets, sounddevice) are imported inside the commands so that
``voicechat --help`` stays fast and works without PortAudio. The only typer importer.
"""

from __future__ import annotations

from voicechat.cli import commands, config_cmd, talk
from voicechat.cli.config_cmd import shown as _shown
from voicechat.cli.root import Command, app
from voicechat.cli.sources import load_settings as _settings

__all__ = ["_settings", "_shown", "app", "main"]

# In the order `voicechat --help` lists them.
app.command(name="talk", epilog=talk.TALK_EXAMPLES, cls=Command)(talk.command)
app.add_typer(config_cmd.config_app)
app.command(epilog=commands.DEVICES_EXAMPLES, cls=Command)(commands.devices)
app.command(epilog=commands.SERVE_EXAMPLES, cls=Command)(commands.serve)
app.command(name="doctor", epilog=commands.DOCTOR_EXAMPLES, cls=Command)(commands.doctor_command)


def main() -> None:
    app()
