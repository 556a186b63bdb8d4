"""The command line: flags to settings, and the one error boundary.

Every ``VoicechatError`` ends here as ``voicechat: error: …`` on stderr and its exit status;
``--debug`` shows the traceback instead. Heavy modules (numpy, websockets, sounddevice) are
imported inside the commands so ``voicechat --help`` stays fast and works without PortAudio.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from voicechat import __version__
from voicechat.errors import ExitStatus, VoicechatError

app = typer.Typer(
    name="voicechat",
    help="Live, interruptible voice conversations with realtime speech models, in your terminal.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voicechat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Talk to a realtime speech model; interrupt it by talking over it."""


def _fail(error: VoicechatError, debug: bool) -> NoReturn:
    if debug:
        raise error
    from voicechat.errors import Interrupted
    from voicechat.transcript import escape_control

    # Messages may carry the server's own text: never let it drive the terminal.
    label = "" if isinstance(error, Interrupted) else "error: "
    message = f"voicechat: {label}{escape_control(error.message)}"
    if error.hint:
        message += f"\n  hint: {escape_control(error.hint)}"
    typer.echo(message, err=True)
    raise typer.Exit(int(error.status))


def _dotenv() -> dict[str, str | None]:
    from dotenv import dotenv_values, find_dotenv

    path = find_dotenv(usecwd=True)
    return dict(dotenv_values(path)) if path else {}


def _config_file(config: Any) -> dict[str, Any]:
    path = config.config_path(os.environ, Path.home())
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise config.ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return config.parse_config_file(path, text)


TALK_EXAMPLES = """
Examples:

  voicechat talk --backend local --input-file question.wav --output-file reply.wav

  voicechat talk --voice cedar --vad semantic --transcript chat.md

  voicechat talk --base-url http://127.0.0.1:8765/v1 --input-file q.wav > chat.txt
"""


@app.command(epilog=TALK_EXAMPLES)
def talk(
    backend: Annotated[str, typer.Option(help="openai (the Realtime API) or local (built-in echo server).")] = "openai",
    model: Annotated[str | None, typer.Option(help="Realtime model id. [env VOICECHAT_MODEL]")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API base URL. [env OPENAI_BASE_URL; default https://api.openai.com/v1]")
    ] = None,
    voice: Annotated[str | None, typer.Option(help="Assistant voice (marin, cedar, alloy, …) or a custom voice_… id.")] = None,
    instructions: Annotated[str | None, typer.Option(help="System instructions for the assistant.")] = None,
    vad: Annotated[str | None, typer.Option(help="Turn detection: server, semantic or none (push-to-talk).")] = None,
    vad_threshold: Annotated[float | None, typer.Option("--vad-threshold", help="Server VAD threshold, 0.0 to 1.0.")] = None,
    prefix_padding_ms: Annotated[int | None, typer.Option("--prefix-padding-ms", help="Audio kept before speech starts (ms).")] = None,
    silence_duration_ms: Annotated[
        int | None, typer.Option("--silence-duration-ms", help="Silence that ends a turn (ms).")
    ] = None,
    echo: Annotated[
        str | None,
        typer.Option(
            help="Keep the assistant's voice out of the mic: auto (aec if installed, else gate), aec, gate, "
            "half-duplex, or off (headphones)."
        ),
    ] = None,
    no_transcribe: Annotated[bool, typer.Option("--no-transcribe", help="Do not transcribe what you say.")] = False,
    text_only: Annotated[bool, typer.Option("--text-only", help="The assistant answers in text only.")] = False,
    input_device: Annotated[str | None, typer.Option("--input-device", help="Microphone: index or name substring.")] = None,
    output_device: Annotated[str | None, typer.Option("--output-device", help="Speaker: index or name substring.")] = None,
    sample_rate: Annotated[int | None, typer.Option("--sample-rate", help="Device sample rate (default: the device's own).")] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="Speak from a WAV file (any rate/channels) instead of a microphone.")
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", help="Write the assistant's audio, as played, to a 24 kHz WAV file.")
    ] = None,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Append the transcript to FILE (.txt, .md or .jsonl).")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Record the conversation to FILE.wav: microphone left, assistant right."),
    ] = None,
    fast: Annotated[bool, typer.Option("--fast", help="With --input-file: run the audio clock 10x faster than real time.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and full tracebacks.")] = False,
) -> None:
    """Hold a live voice conversation (transcript on stdout, status on stderr)."""
    import asyncio

    from voicechat import config

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr)
    flags: dict[str, Any] = {
        "backend": backend,
        "model": model,
        "base_url": base_url,
        "voice": voice,
        "instructions": instructions,
        "vad": vad,
        "vad_threshold": vad_threshold,
        "prefix_padding_ms": prefix_padding_ms,
        "silence_duration_ms": silence_duration_ms,
        "echo": echo,
        "text_only": text_only or None,
        "input_device": input_device,
        "output_device": output_device,
        "sample_rate": sample_rate,
        "input_file": input_file,
        "output_file": output_file,
        "transcript": transcript,
        "record": record,
        "fast": fast or None,
        "quiet": quiet or None,
        "debug": debug or None,
    }
    if no_transcribe:
        flags["transcribe_model"] = ""
    try:
        settings = config.resolve(
            flags=flags, environ=os.environ, dotenv=_dotenv(), file_values=_config_file(config)
        )
        from voicechat.app import make_output
        from voicechat.app import talk as run_talk

        out = make_output(settings, sys.stdout, sys.stderr)
        asyncio.run(run_talk(settings, out))
    except VoicechatError as error:
        _fail(error, debug)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitStatus.SIGINT)) from None
    except Exception as exc:  # a bug: say so in one line; --debug shows where
        if debug:
            raise
        typer.echo(f"voicechat: internal error: {exc!r}\n  hint: run again with --debug for the traceback", err=True)
        raise typer.Exit(int(ExitStatus.ERROR)) from None


@app.command()
def devices(
    debug: Annotated[bool, typer.Option("--debug", help="Full tracebacks.")] = False,
) -> None:
    """List audio devices with their default sample rates (> marks the defaults)."""
    from voicechat.audio.device import list_devices

    try:
        found = list_devices()
    except VoicechatError as error:
        _fail(error, debug)
    for d in found:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        typer.echo(f"{mark} {d.index:3d} {d.name} ({d.hostapi}), {d.inputs} in, {d.outputs} out, {d.default_rate} Hz")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8765,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow binding a non-loopback address.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and full tracebacks.")] = False,
) -> None:
    """Run the local realtime-compatible server (an echo brain; no API key, no cost)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr, format="%(message)s")
    from voicechat.server import ServerOptions, run_server

    try:
        run_server(ServerOptions(allow_remote=allow_remote), host=host, port=port)
    except VoicechatError as error:
        _fail(error, debug)
    except KeyboardInterrupt:
        pass


def main() -> None:
    app()
