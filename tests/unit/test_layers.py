"""The import rule of docs/architecture.md, checked by parsing every module's imports.

Layers, inner to outer: base, core, live, adapters, orchestration, entry. A module imports only from
its own layer or an inner one (never outwards), the package graph has no cycle, the core opens
nothing (no sockets, processes, threads, terminals or clocks), and each I/O library has only the
importers named here. A new module must be placed in a layer below, or this test fails.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "voicechat"

# Module name prefixes per layer; the longest matching prefix wins. A package whose modules sit
# in different layers is named module by module, and its __init__ in PACKAGES: a new module in
# it must be placed here by hand.
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("voicechat.errors", "voicechat.escape", "voicechat.files", "voicechat.redact",
             "voicechat.urls", "voicechat.protocol"),
    "core": ("voicechat.effects", "voicechat.backoff", "voicechat.closes", "voicechat.pricing", "voicechat.budget",
             "voicechat.session", "voicechat.config", "voicechat.tools.spec", "voicechat.tools.mcp", "voicechat.tools.tables",
             "voicechat.keys.decoder",
             "voicechat.keys.editor", "voicechat.audio.format", "voicechat.audio.resample", "voicechat.audio.g711",
             "voicechat.audio.jitter", "voicechat.audio.playout", "voicechat.audio.aec", "voicechat.audio.judges",
             "voicechat.audio.linear", "voicechat.ui.snapshot",
             "voicechat.doctor.measure", "voicechat.doctor.report"),
    # State shared with another thread or read against a clock; still opens nothing.
    "live": ("voicechat.audio.playback", "voicechat.audio.echo", "voicechat.audio.reftap", "voicechat.audio.capture",
             "voicechat.audio.player", "voicechat.ui.view"),
    "adapters": ("voicechat.transport", "voicechat.eventlog", "voicechat.transcript", "voicechat.outputs",
                 "voicechat.audio.device", "voicechat.audio.filedev", "voicechat.audio.wav", "voicechat.audio.riff",
                 "voicechat.audio.outfile", "voicechat.tools.runner", "voicechat.keys.tty", "voicechat.ui.render", "voicechat.ui.live",
                 "voicechat.ui.lines", "voicechat.server"),
    "orchestration": ("voicechat.app", "voicechat.endpoint", "voicechat.doctor"),
    "entry": ("voicechat.cli", "voicechat.__main__"),
}
PACKAGES = {"voicechat": "base", "voicechat.audio": "adapters", "voicechat.tools": "adapters", "voicechat.keys": "adapters",
            "voicechat.ui": "adapters"}
ORDER = list(LAYERS)

# The only importers of each I/O library (module names; a package name covers its modules).
OWNERS: dict[str, set[str]] = {
    "websockets": {"voicechat.transport", "voicechat.server.ws"},
    "sounddevice": {"voicechat.audio.device"},
    "rich": {"voicechat.ui.render", "voicechat.ui.lines", "voicechat.ui.live"},
    "typer": {"voicechat.cli"},
    "dotenv": {"voicechat.cli.sources"},
    "livekit": {"voicechat.audio.aec"},
    "pocketsphinx": {"voicechat.server.transcribe"},
    # the client resamples in one room; the local server resamples on its own
    "soxr": {"voicechat.audio.resample", "voicechat.server.audioformat", "voicechat.server.responses",
             "voicechat.server.transcribe"},
}
# What the core may not import: it is handed bytes, events and times, and returns effects.
NOT_IN_CORE = {"asyncio", "socket", "subprocess", "threading", "termios", "tty", "time", "signal",
               "websockets", "sounddevice", "rich", "typer"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> list[str]:
    """Every absolute import of ``module`` (``from a import b`` gives ``a.b``), at any depth."""
    out = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            out += [f"{node.module}.{alias.name}" for alias in node.names]
    return out


def layer(module: str) -> str:
    if module in PACKAGES:
        return PACKAGES[module]
    best = max((p for prefixes in LAYERS.values() for p in prefixes
                if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} is in no layer: place it in tests/unit/test_layers.py"
    return next(name for name, prefixes in LAYERS.items() if best in prefixes)


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for name in imports(module):
            if name.split(".")[0] == "voicechat" and _resolve(name) != module:
                edges[module].add(_resolve(name))
    return edges


EDGES = _edges()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_points_outwards(module: str) -> None:
    mine = ORDER.index(layer(module))
    outward = [f"{dep} ({layer(dep)})" for dep in sorted(EDGES[module]) if ORDER.index(layer(dep)) > mine]
    assert not outward, f"{module} ({layer(module)}) imports outwards: {outward}"


def test_packages_have_no_cycle() -> None:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = defaultdict(set)
    for module, deps in EDGES.items():
        graph[package(module)] |= {package(d) for d in deps if package(d) != package(module)}
    graph.pop("voicechat", None)  # the version string
    for deps in graph.values():
        deps.discard("voicechat")
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, "import cycle: " + " -> ".join((*path[path.index(node):], node))
        if node not in done:
            for dep in sorted(graph[node]):
                visit(dep, (*path, node))
            done.add(node)

    for node in sorted(graph):
        visit(node, ())


def test_the_core_opens_nothing() -> None:
    bad = {m: sorted({n.split(".")[0] for n in imports(m)} & NOT_IN_CORE)
           for m in MODULES if layer(m) == "core"}
    assert not {m: b for m, b in bad.items() if b}


def test_each_io_library_has_only_its_owners() -> None:
    strays = {}
    for library, owners in OWNERS.items():
        users = {m for m in MODULES if any(n.split(".")[0] == library for n in imports(m))}
        extra = {m for m in users if not any(m == o or m.startswith(o + ".") for o in owners)}
        if extra:
            strays[library] = sorted(extra)
    assert not strays
