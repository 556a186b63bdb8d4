"""The command line: flags to settings, and the one error boundary.

Every ``VoicechatError`` ends here as ``voicechat: error: …`` on stderr and its exit status;
``--debug`` shows the traceback too. Heavy modules (numpy, websockets, sounddevice) are
imported inside the commands so ``voicechat --help`` stays fast and works without PortAudio.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
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
    from voicechat.errors import Interrupted
    from voicechat.redact import scrub
    from voicechat.transcript import escape_control

    if debug:  # the traceback first, then the same message and exit status as without --debug
        import traceback

        sys.stderr.write(scrub("".join(traceback.format_exception(error))))
    # Messages may carry the server's own text: never let it drive the terminal, nor show a secret.
    label = "" if isinstance(error, Interrupted) else "error: "
    message = f"voicechat: {label}{escape_control(scrub(error.message))}"
    if error.hint:
        message += f"\n  hint: {escape_control(scrub(error.hint))}"
    typer.echo(message, err=True)
    raise typer.Exit(int(error.status))


def _internal_error(exc: Exception) -> NoReturn:
    """A bug: one line naming it (every secret elided); --debug shows where."""
    from voicechat.redact import scrub
    from voicechat.transcript import escape_control

    # str, not repr: a UnicodeDecodeError's repr holds the bytes it was decoding (a file, a key).
    what = escape_control(scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
    if len(what) > 300:
        what = what[:299] + "…"
    typer.echo(f"voicechat: internal error: {what}\n  hint: run again with --debug for the traceback", err=True)
    raise typer.Exit(int(ExitStatus.ERROR)) from None


def _debug_logging(debug: bool, quiet_level: int = logging.WARNING) -> None:
    """Logging to stderr (everything with --debug), every record scrubbed of secrets."""
    from voicechat.redact import scrub_logging

    logging.basicConfig(level=logging.DEBUG if debug else quiet_level, stream=sys.stderr)
    scrub_logging()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Where talk's own handlers are not in place (reading settings, starting up), SIGTERM
    raises `Interrupted` (exit 143), as SIGINT raises KeyboardInterrupt, instead of killing the
    process where it stands. The previous handler is restored afterwards."""
    import signal

    from voicechat.errors import Interrupted

    def interrupted(signum: int, frame: Any) -> None:
        raise Interrupted("interrupted by SIGTERM", status=ExitStatus.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, interrupted)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dotenv_file() -> tuple[Path | None, dict[str, str | None]]:
    """The ``.env`` file found from the working directory upwards, and its values.

    A file that cannot be read, or is not UTF-8, is a config error naming the file and the
    problem, never its content (it holds the key).
    """
    import io

    from dotenv import dotenv_values, find_dotenv

    from voicechat.errors import ConfigError
    from voicechat.files import MAX_CONFIG_BYTES, read_limited
    from voicechat.redact import CREDENTIAL_ENV, remember_sources

    found = find_dotenv(usecwd=True)
    if not found:
        return None, {}
    path = Path(found)
    try:
        text = read_limited(path, MAX_CONFIG_BYTES).decode("utf-8")  # a regular file: never blocks
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 at byte {exc.start}",
                          hint="save it as UTF-8 text (it holds settings such as OPENAI_API_KEY=…)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    values = dict(dotenv_values(stream=io.StringIO(text)))
    remember_sources(values)
    if any(values.get(k) for k in CREDENTIAL_ENV):
        _warn_open(path, 0o077, "holds an API key and other users can read it")
    return path, values


def _config_location(explicit: Path | None) -> Path:
    """Where the config file is: ``--config FILE``, else the default location."""
    from voicechat import config

    return explicit.expanduser() if explicit is not None else config.config_path(os.environ, Path.home())


def _config_file(explicit: Path | None = None, *, warn: bool = True) -> Any:
    """The parsed config file (a ``config.ConfigFile``), or ``None`` when there is none.

    ``explicit`` is ``--config FILE``, which must exist; the default location may be empty.
    """
    from voicechat import config
    from voicechat.errors import ConfigError, UsageError
    from voicechat.files import MAX_CONFIG_BYTES, read_text_limited

    path = _config_location(explicit)
    try:
        text = read_text_limited(path, MAX_CONFIG_BYTES)  # a regular file: never a FIFO, never /dev/zero
    except FileNotFoundError:
        if explicit is None:
            return None
        raise UsageError(f"--config {path}: no such file",
                         hint=f"voicechat config init --config {path} writes a starter one") from None
    except UnicodeDecodeError as exc:
        kind = ConfigError if explicit is None else UsageError
        raise kind(f"cannot read the config file {path}: not valid UTF-8 at byte {exc.start}") from None
    except OSError as exc:
        kind = ConfigError if explicit is None else UsageError
        raise kind(f"cannot read the config file {path}: {exc.strerror or type(exc).__name__}") from None
    parsed = config.parse_config_file(path, text)
    if warn:
        # Whoever can change the file can point base_url elsewhere and collect your key.
        _warn_open(path, 0o022, "can be changed by other users (it decides where your API key is sent)")
        if parsed.has_secrets:
            _warn_open(path, 0o077, "holds a secret and other users can read it")
    return parsed


def _warn_open(path: Path, bits: int, problem: str) -> None:
    """A warning on stderr when ``path``'s mode has any of ``bits`` (group/other access)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if os.name == "posix" and mode & bits:
        typer.echo(f"voicechat: warning: {path} {problem} (mode {mode:04o})\n  hint: chmod 600 {path}", err=True)


def _read_text(path: Path) -> str:
    """The instructions file: a regular UTF-8 file of at most 1 MB (see `voicechat.files`)."""
    from voicechat.files import MAX_INSTRUCTIONS_BYTES, read_text_limited

    return read_text_limited(path, MAX_INSTRUCTIONS_BYTES)


def _resolve(flags: dict[str, Any], config_file: Path | None) -> tuple[Any, Path | None, Any]:
    """Flags + config file + .env + environment -> validated ``Settings``, the ``.env`` path and
    the parsed config file. Every credential is remembered for scrubbing before it is checked."""
    from voicechat import config
    from voicechat.redact import remember_settings, remember_sources

    remember_sources(os.environ, flags)
    found = _config_file(config_file)
    env_path, dotenv = _dotenv_file()
    settings = config.resolve(flags=flags, environ=os.environ, dotenv=dotenv, config_file=found)
    remember_settings(settings)
    return settings, env_path, found


def _settings(flags: dict[str, Any], config_file: Path | None) -> Any:
    """Flags + config file + .env + environment -> validated ``Settings`` (instructions file read)."""
    from voicechat import config

    return config.load_instructions(_resolve(flags, config_file)[0], _read_text)


def _completer(name: str) -> Any:
    """Shell completion for an option with a fixed set of values."""

    def complete(incomplete: str) -> list[str]:
        from voicechat import config
        from voicechat.protocol.constants import EAGERNESS, TRANSCRIBE_MODELS, VOICES

        values = {
            "backend": config.BACKENDS, "voice": VOICES, "vad": config.VAD_MODES, "echo": config.ECHO_MODES,
            "eagerness": EAGERNESS, "noise_reduction": config.NOISE_REDUCTION_MODES,
            "transcribe_model": TRANSCRIBE_MODELS, "max_output_tokens": ("inf",),
        }[name]
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _complete_profile(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        found = _config_file(ctx.params.get("config_file"), warn=False)
    except VoicechatError:
        return []
    return [name for name in sorted(found.profiles if found else ()) if name.startswith(incomplete)]


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", help="Read FILE instead of ~/.config/voicechat/config.toml "
                 "($VOICECHAT_CONFIG_DIR/config.toml).", rich_help_panel="Config"),
]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", metavar="NAME", help="Layer the config file's [profile.NAME] over its top level. "
                 "[env VOICECHAT_PROFILE]", autocompletion=_complete_profile, rich_help_panel="Config"),
]

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

_CONNECT, _ASSISTANT, _TURNS, _AUDIO, _FILES = "Connection", "Assistant", "Turn detection", "Audio", "Files and output"
_BUDGETS = "Budgets"


@app.command(epilog=TALK_EXAMPLES)
def talk(
    backend: Annotated[
        str | None, typer.Option(help="openai (the Realtime API) or local (built-in echo server).",
                                 autocompletion=_completer("backend"), rich_help_panel=_CONNECT)
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Realtime model id; with Azure, the deployment name. [env VOICECHAT_MODEL]",
                                 rich_help_panel=_CONNECT)
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="API base URL. [env OPENAI_BASE_URL; default https://api.openai.com/v1]",
                     rich_help_panel=_CONNECT),
    ] = None,
    azure: Annotated[
        bool | None,
        typer.Option("--azure/--no-azure", help="Azure OpenAI: api-key header, /openai/v1/realtime; key from "
                     "AZURE_OPENAI_API_KEY, endpoint from AZURE_OPENAI_ENDPOINT. On by itself for "
                     "*.openai.azure.com and *.cognitiveservices.azure.com.", rich_help_panel=_CONNECT),
    ] = None,
    voice: Annotated[
        str | None, typer.Option(help="Assistant voice (marin, cedar, alloy, …) or a custom voice_… id.",
                                 autocompletion=_completer("voice"), rich_help_panel=_ASSISTANT)
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="Speaking speed, 0.25 to 1.5 (1.0 is normal).", rich_help_panel=_ASSISTANT)
    ] = None,
    instructions: Annotated[
        str | None, typer.Option(help="System instructions for the assistant.", rich_help_panel=_ASSISTANT)
    ] = None,
    instructions_file: Annotated[
        Path | None,
        typer.Option("--instructions-file", metavar="FILE", help="Read the system instructions from a UTF-8 text "
                     "file (not with --instructions).", rich_help_panel=_ASSISTANT),
    ] = None,
    max_output_tokens: Annotated[
        str | None,
        typer.Option("--max-output-tokens", metavar="N|inf", help="Limit each reply to N tokens (1 to 32768), "
                     "or inf.", autocompletion=_completer("max_output_tokens"), rich_help_panel=_ASSISTANT),
    ] = None,
    text_only: Annotated[
        bool, typer.Option("--text-only", help="The assistant answers in text only.", rich_help_panel=_ASSISTANT)
    ] = False,
    vad: Annotated[
        str | None, typer.Option(help="Turn detection: server, semantic or none (push-to-talk).",
                                 autocompletion=_completer("vad"), rich_help_panel=_TURNS)
    ] = None,
    vad_threshold: Annotated[
        float | None, typer.Option("--vad-threshold", help="Server VAD threshold, 0.0 to 1.0.", rich_help_panel=_TURNS)
    ] = None,
    prefix_padding_ms: Annotated[
        int | None, typer.Option("--prefix-padding-ms", help="Server VAD: audio kept before speech starts (ms).",
                                 rich_help_panel=_TURNS)
    ] = None,
    silence_duration_ms: Annotated[
        int | None, typer.Option("--silence-duration-ms", help="Server VAD: silence that ends a turn (ms).",
                                 rich_help_panel=_TURNS)
    ] = None,
    idle_timeout_ms: Annotated[
        int | None, typer.Option("--idle-timeout-ms", help="Server VAD: prompt the assistant after this much quiet, "
                                 "5000 to 30000 ms.", rich_help_panel=_TURNS)
    ] = None,
    eagerness: Annotated[
        str | None, typer.Option(help="Semantic VAD: how soon a turn ends: low, medium, high or auto.",
                                 autocompletion=_completer("eagerness"), rich_help_panel=_TURNS)
    ] = None,
    interrupt: Annotated[
        bool | None, typer.Option("--interrupt/--no-interrupt", help="Talking over the assistant cuts it off on the "
                                  "server (interrupt_response).", rich_help_panel=_TURNS)
    ] = None,
    auto_response: Annotated[
        bool | None, typer.Option("--auto-response/--no-auto-response", help="The assistant answers each turn by "
                                  "itself (create_response).", rich_help_panel=_TURNS)
    ] = None,
    noise_reduction: Annotated[
        str | None, typer.Option("--noise-reduction", help="Input noise reduction: near (headset), far (laptop or "
                                 "room mic) or off.", autocompletion=_completer("noise_reduction"),
                                 rich_help_panel=_AUDIO)
    ] = None,
    echo: Annotated[
        str | None,
        typer.Option(
            help="Keep the assistant's voice out of the mic: auto (gate; off for --input-file), aec, gate, "
            "half-duplex, or off (headphones).", autocompletion=_completer("echo"), rich_help_panel=_AUDIO,
        ),
    ] = None,
    transcribe: Annotated[
        bool | None, typer.Option("--transcribe/--no-transcribe", help="Transcribe what you say.",
                                  rich_help_panel=_AUDIO)
    ] = None,
    transcribe_model: Annotated[
        str | None, typer.Option("--transcribe-model", metavar="NAME", help="Model that transcribes what you say "
                                 "(default gpt-4o-mini-transcribe; with Azure, a deployment).",
                                 autocompletion=_completer("transcribe_model"), rich_help_panel=_AUDIO)
    ] = None,
    language: Annotated[
        str | None, typer.Option(metavar="CODE", help="The language you speak, as an ISO-639-1 code (en, de, ja): "
                                 "better transcription.", rich_help_panel=_AUDIO)
    ] = None,
    input_device: Annotated[
        str | None, typer.Option("--input-device", help="Microphone: index or name substring.", rich_help_panel=_AUDIO)
    ] = None,
    output_device: Annotated[
        str | None, typer.Option("--output-device", help="Speaker: index or name substring.", rich_help_panel=_AUDIO)
    ] = None,
    sample_rate: Annotated[
        int | None, typer.Option("--sample-rate", help="Device sample rate (default: the device's own).",
                                 rich_help_panel=_AUDIO)
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="Speak from a WAV file (any rate/channels) instead of a "
                                  "microphone.", rich_help_panel=_FILES)
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", help="Write the assistant's audio, as played, to a 24 kHz WAV "
                                  "file.", rich_help_panel=_FILES)
    ] = None,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Append the transcript to FILE (.txt, .md or .jsonl).",
                                  rich_help_panel=_FILES)
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Record the conversation to FILE.wav: microphone left, assistant right.",
                     rich_help_panel=_FILES),
    ] = None,
    log_events: Annotated[
        Path | None,
        typer.Option("--log-events", metavar="FILE", help="Debugging: append every event, both directions, to FILE "
                     "as JSON lines with a monotonic time; audio and images elided, the API key never written.",
                     rich_help_panel=_FILES),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", metavar="DOLLARS", help="Stop once the estimated cost of the replies reaches "
                     "DOLLARS (a warning at 80 %; needs a model with a known price).", rich_help_panel=_BUDGETS),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", metavar="N", help="Stop once the conversation has lasted N minutes "
                     "(a warning at 80 %).", rich_help_panel=_BUDGETS),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="FILE.jsonl", help="Continue a conversation saved with --transcript "
                     "FILE.jsonl: its turns are shown and given to the model first.", rich_help_panel=_FILES),
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="With --input-file: run the audio clock 10x faster than real time.",
                           rich_help_panel=_FILES)
    ] = False,
    config_file: ConfigOption = None,
    profile: ProfileOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and full tracebacks.")] = False,
) -> None:
    """Hold a live voice conversation (transcript on stdout, status on stderr)."""
    import asyncio

    from voicechat.errors import Interrupted

    _debug_logging(debug)
    flags: dict[str, Any] = {
        "backend": backend,
        "model": model,
        "base_url": base_url,
        "azure": azure,
        "voice": voice,
        "speed": speed,
        "instructions": instructions,
        "instructions_file": instructions_file,
        "max_output_tokens": max_output_tokens,
        "text_only": text_only or None,
        "vad": vad,
        "vad_threshold": vad_threshold,
        "prefix_padding_ms": prefix_padding_ms,
        "silence_duration_ms": silence_duration_ms,
        "idle_timeout_ms": idle_timeout_ms,
        "eagerness": eagerness,
        "interrupt": interrupt,
        "auto_response": auto_response,
        "noise_reduction": noise_reduction,
        "echo": echo,
        "transcribe": transcribe,
        "transcribe_model": transcribe_model,
        "language": language,
        "input_device": input_device,
        "output_device": output_device,
        "sample_rate": sample_rate,
        "input_file": input_file,
        "output_file": output_file,
        "transcript": transcript,
        "record": record,
        "log_events": log_events,
        "max_cost": max_cost,
        "max_minutes": max_minutes,
        "resume": resume,
        "fast": fast or None,
        "profile": profile,
        "quiet": quiet or None,
        "debug": debug or None,
    }
    try:
        with _sigterm_interrupts():
            settings = _settings(flags, config_file)
            from voicechat.app import make_output, reliability_from_env
            from voicechat.app import talk as run_talk

            reliability = reliability_from_env(os.environ)  # VOICECHAT_RECYCLE_MARGIN_S: a test knob
            out = make_output(settings, sys.stdout, sys.stderr)
            asyncio.run(run_talk(settings, out, reliability=reliability))
    except VoicechatError as error:
        _fail(error, debug)
    except KeyboardInterrupt:  # before talk's own handlers are in place
        _fail(Interrupted("interrupted by SIGINT"), debug)
    except Exception as exc:  # a bug: say so in one line; --debug shows where
        _unexpected(exc, debug)


def _unexpected(exc: Exception, debug: bool) -> NoReturn:
    """The error boundary for a bug: the scrubbed traceback with --debug, then one line."""
    if debug:
        import traceback

        from voicechat.redact import scrub

        sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
    _internal_error(exc)


# ---- voicechat config ---------------------------------------------------------------------

config_app = typer.Typer(
    name="config",
    help="Show, locate or create the config file (defaults and [profile.NAME] tables for talk).",
    no_args_is_help=True,
)
app.add_typer(config_app)

_SHOWN_FIRST = ("profile", "backend", "base_url", "azure", "model", "api_key")


def _shown(key: str, value: Any) -> str:
    from voicechat import config
    from voicechat.redact import mask_url
    from voicechat.transcript import escape_control

    if key == "api_key":
        return config.mask_key(value)
    if key == "base_url" and isinstance(value, str):
        value = mask_url(value)  # refused by talk anyway; never shown
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):  # tables such as [[tools]]: their names
        return ", ".join(str(getattr(v, "name", v)) for v in value) or "(none)"
    text = escape_control(str(value).replace("\n", " "))
    return text if len(text) <= 48 else text[:47] + "…"


@config_app.command("show")
def config_show(
    config_file: ConfigOption = None,
    profile: ProfileOption = None,
    debug: Annotated[bool, typer.Option("--debug", help="Full tracebacks.")] = False,
) -> None:
    """Print every effective setting and where it came from (the API key masked)."""
    from voicechat import config
    from voicechat.redact import scrub

    try:
        settings, env_path, found = _resolve({"profile": profile}, config_file)
    except VoicechatError as error:
        _fail(error, debug)
    except Exception as exc:
        _unexpected(exc, debug)
    typer.echo(f"config file: {_config_location(config_file)}{'' if found else ' (none)'}")
    typer.echo(f".env: {env_path or '(none)'}")
    unused = config.unused(settings)
    keys = [*_SHOWN_FIRST, *(k for k in config.FILE_KEYS if k not in _SHOWN_FIRST)]
    rows = [(k, _shown(k, getattr(settings, k)), settings.source(k), unused.get(k)) for k in keys]
    wide_key = max(len(r[0]) for r in rows)
    wide_value = max(len(r[1]) for r in rows)
    for key, value, source, why in rows:
        line = f"{key:<{wide_key}}  {value:<{wide_value}}  {source}"
        typer.echo(scrub(line + (f"  (unused: {why})" if why else "")))


@config_app.command("path")
def config_path(config_file: ConfigOption = None) -> None:
    """Print the path of the config file talk reads (and config init writes)."""
    path = _config_location(config_file)
    typer.echo(str(path))
    if not path.exists():
        typer.echo("voicechat: no file there yet; voicechat config init writes a starter one", err=True)


@config_app.command("init")
def config_init(
    config_file: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Full tracebacks.")] = False,
) -> None:
    """Write a commented starter config file (every key with its default), readable only by you."""
    from voicechat import config
    from voicechat.errors import ConfigError, UsageError
    from voicechat.files import open_output

    path = _config_location(config_file)
    try:
        if path.exists() and not force:
            raise UsageError(f"{path} already exists", hint="voicechat config init --force overwrites it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = open_output(path, append=False, mode=0o600)  # a FIFO is refused, not waited on
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)  # also when --force replaces a more open file
                f.write(config.EXAMPLE_CONFIG)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    except VoicechatError as error:
        _fail(error, debug)
    typer.echo(f"wrote {path}")


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


@app.command()
def doctor(
    backend: Annotated[str | None, typer.Option(help="openai (the Realtime API) or local (built-in echo server).")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="API base URL. [env OPENAI_BASE_URL]")] = None,
    model: Annotated[str | None, typer.Option(help="Realtime model id. [env VOICECHAT_MODEL]")] = None,
    input_device: Annotated[str | None, typer.Option("--input-device", help="Microphone: index or name substring.")] = None,
    output_device: Annotated[str | None, typer.Option("--output-device", help="Speaker: index or name substring.")] = None,
    sample_rate: Annotated[int | None, typer.Option("--sample-rate", help="Device sample rate (default: the device's own).")] = None,
    no_audio: Annotated[
        bool, typer.Option("--no-audio", help="Skip the audible checks (microphone level, tone, echo).")
    ] = False,
    seconds: Annotated[
        float, typer.Option(min=0.5, max=30.0, help="How long to measure the microphone level.")
    ] = 2.0,
    config_file: ConfigOption = None,
    profile: ProfileOption = None,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and full tracebacks.")] = False,
) -> None:
    """Check PortAudio, the audio devices, echo, the API key and the connection (exit 1 on a failure)."""
    _debug_logging(debug)
    flags: dict[str, Any] = {
        "backend": backend,
        "base_url": base_url,
        "model": model,
        "input_device": input_device,
        "output_device": output_device,
        "sample_rate": sample_rate,
        "profile": profile,
        "debug": debug or None,
    }
    try:
        settings = _settings(flags, config_file)  # the same resolution as talk
        from voicechat.doctor import run as run_doctor
        from voicechat.redact import scrub

        status = run_doctor(
            settings, audio=not no_audio, seconds=seconds, write=lambda line: typer.echo(scrub(line)),
            note=lambda message: typer.echo(scrub(f"  … {message}"), err=True),
        )
    except VoicechatError as error:
        _fail(error, debug)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitStatus.SIGINT)) from None
    except Exception as exc:
        _unexpected(exc, debug)
    raise typer.Exit(status)


def main() -> None:
    app()
