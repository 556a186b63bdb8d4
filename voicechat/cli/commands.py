"""``voicechat devices``, ``serve`` and ``doctor``: the commands that are one call each.

``devices`` lists what PortAudio sees, ``serve`` runs the local server until Ctrl-C (which ends
it quietly, status 0), and ``doctor`` resolves settings as ``talk`` does (its connection and
device flags are the table's rows marked for it) and runs the checks (exit 1 on a failure).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import Annotated, Any

import typer

from voicechat.cli import sources
from voicechat.cli.boundary import debug_logging, guarded
from voicechat.cli.options import extra_option, flags_of, table_command

DEVICES_EXAMPLES = """
Examples:

  voicechat devices

  voicechat talk --input-device 3 --output-device "USB Audio"

A device is chosen by its index or by a part of its name that no other device shares; the
host API in brackets may be part of it: --input-device "pulse (ALSA)".
"""

SERVE_EXAMPLES = """
Examples:

  voicechat serve

  voicechat talk --base-url http://127.0.0.1:8765/v1        (in another terminal; no API key needed)

  voicechat serve --port 0 --debug

It echoes each turn back, transcribes it when the asr extra is installed, and costs nothing.
"""

DOCTOR_EXAMPLES = """
Examples:

  voicechat doctor

  voicechat doctor --no-audio --base-url http://127.0.0.1:8765/v1

  voicechat doctor --input-device "USB" --seconds 5

Exit status 0 when every check passes, 1 when one fails.
"""


@guarded()
def devices(debug: Annotated[bool, typer.Option("--debug", help="Full tracebacks.")] = False) -> None:
    """List audio devices with their default sample rates (< and > mark the default input and output)."""
    from voicechat.audio.device import NO_DEVICE_HINT, list_devices, shown_name
    from voicechat.errors import AudioError

    found = list_devices()
    if not found:
        raise AudioError("no audio devices found", hint=NO_DEVICE_HINT)
    for d in found:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        typer.echo(f"{mark} {d.index:3d} {shown_name(d)}, {d.inputs} in, {d.outputs} out, {d.default_rate} Hz")


@guarded(on_interrupt="ignore")
def serve(
    host: Annotated[str, typer.Option(metavar="ADDRESS",
                                      help="Address to bind (loopback unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT",
                                      help="Port to listen on (0 picks a free one).")] = 8765,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow binding a non-loopback address.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and full tracebacks.")] = False,
) -> None:
    """Run the local realtime-compatible server (an echo brain; no API key, no cost)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr, format="%(message)s")
    from voicechat.server import ServerOptions, run_server

    try:
        run_server(ServerOptions(allow_remote=allow_remote), host=host, port=port)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        from voicechat.errors import UsageError

        why = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise UsageError(f"cannot listen on {host}:{port}: {why}",
                         hint="pick another --port (--port 0 picks a free one)"
                         if exc.errno == errno.EADDRINUSE else "check --host") from None


def doctor(**given: Any) -> None:
    """Check PortAudio, the audio devices, echo, the API key and the connection (exit 1 on a failure)."""
    debug_logging(bool(given["debug"]))
    config_file, audio, seconds = given.pop("config_file"), not given.pop("no_audio"), given.pop("seconds")
    settings = sources.load_settings(flags_of(given), config_file)  # the same resolution as talk
    from voicechat.doctor import run as run_doctor
    from voicechat.redact import scrub

    status = run_doctor(
        settings, audio=audio, seconds=seconds, write=lambda line: typer.echo(scrub(line)),
        note=lambda message: typer.echo(scrub(f"  … {message}"), err=True),
    )
    raise typer.Exit(status)


_DOCTOR_ONLY = (
    extra_option("no_audio", bool, False, "--no-audio", help="Skip the audible checks (microphone level, tone, echo)."),
    extra_option("seconds", float, 2.0, min=0.5, max=30.0, metavar="SECONDS",
                 help="How long to measure the microphone level."),
)
doctor_command = guarded(on_interrupt="status")(table_command(doctor, lambda spec: spec.doctor, _DOCTOR_ONLY))
"""``doctor`` as typer registers it: the rows marked ``doctor`` and its own two flags."""
