"""How tdrl's modules import each other: no cycles (counting imports anywhere in a file), imports at
the top unless a comment says why not, no heavy library on the light commands' paths, and one test
for "is this a URI"."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tdrl"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tdrl modules ``path`` imports anywhere (module level, functions, conditionals)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_counting_imports_anywhere_in_a_file():
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []
    assert "tdrl.study.runner" in graph["tdrl.study.cli"]  # imported inside run(): counted
    # the check sees imports inside functions: a cycle made of them is found
    assert _cycles({**graph, "tdrl.config.paths": {"tdrl.study.cli"}}) != []


def test_imports_inside_functions_say_why():
    """An import inside a function is one that is heavy and optional on that path (Ray, torch, mlflow
    on a command's --help path; an optional decoder); a comment on it or just above its group says so."""
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    above = node.lineno - 2
                    while above >= 0 and (not lines[above].strip() or lines[above].strip().startswith(("import ", "from "))):
                        above -= 1  # above the import group (blank lines between its parts included)
                    group = lines[above + 1:node.lineno]
                    said = any("#" in line for line in group) or (above >= 0 and lines[above].strip().startswith("#"))
                    if not said:
                        bare.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert bare == []


def test_light_commands_import_no_heavy_library():
    """`tdrl train|study|search|tables|synth|data prepare|data manifest --help` build their parsers
    without torch, Ray or MLflow (seconds each to import)."""
    code = ("import argparse, importlib, json, sys\n"
            "from tdrl.cli import COMMANDS\n"
            "for cmd in ('train', 'study', 'search', 'tables', 'synth', 'data prepare', 'data manifest'):\n"
            "    importlib.import_module(COMMANDS[cmd][0]).add_arguments(argparse.ArgumentParser())\n"
            "print(json.dumps(sorted(m for m in ('torch', 'ray', 'mlflow', 'matplotlib') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_one_test_for_a_uri():
    """``"://" in`` is written once in tdrl: tdrl.config.paths.is_uri."""
    hits = [f"{p.relative_to(REPO)}:{i}" for p in sorted(PACKAGE.rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if '"://" in' in line]
    assert hits == ["tdrl/config/paths.py:14"]
