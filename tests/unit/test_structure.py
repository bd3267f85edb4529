"""The package's layers hold: no import cycle, nothing imported upward, long modules explained.

Reads the source (every import statement, also those inside functions), never runs it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "streams"
LONG = 400  # lines: a module longer than this needs its reason in the README's layout note

# What each layer may import of ours (besides itself).
_BASE = ("streams.domain", "streams.settings", "streams.topics", "streams.logs")
MAY_IMPORT = {
    "streams.domain": (),
    "streams.adapters": _BASE,
    "streams.runtime": (*_BASE, "streams.adapters"),
    "streams.services": (*_BASE, "streams.adapters", "streams.runtime"),
    "streams.web": (*_BASE, "streams.adapters", "streams.runtime", "streams.services"),
    "streams.agents": (*_BASE, "streams.adapters", "streams.runtime", "streams.services", "streams.app"),
}
# Libraries the pure core must never reach for.
NOT_IN_DOMAIN = (
    "faust",
    "aiokafka",
    "sqlalchemy",
    "aiohttp",
    "aiohttp_jinja2",
    "jinja2",
    "structlog",
    "mode",
)


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(modules of ours, top-level names of other packages) that `name` imports anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, others = set(), set()

    def ours_or_other(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target:
            ours.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "streams":
                    ours_or_other(alias.name)
                else:
                    others.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "streams":
                others.add(source.split(".")[0])
                continue
            for alias in node.names:
                ours_or_other(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    ours.discard(name)
    return ours, others


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    found = modules()
    known = set(found)
    edges, libraries = {}, {}
    for name, path in found.items():
        edges[name], libraries[name] = imports_of(name, path, known)
    return edges, libraries


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def layer_of(name: str) -> str | None:
    return next((layer for layer in MAY_IMPORT if name == layer or name.startswith(layer + ".")), None)


def test_the_package_has_no_import_cycle() -> None:
    edges, _ = graph()
    assert cycles(edges) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    # The check above would pass on any graph if the finder were broken.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_layer_imports_one_above_it() -> None:
    edges, _ = graph()
    upward = []
    for name, targets in edges.items():
        layer = layer_of(name)
        if layer is None:
            continue
        allowed = (layer, *MAY_IMPORT[layer])
        upward += [
            f"{name} -> {t}"
            for t in sorted(targets)
            if not any(t == a or t.startswith(a + ".") for a in allowed)
        ]
    assert upward == []


def test_the_domain_uses_no_framework_or_io_library() -> None:
    _, libraries = graph()
    used = {
        f"{name} uses {lib}"
        for name, libs in libraries.items()
        if layer_of(name) == "streams.domain"
        for lib in libs
        if lib in NOT_IN_DOMAIN
    }
    assert used == set()


def test_only_entrypoints_import_the_composition_root() -> None:
    edges, _ = graph()
    importers = {name for name, targets in edges.items() if "streams.bootstrap" in targets}
    assert {n for n in importers if not n.startswith("streams.entrypoints.")} == set()


def test_every_long_module_is_explained_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = (
        readme.split("### Modules over 400 lines", 1)[1].split("\n#", 1)[0]
        if "### Modules over 400 lines" in readme
        else ""
    )
    explained = set(re.findall(r"^- `(streams/[\w/]+\.py)`", section, re.M))  # one list item each
    long = {str(p.relative_to(ROOT)) for p in modules().values() if len(p.read_text().splitlines()) > LONG}
    assert sorted(long - explained) == []
    # and the list names only modules that are long today, so it cannot go stale
    assert sorted(explained - long) == []
