"""Grid texts and helpers shared by the sweep tests."""

from __future__ import annotations

from pathlib import Path

BRIEF_GRID = """\
data = "digits"
epochs = 20
[grid]
likelihood = ["normal", "laplace"]
scale = ["learned", 0.1]
seed = [0, 1]
"""

#: settings that make one run take about a second
TINY = 'data = "digits"\nhidden_dim = 16\niwae_samples = 8\nbatch_size = 256\n'


def write_grid(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    """Write ``text`` to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_text(text)
    return path
