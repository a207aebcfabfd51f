"""Status values are spelled once, in vaelik.rundir.schema.Status (no literal "completed")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "vaelik"
STATUS_WORDS = {"completed", "running", "interrupted"}
#: files owned by other parts of the redesign (issue 10) that still compare or
#: write status words as literals; remove an entry once its file uses Status
PENDING: set[str] = set()


def _status_literals(path: Path) -> list[int]:
    """Lines where a status word is compared with (==, !=), passed, defaulted or stored."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hits: list[int] = []

    def word(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and node.value in STATUS_WORDS

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            if word(node.left) or any(word(c) for c in node.comparators):
                hits.append(node.lineno)
        elif ((isinstance(node, ast.Call) and any(word(a) for a in node.args))
              or (isinstance(node, ast.AnnAssign) and word(node.value))
              or (isinstance(node, ast.Dict) and any(word(v) for v in node.values))):
            hits.append(node.lineno)
    return hits


def test_no_status_literal_outside_the_schema():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE.parent))
        if rel == "vaelik/rundir/schema.py" or rel in PENDING:
            continue
        lines = _status_literals(path)
        if lines:
            found[rel] = lines
    assert not found, f"use vaelik.rundir.Status instead of status literals: {found}"
