"""The package layout stays readable: a small root, no import cycles, modules of modest size."""

from __future__ import annotations

import ast
from pathlib import Path

import featurestore_dagster

PACKAGE = Path(featurestore_dagster.__file__).parent
MAX_ROOT_MODULES = 10
MAX_MODULE_LINES = 550  # "about 500": a little slack, never a 1,000-line module


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ours imported at module level (not in functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else []:
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                base = child.module
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in known else base)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
    return {name for name in found if name in known}


def test_package_root_holds_at_most_ten_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_no_module_is_too_long():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_no_module_level_import_cycles():
    known = modules()
    graph = {name: top_level_imports(path, set(known)) - {name} for name, path in known.items()}
    # importing a.b.c imports its packages a.b and a first
    for name in list(graph):
        for dependency in list(graph[name]):
            parts = dependency.split(".")
            graph[name].update(
                ".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in known
            )
        graph[name].discard(name)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                cycles.append(
                    stack[stack.index(child) :] + [child] if child in stack else [node, child]
                )
            elif child not in state:
                visit(child, [*stack, child])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package __init__ importing its own submodules is how packages expose them, not a cycle
    real = [
        c for c in cycles if not any(b.startswith(a + ".") for a, b in zip(c, c[1:], strict=False))
    ]
    assert not real, real


def test_cli_command_modules_import_the_app_never_the_reverse():
    app_imports = top_level_imports(PACKAGE / "cli" / "app.py", set(modules()))
    assert not {m for m in app_imports if m.startswith("featurestore_dagster.cli.")}, app_imports


def test_public_api_resolves():
    for name in featurestore_dagster.__all__:
        assert getattr(featurestore_dagster, name) is not None, name
