"""The doctor's report: one :class:`Check` per line, a summary, and the exit status.

Every check, wherever it is measured, ends as a :class:`Check` (a name, ``ok``/``warn``/
``fail``/``skip``, what was found and how to fix it); this module says how one is printed and
what the run as a whole means. Pure; a detail may hold the server's own text, so it is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicechat.escape import escape_control

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# Check names, in the order they are printed.
PORTAUDIO, INPUT, OUTPUT, MIC, SPEAKER, ECHO, KEY, CONNECT = (
    "PortAudio", "input device", "output device", "mic level", "speaker", "echo", "API key", "connect",
)


@dataclass(frozen=True, slots=True)
class Check:
    """One result: a name, ``ok``/``warn``/``fail``/``skip``, what was found, and how to fix it."""

    name: str
    status: str
    detail: str
    fix: str | None = None



# ---- the report ---------------------------------------------------------------------------------


def format_check(check: Check) -> str:
    """``ok    speaker        played …`` and, for a warning or failure, an indented ``fix:`` line."""
    line = f"{check.status:<5} {check.name:<14} {escape_control(check.detail)}"
    if check.fix and check.status in (WARN, FAIL):
        line += f"\n{'':21}fix: {escape_control(check.fix)}"
    return line


def summary(checks: list[Check]) -> str:
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    verdict = "ready to talk" if not fails else "fix the failures above before talking"
    return f"{count(fails, 'failure')}, {count(warns, 'warning')}: {verdict}"


def exit_status(checks: list[Check]) -> int:
    """0 when nothing failed (warnings allowed), else 1."""
    return 1 if any(c.status == FAIL for c in checks) else 0
