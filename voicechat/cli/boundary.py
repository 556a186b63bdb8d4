"""The one error boundary: every command ends a failure here, as one line and an exit status.

A ``VoicechatError`` becomes ``voicechat: error: …`` (with its hint) on stderr and its exit
status; Ctrl-C becomes ``voicechat: interrupted by SIGINT`` (130), unless the command says
otherwise (``serve`` ends quietly, ``doctor`` with its status only); anything else is a bug,
said in one line (``voicechat: internal error: …``). ``--debug`` writes the traceback first. All
of it is scrubbed of secrets and escaped, because a message may carry the server's own text.
Commands are wrapped with :func:`guarded`; none of them catches errors itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, Literal, NoReturn, TypeVar

import typer

from voicechat.errors import ExitStatus, Interrupted, VoicechatError

F = TypeVar("F", bound=Callable[..., Any])
OnInterrupt = Literal["message", "status", "ignore"]


def guarded(on_interrupt: OnInterrupt = "message") -> Callable[[F], F]:
    """Wrap a command in the boundary; its ``debug`` argument (when it has one) asks for tracebacks."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            debug = bool(kwargs.get("debug"))
            try:
                return command(*args, **kwargs)
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise  # typer's own ends (an exit status, a usage error): already what the user sees
            except VoicechatError as error:
                fail(error, debug)
            except BrokenPipeError:
                if not stdout_reader_gone():
                    raise
                quiet_broken_pipe()
            except KeyboardInterrupt:  # before a command's own handlers are in place
                if on_interrupt == "ignore":
                    return None
                if on_interrupt == "status":
                    raise typer.Exit(int(ExitStatus.SIGINT)) from None
                fail(Interrupted("interrupted by SIGINT"), debug)
            except Exception as exc:  # a bug: say so in one line; --debug shows where
                unexpected(exc, debug)

        return run  # type: ignore[return-value]

    return decorate


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone (``voicechat config show | head -3``)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(flags & select.POLLERR for _, flags in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def quiet_broken_pipe() -> NoReturn:
    """The reader of stdout stopped reading: end as a program killed by SIGPIPE ends (141, as
    ``seq 1000 | head -1`` does under ``set -o pipefail``), with no message. What is still
    buffered for stdout goes nowhere, so that Python's exit flush does not complain."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    raise typer.Exit(int(ExitStatus.SIGPIPE))


def fail(error: VoicechatError, debug: bool) -> NoReturn:
    """``voicechat: error: MESSAGE`` (and its hint) on stderr; exit with the error's status."""
    from voicechat.escape import escape_control
    from voicechat.redact import scrub

    if debug:  # the traceback first, then the same message and exit status as without --debug
        _traceback(error)
    # Messages may carry the server's own text: never let it drive the terminal, nor show a secret.
    label = "" if isinstance(error, Interrupted) else "error: "
    message = f"voicechat: {label}{escape_control(scrub(error.message))}"
    if error.hint:
        message += f"\n  hint: {escape_control(scrub(error.hint))}"
    typer.echo(message, err=True)
    raise typer.Exit(int(error.status))


def unexpected(exc: Exception, debug: bool) -> NoReturn:
    """A bug: the scrubbed traceback with --debug, then one line naming it (every secret elided)."""
    from voicechat.escape import escape_control
    from voicechat.redact import scrub

    if debug:
        _traceback(exc)
    # str, not repr: a UnicodeDecodeError's repr holds the bytes it was decoding (a file, a key).
    what = escape_control(scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
    if len(what) > 300:
        what = what[:299] + "…"
    typer.echo(f"voicechat: internal error: {what}\n  hint: run again with --debug for the traceback", err=True)
    raise typer.Exit(int(ExitStatus.ERROR)) from None


def _traceback(exc: BaseException) -> None:
    import traceback

    from voicechat.redact import scrub

    sys.stderr.write(scrub("".join(traceback.format_exception(exc))))


class _UserFormat(logging.Formatter):
    """A record as one of voicechat's own lines (``voicechat: warning: …``), not the logger's
    ``WARNING:name:…``: without ``--debug`` only warnings and errors reach the user."""

    def format(self, record: logging.LogRecord) -> str:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        return f"voicechat: {level}: {record.getMessage()}"


def debug_logging(debug: bool, quiet_level: int = logging.WARNING) -> None:
    """Logging to stderr (everything with --debug), every record scrubbed of secrets."""
    from voicechat.redact import scrub_logging

    logging.basicConfig(level=logging.DEBUG if debug else quiet_level, stream=sys.stderr)
    if not debug:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(_UserFormat())
    scrub_logging()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Where talk's own handlers are not in place (reading settings, starting up), SIGTERM and
    SIGHUP raise `Interrupted` (exit 143, 129), as SIGINT raises KeyboardInterrupt, instead of
    killing the process where it stands. The previous handlers are restored afterwards."""
    import signal

    def interrupted(signum: int, frame: Any) -> None:
        status = ExitStatus.SIGHUP if signum == signal.SIGHUP else ExitStatus.SIGTERM
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}", status=status)

    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, interrupted)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
