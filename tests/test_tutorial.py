"""docs/tutorial.md runs as written: every ```python block, in order, in one namespace."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_tutorial_has_code():
    assert len(code_blocks(TUTORIAL.read_text())) >= 4


@pytest.mark.slow
def test_tutorial_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "tutorial"}
    for i, block in enumerate(code_blocks(TUTORIAL.read_text())):
        exec(compile(block, f"{TUTORIAL.name}[block {i}]", "exec"), namespace)
    assert (tmp_path / "sigma-over-epochs.png").stat().st_size > 1000
    assert (tmp_path / "runs" / "normal-learned" / "status").read_text().strip() == "completed"


@pytest.mark.slow
def test_readme_python_api_block_runs(tmp_path, monkeypatch, capsys):
    readme = (TUTORIAL.parent.parent / "README.md").read_text()
    block = re.findall(r"## The Python API\n\n```python\n(.*?)```", readme, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md[python api]", "exec"), {"__name__": "readme"})
    ratio = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(ratio - 1) < 0.15  # the README says "≈ 0.95"
