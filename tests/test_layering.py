"""The package's layering, read from its source: every import (inside functions too, but not
under ``if TYPE_CHECKING:``) goes down the declared order of the stages, and no modules import
each other in a circle. README, "Architecture", draws the same order."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "embgraft"
# the parts of the package in the data's path, ground first: a part imports only parts before it
ORDER = ("errors", "version", "console", "files", "text", "hf", "sources", "grafting", "models", "training",
         "evaluation", "export", "serve", "demo", "cli", "__init__", "__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """``embgraft.training.loop`` -> ``training``; the package face is ``__init__``."""
    rest = module.split(".")[1:]
    return rest[0] if rest else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every embgraft import in ``path``; ``from a import b`` names ``a.b`` when
    that is a module, else ``a``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "embgraft")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "embgraft":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((node.lineno, sub if sub in modules else node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, list[tuple[int, str]]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {m: imports_of(p, modules) for m, p in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    return out


def test_every_part_is_in_the_declared_order():
    parts = {part(m) for m in graph()}
    assert parts <= set(ORDER), f"parts not in ORDER: {sorted(parts - set(ORDER))}"


def test_imports_go_down_the_declared_order():
    rank = {p: i for i, p in enumerate(ORDER)}
    wrong = [f"{m}:{line} imports {target} ({part(target)} is not below {part(m)})"
             for m, imports in graph().items() for line, target in imports
             if part(target) != part(m) and rank[part(target)] > rank[part(m)]]
    assert wrong == []


def test_no_import_circles():
    g = graph()
    assert cycles({m: {t for _, t in imports} for m, imports in g.items()}) == []


def test_the_check_finds_a_circle_and_an_import_up_the_order(tmp_path):
    # the checks above must be able to fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    code = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from embgraft.cli import main\n"
            "def f():\n    from embgraft.training import loop\n")
    path = tmp_path / "probe.py"
    path.write_text(code, encoding="utf-8")
    assert imports_of(path, {"embgraft.training.loop"}) == [(5, "embgraft.training.loop")]
