"""The shape of the code (DESIGN.md, "Shape of the code"), kept by a test so it stays kept.

Read from the source with `ast`, nothing imported: module and function sizes, what each
layer may import (lazy imports inside functions included), no import cycle, thin commands.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mmplan"
FOUNDATIONS = {
    "mmplan.errors",
    "mmplan.config",
    "mmplan.io",
    "mmplan.tables",
    "mmplan.tables.checks",
    "mmplan.logs",
}
STAGES = ("mmplan.forecasting", "mmplan.evaluate", "mmplan.plan")
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 100
MAX_COMMAND_BODY_LINES = 30


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _imports(name: str) -> set[str]:
    """Every module `name` imports, at the top or inside a function (the lazy imports)."""
    found: set[str] = set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from mmplan.cli import inputs` imports the module mmplan.cli.inputs; any other
            # name comes from the package's __init__, which is then imported too.
            modules = {f"{base}.{a.name}" for a in node.names} & set(MODULES)
            found.update(modules)
            if len(modules) < len(node.names):
                found.add(base)
    return found


def _internal(name: str) -> set[str]:
    """The mmplan modules `name` imports (a package import counts as its __init__)."""
    return {m for m in _imports(name) if m in MODULES and m != name}


def test_the_tree_was_read():
    # The checks below pass vacuously on an empty tree: make sure they see the stages.
    assert {"mmplan.cli", "mmplan.tables", *STAGES} <= set(MODULES)
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size_and_docstring(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{MODULES[name]} has {lines} lines"
    assert ast.get_docstring(TREES[name]), f"{MODULES[name]} has no module docstring"


def test_no_function_over_100_lines():
    long = [
        f"{MODULES[name]}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_no_import_cycle():
    graph = {name: _internal(name) for name in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


@pytest.mark.parametrize("name", sorted(FOUNDATIONS))
def test_foundations_import_no_stage_cli_or_report(name):
    bad = {m for m in _internal(name) if m.startswith((*STAGES, "mmplan.cli", "mmplan.report"))}
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", ["mmplan.tables", "mmplan.tables.checks"])
def test_tables_does_no_io(name):
    imported = _imports(name)
    assert "mmplan.io" not in imported
    called = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Call):
            func = node.func
            called.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    io_calls = {c for c in called if c == "open" or c.startswith(("read_", "scan_", "write_"))}
    io_calls |= called & {"sink_parquet", "read_bytes", "unlink", "mkdir", "rmtree"}
    assert not io_calls, io_calls


@pytest.mark.parametrize(
    "name", [m for m in sorted(MODULES) if not m.startswith(("mmplan.cli", "mmplan.__main__"))]
)
def test_only_the_cli_imports_typer_rich_or_the_cli(name):
    bad = {m for m in _imports(name) if m.split(".")[0] in {"typer", "rich", "click"}}
    bad |= {m for m in _imports(name) if m.startswith("mmplan.cli")}
    assert not bad, f"{name} imports {bad}"


def _commands() -> list[ast.FunctionDef]:
    """The functions registered with `@app.command()`."""
    found = []
    for name, tree in TREES.items():
        if not name.startswith("mmplan.cli"):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command"
                for d in node.decorator_list
            ):
                found.append(node)
    return found


def test_every_command_body_is_at_most_30_lines():
    commands = _commands()
    assert {c.name for c in commands} >= {
        "sample",
        "validate",
        "forecast",
        "backtest",
        "optimize",
        "monitor",
    }
    long = {}
    for command in commands:
        body = command.body
        if ast.get_docstring(command):
            body = body[1:]  # the docstring is --help, not logic
        lines = body[-1].end_lineno - body[0].lineno + 1  # type: ignore[operator]
        if lines > MAX_COMMAND_BODY_LINES:
            long[command.name] = lines
    assert not long, long


def test_tests_need_nothing_outside_the_repository():
    """A fresh clone has no sibling `shared` directory: nothing under tests/ may name it,
    in code, fixtures or their READMEs (the benchmarks are where the full data sets are read)."""
    tests = ROOT.parent / "tests"
    sibling = re.compile(r"\.\.[/\\]" + "shared")
    hits = [
        f"{path.relative_to(tests)}:{number}"
        for path in sorted(tests.rglob("*"))
        if path.is_file() and path.suffix in {".py", ".md", ".toml", ".txt", ".json", ".csv"}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if sibling.search(line)
    ]
    assert hits == []
