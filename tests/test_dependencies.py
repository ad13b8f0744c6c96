"""Dependencies point one way: spawning builds on the inventory, never the other way round."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> Iterator[str]:
    """Every module a file imports, at any depth (function-local imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _imports_of_app(app: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): set(_imports(path)) for path in sorted((ROOT / app).rglob("*.py"))}


def test_the_walk_sees_the_imports_it_looks_for() -> None:
    found = _imports_of_app("inventory")
    assert "kube.discovery" in found["inventory/sync.py"]
    assert "inventory.signals" in found["inventory/sync_loop.py"]
    # A function-local import counts as much as a module-level one.
    assert "inventory.generation" in found["inventory/apps.py"]
    assert "spawning.cleanup" in _imports_of_app("spawning")["spawning/receivers.py"]


def test_the_inventory_never_imports_spawning() -> None:
    offending = sorted(
        f"{path}: {module}"
        for path, modules in _imports_of_app("inventory").items()
        for module in modules
        if module == "spawning" or module.startswith("spawning.")
    )
    assert offending == []


def test_no_relative_imports_hide_a_dependency() -> None:
    relative = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "inventory").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    )
    assert relative == []


def test_the_inventory_never_imports_the_history() -> None:
    # The history app registers the inventory's models and listens to its signals, never the reverse.
    offending = sorted(
        f"{path}: {module}"
        for path, modules in _imports_of_app("inventory").items()
        for module in modules
        if module in ("audit", "simple_history") or module.startswith(("audit.", "simple_history."))
    )
    assert offending == []


def test_the_inventory_and_spawning_never_import_the_dashboard() -> None:
    # The dashboard reads both; they must work, and migrate, without it.
    offending = sorted(
        f"{path}: {module}"
        for app in ("inventory", "spawning", "kube")
        for path, modules in _imports_of_app(app).items()
        for module in modules
        if module == "dashboard" or module.startswith("dashboard.")
    )
    assert offending == []
    assert "inventory.models" in _imports_of_app("dashboard")["dashboard/selectors.py"]
