"""The core is only the domain: no shell libraries, no service URLs or launcher names, no import cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "skyscan"
FORBIDDEN = (
    "pika",
    "pymongo",
    "bson",
    "motor",
    "httpx",
    "requests",
    "fastapi",
    "starlette",
    "pydantic_settings",
    "kubernetes",
    "htcondor",
    "htcondor2",
    "confluent_kafka",
    "skyinfra",
    "skydriver_api",
    "server",
    "worker",
)
REGISTRY_ENTRY = re.compile(r"^skyscan(\.\w+)+:\w+$")
SERVICE_TEXT = re.compile(r"amqp://|mongodb://|localhost|127\.0\.0\.1|\b(kubernetes|htcondor|condor)\b", re.I)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every module imported anywhere in the file (function-level imports too: a lazy import can
    hide a cycle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and REGISTRY_ENTRY.match(node.value)
        ):
            found.add(node.value.partition(":")[0])  # a registry entry "module:Class", imported by name
    return found


def core_graph() -> dict[str, set[str]]:
    modules = core_modules()
    return {
        name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_registry_entries_count_as_imports() -> None:
    assert "skyscan.refinement.contour" in imports_of(CORE / "refinement" / "strategies.py")
    assert "skyscan.physics.recos.pandel" in imports_of(CORE / "physics" / "recos" / "registry.py")


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_the_core() -> None:
    graph = core_graph()
    assert len(graph) > 30  # the walk really sees the core
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_core_imports_no_shell_library() -> None:
    offenders = {
        name: sorted(m for m in imports_of(path) if m.split(".")[0] in FORBIDDEN)
        for name, path in core_modules().items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_core_holds_no_service_urls_or_launcher_names() -> None:
    hits = [
        f"{module_name(p)}:{n}: {line.strip()}"
        for p in CORE.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if SERVICE_TEXT.search(line)
    ]
    assert hits == []


def test_package_inits_of_the_core_import_nothing() -> None:
    """Subpackages are namespaces a newcomer reads; importing one must not pull in the others.
    (The exports package is itself the format registry.)"""
    checked = 0
    for init in CORE.rglob("__init__.py"):
        if init.parent in (CORE, CORE / "skymap" / "exports"):
            continue
        body = [n for n in ast.parse(init.read_text()).body if not isinstance(n, ast.Expr)]
        assert body == [], init
        checked += 1
    assert checked >= 7
