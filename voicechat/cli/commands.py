"""``voicechat devices``, ``serve`` and ``doctor``: the commands that are one call each.

``devices`` lists what PortAudio sees, ``serve`` runs the local server until Ctrl-C (which ends
it quietly, status 0), and ``doctor`` resolves settings as ``talk`` does (its connection and
device flags are the table's rows marked for it) and runs the checks (exit 1 on a failure).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from voicechat.cli import sources
from voicechat.cli.boundary import debug_logging, guarded
from voicechat.cli.options import extra_option, flags_of, table_command


@guarded()
def devices(debug: Annotated[bool, typer.Option("--debug", help="Full tracebacks.")] = False) -> None:
    """List audio devices with their default sample rates (> marks the defaults)."""
    from voicechat.audio.device import list_devices

    for d in list_devices():
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        typer.echo(f"{mark} {d.index:3d} {d.name} ({d.hostapi}), {d.inputs} in, {d.outputs} out, {d.default_rate} Hz")


@guarded(on_interrupt="ignore")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8765,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow binding a non-loopback address.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and full tracebacks.")] = False,
) -> None:
    """Run the local realtime-compatible server (an echo brain; no API key, no cost)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr, format="%(message)s")
    from voicechat.server import ServerOptions, run_server

    run_server(ServerOptions(allow_remote=allow_remote), host=host, port=port)


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
    extra_option("seconds", float, 2.0, min=0.5, max=30.0, help="How long to measure the microphone level."),
)
doctor_command = guarded(on_interrupt="status")(table_command(doctor, lambda spec: spec.doctor, _DOCTOR_ONLY))
"""``doctor`` as typer registers it: the rows marked ``doctor`` and its own two flags."""
