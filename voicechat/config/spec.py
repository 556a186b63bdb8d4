"""The vocabulary of the settings table: what one row says about one setting.

Every setting of ``voicechat talk`` is declared once, as a field of
:class:`voicechat.config.settings.Settings` whose default is :func:`setting`: its name and type
(the field's), its default, and a :class:`Spec` with the rest (range or choices, help, panel
group, when it applies, its ``session.update`` field). Everything else is derived from those
rows: the ``talk`` and ``doctor`` flags (in ``voicechat.cli``), the environment names and
config-file keys, ``config show``, validation and ``config.example.toml``. So adding a setting
is adding a row, and a range or a list of choices is written in one place.

Pure data; imports only the standard library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Group:
    """Settings that belong together: a help panel of ``talk`` and a section of the example file."""

    panel: str | None
    """The ``talk --help`` panel (None: typer's own "Options")."""
    title: str
    """The ``# --- title ---`` line of ``config.example.toml``."""
    intro: str = ""
    """Comment lines after the title (the file's own prose, without ``#``)."""
    outro: str = ""
    """Comment lines after the group's keys."""


@dataclass(frozen=True, slots=True)
class Spec:
    """One row of the settings table, less the name, type and default (the field's own).

    Texts may hold ``{range}`` (``lo to hi`` of :attr:`range`) and ``{choices}`` (the choices,
    comma-separated), filled in by :meth:`text`, so a limit is written once.
    """

    group: Group
    help: str | None = None
    """The ``talk`` flag's help; None: the setting has no flag."""
    note: str | None = None
    """The comment of the setting in ``config.example.toml`` (lines; default: none)."""
    example: Any = None
    """The value shown in ``config.example.toml`` (default: the setting's default)."""
    in_example: bool = True
    """False: the example file names it in prose only (``instructions_file``, ``[[tools]]``)."""
    file: bool = True
    """A config-file key (and ``VOICECHAT_<KEY>``); False: a per-run flag, the secret, the profile."""
    env: str | None = None
    """The environment variable, when not ``VOICECHAT_<KEY>`` (``OPENAI_API_KEY``, ...)."""
    choices: tuple[str, ...] = ()
    """The allowed values (checked by ``validate``, offered by shell completion)."""
    suggest: tuple[str, ...] = ()
    """Values shell completion offers that are not the only ones allowed."""
    range: tuple[float, float] | None = None
    """Inclusive limits of a number (checked by ``validate``)."""
    positive: bool = False
    """A number that must be finite and above zero."""
    applies: str | None = None
    """The rule (in ``voicechat.config.validate.RULES``) saying when the setting has an effect."""
    hint: str | None = None
    """What to do when it was given as a flag where it has no effect."""
    wire: str | None = None
    """Its field of the ``session.update`` session object, as a dotted path."""
    flag: str | None = None
    """The flag when it is not ``--name-with-dashes`` (``--config``)."""
    negatable: bool = False
    """A ``--name/--no-name`` switch (its flag value is None unless given)."""
    short: str | None = None
    metavar: str | None = None
    panel: bool = True
    """False: the flag sits in typer's own "Options" panel whatever its group."""
    doctor: bool = False
    """``voicechat doctor`` takes the flag too."""

    def text(self, template: str | None) -> str | None:
        """``template`` with ``{range}`` and ``{choices}`` filled in."""
        if template is None:
            return None
        lo, hi = self.range or (0, 0)
        return template.format(range=f"{lo!r} to {hi!r}", choices=", ".join(self.choices))


def setting(default: Any = None, *, repr: bool = True, compare: bool = True, **spec: Any) -> Any:
    """A ``Settings`` field: its default and its :class:`Spec` row (as field metadata)."""
    return dataclasses.field(default=default, repr=repr, compare=compare, metadata={"spec": Spec(**spec)})


def spec_of(field: dataclasses.Field[Any]) -> Spec | None:
    """The row of a ``Settings`` field; None for the bookkeeping fields (``sources``)."""
    return field.metadata.get("spec")
