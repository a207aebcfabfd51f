"""Who may import whom: vaelik.rundir is torch-free; vaelik.inference never imports vaelik.analysis.

Static scans of the source (like tests/analysis/test_no_torch.py, which checks the
analysis layer at run time) plus one run-time check of vaelik.rundir.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from waiting import HANG_GUARD_S

PACKAGE = Path(__file__).resolve().parents[2] / "vaelik"


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_inference_never_imports_analysis():
    bad = {str(p.relative_to(PACKAGE.parent)): sorted(n for n in _imports(p)
                                                      if n == "vaelik.analysis" or n.startswith("vaelik.analysis."))
           for p in (PACKAGE / "inference").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_rundir_imports_only_stdlib_numpy_pandas_and_itself():
    allowed_vaelik = ("vaelik.rundir", "vaelik.errors")
    third_party = {"numpy", "pandas"}
    for path in (PACKAGE / "rundir").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "vaelik":
                assert name.startswith(allowed_vaelik), (path.name, name)
            elif top in ("arviz", "xarray"):
                assert path.name == "posterior.py", (path.name, name)  # lazily, inside functions
            elif top == "filelock":
                assert path.name == "lock.py", (path.name, name)  # the run directory's lock
            else:
                assert top in third_party or top in sys.stdlib_module_names, (path.name, name)


def test_rundir_loads_and_writes_a_posterior_without_torch(tmp_path):
    code = (
        "import sys, numpy as np, vaelik.rundir, vaelik.rundir.posterior as p;"
        f"p.save_run_data(p.build_run_data(np.zeros((3, 2)), np.zeros((2, 1)), scale_point=0.5),"
        f" {str(tmp_path / 'posterior.nc')!r});"
        "bad = [m for m in ('torch', 'pyro', 'vaelik.inference', 'vaelik.models', 'vaelik.analysis')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, timeout=HANG_GUARD_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
