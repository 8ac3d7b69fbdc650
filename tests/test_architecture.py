"""The package's layout stays a layering: no import cycles between its own modules (function-level
imports counted), and each folder holds one concern."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "maskpro_eval"
CONCERNS = {"analysis", "checkpoints", "cli", "gating", "metrics", "pytest_plugin", "reporting", "runtime", "sampling"}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not node.level, f"{f}: relative import (use absolute maskpro_eval.* imports)"
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and t != "maskpro_eval" and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_cycles():
    cycle = _cycle(_edges(_modules()))
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_layout_by_concern():
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert CONCERNS <= folders, CONCERNS - folders
    flat = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert flat <= {"api", "errors", "evaluation"}, flat  # everything else lives in a concern folder
    for name in CONCERNS:
        assert ast.get_docstring(ast.parse((PKG / name / "__init__.py").read_text())), f"{name}/ says what it holds"
