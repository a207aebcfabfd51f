"""The sweep package sits above inference: the arrows run one way, and the library never prints."""

from __future__ import annotations

import ast
from pathlib import Path

import vaelik

PACKAGE = Path(vaelik.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _calls(path: Path, name: str) -> int:
    return sum(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def test_inference_never_imports_the_sweep_or_the_cli():
    for path in sorted((PACKAGE / "inference").rglob("*.py")):
        bad = {m for m in _imports(path) if m.startswith(("vaelik.sweep", "vaelik.cli"))}
        assert not bad, f"{path.name} imports {bad}"


def test_the_sweep_library_never_prints_and_never_imports_the_cli():
    for path in sorted((PACKAGE / "sweep").rglob("*.py")) + [PACKAGE / "demo.py"]:
        assert _calls(path, "print") == 0, f"{path.name} prints"
        assert not {m for m in _imports(path) if m.startswith("vaelik.cli")}, path.name
