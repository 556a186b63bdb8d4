"""What C libraries write to fd 2 during a device conversation stays off the terminal (issue 14, item 1).

`ForeignStderr` is run in a child process whose stderr is a pipe the test reads: a raw write to
fd 2 (as libasound's ``ALSA lib … underrun occurred``) is counted and never printed, while
Python's own stderr (a warning, the log, a traceback after the block) still comes out.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import logging, os, sys
    from voicechat.app.output import ForeignStderr
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with ForeignStderr() as kept:
        os.write(2, b"ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred\\n")
        os.write(2, b"ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred\\n")
        print("python stderr inside", file=sys.stderr)
        logging.getLogger("x").info("a log line inside")
    print(kept.summary(), file=sys.stderr)
    os.write(2, b"raw after the block\\n")
    {tail}
""")


def run_child(tail: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD.format(tail=tail)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_library_lines_are_counted_not_printed_and_python_stderr_still_shows() -> None:
    proc = run_child("")
    assert proc.returncode == 0, proc.stderr
    assert "ALSA lib" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert "python stderr inside" in lines and "a log line inside" in lines
    assert "voicechat: the sound library wrote 2 lines of its own to stderr (kept off the screen)" in lines
    assert lines[-1] == "raw after the block"  # fd 2 is back


def test_a_traceback_after_an_error_in_the_block_reaches_stderr() -> None:
    proc = run_child("with ForeignStderr():\n    os.write(2, b'ALSA lib x\\\\n')\n    raise RuntimeError('boom')")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: boom" in proc.stderr
    assert "ALSA lib" not in proc.stderr


def test_a_library_warning_reads_as_one_of_voicechats_lines_not_the_loggers() -> None:
    """Without --debug any logger's warning (ours or a library's) is a ``voicechat: warning:``
    line, scrubbed of secrets; never ``WARNING:voicechat.eventlog:…``."""
    child = textwrap.dedent("""
        import logging
        from voicechat.cli.boundary import debug_logging
        from voicechat.redact import remember
        remember("sk-proj-abcdefghijklmnop1234")
        debug_logging(False)
        logging.getLogger("websockets.client").warning("closing %s", "sk-proj-abcdefghijklmnop1234")
        logging.getLogger("voicechat.x").error("cannot write %s", "chat.md")
        logging.getLogger("voicechat.x").info("not shown")
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True)
    lines = done.stderr.splitlines()
    assert lines[1] == "voicechat: error: cannot write chat.md", lines
    assert lines[0].startswith("voicechat: warning: closing ") and "abcdefghijklmnop" not in lines[0], lines
    assert len(lines) == 2
