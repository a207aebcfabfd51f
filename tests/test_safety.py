"""Safe files: nothing is unpickled, checkpoints are tensors only, output stays in its folder."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaelik.errors import InputError
from vaelik.inference import TrainConfig, fit
from vaelik.inference.checkpoint import load_checkpoint
from vaelik.rundir import MAX_RUN_NAME, RUN_FILES, prepare_run_dir, safe_run_name
from vaelik.rundir.io import clear_run_files
from vaelik.rundir.lock import LOCK_FILE

PACKAGE = Path(__file__).resolve().parents[1] / "vaelik"
SAFE = re.compile(r"[A-Za-z0-9._-]+")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A complete run directory of a 1-epoch fit whose config name tries to escape."""
    root = tmp_path_factory.mktemp("safety")
    out = root / "out"
    config = TrainConfig(data="digits", epochs=1, hidden_dim=8, iwae_samples=5,
                         name="../../evil/<script>")
    fit(config, out, progress=False)
    return out


# ------------------------------------------------------------------------------------------
# Checkpoints: tensors only


def _plain(value) -> bool:
    """Whether ``value`` holds only tensors, numbers, strings, None and containers of them."""
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (torch.Tensor, str, int, float, bool))


def test_checkpoint_loads_with_weights_only(tiny_run):
    state = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    assert {"config", "epoch", "params", "optimizer", "rng", "metrics"} <= set(state)
    assert _plain(state)
    assert json.loads(state["config"])["name"] == "../../evil/<script>"


class _Payload:
    """Unpickling this would create a file: the proof that it was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_load_checkpoint_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "was-executed"
    path = tmp_path / "checkpoint.pt"
    torch.save({"params": {}, "evil": _Payload(marker)}, path)
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_checkpoint(path)
    assert not marker.exists()


def test_data_loader_never_unpickles(tmp_path):
    from vaelik.inference import load_data

    marker = tmp_path / "was-executed"
    np.save(tmp_path / "evil.npy", np.array([_Payload(marker)] * 4, dtype=object),
            allow_pickle=True)
    with pytest.raises(InputError, match="never unpickles"):
        load_data(str(tmp_path / "evil.npy"))
    assert not marker.exists()


# ------------------------------------------------------------------------------------------
# The package source: no unpickling anywhere


def _violations(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(
            func.value, ast.Name) else ""
        kw = {k.arg: k.value for k in node.keywords}
        const = {k: v.value for k, v in kw.items() if isinstance(v, ast.Constant)}
        where = f"{filename}:{node.lineno}"
        if owner in {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "_pickle"} and name in {
                "load", "loads", "Unpickler"}:
            found.append(f"{where}: {owner}.{name}")
        if name in {"Unpickler", "read_pickle"}:
            found.append(f"{where}: {name}")
        if owner == "torch" and name == "load" and const.get("weights_only") is not True:
            found.append(f"{where}: torch.load without weights_only=True")
        if owner in {"np", "numpy"} and name == "load" and const.get("allow_pickle") is not False:
            found.append(f"{where}: np.load without allow_pickle=False")
        if const.get("allow_pickle") is True or const.get("weights_only") is False:
            found.append(f"{where}: allow_pickle=True / weights_only=False")
    return found


def test_package_source_never_unpickles():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    found = [v for f in files for v in _violations(f.read_text(), str(f.relative_to(PACKAGE)))]
    assert found == []


def test_the_source_check_finds_what_it_should():
    bad = """
import pickle, torch, numpy as np, pandas as pd
pickle.load(f); pickle.loads(b); torch.load(p); torch.load(p, weights_only=False)
np.load(p); np.load(p, allow_pickle=True); pd.read_pickle(p)
"""
    # 7 bad calls; the two with an explicit unsafe flag are reported twice
    assert len(_violations(bad, "bad.py")) == 9
    good = "torch.load(p, weights_only=True); np.load(p, allow_pickle=False)"
    assert _violations(good, "good.py") == []


# ------------------------------------------------------------------------------------------
# Output stays inside the chosen folder


def test_run_writes_only_inside_its_folder(tiny_run):
    root = tiny_run.parent
    assert sorted(p.name for p in root.iterdir()) == ["out"]  # nothing escaped via the name
    names = {p.name for p in tiny_run.iterdir()}
    # and no temporary file left behind (the empty lock file stays: vaelik.rundir.lock)
    assert set(RUN_FILES) | {"config.json", LOCK_FILE} == names
    assert all(p.is_file() for p in tiny_run.iterdir())


def test_overwrite_removes_only_run_files(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "notes.txt").write_text("mine")
    (run / "sub").mkdir()
    (run / ".eval.json.k1ll3d.tmp").write_text("stale")
    prepare_run_dir(run, overwrite=True)  # checks only: the old run stays until the new one starts
    assert {p.name for p in run.iterdir()} == {p.name for p in tiny_run.iterdir()} | {
        "notes.txt", "sub", ".eval.json.k1ll3d.tmp"}
    clear_run_files(run)
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "config.json", "notes.txt", "sub"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("../evil", "evil"),
        ("../../etc/passwd", "etc_passwd"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("<script>alert(1)</script>", "script_alert_1_script"),
        ("", "run"),
        (".", "run"),
        ("..", "run"),
        ("/", "run"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("a..b", "a.b"),
        ("normal learned s0", "normal_learned_s0"),
        ("normal-learned-vae-z8-s0", "normal-learned-vae-z8-s0"),
        ("σ=0.1", "0.1"),
        ("x" * 500, "x" * MAX_RUN_NAME),
    ],
)
def test_safe_run_name_examples(text, expected):
    assert safe_run_name(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=1, max_value=120))
def test_safe_run_name_properties(text, limit):
    name = safe_run_name(text, limit)
    assert SAFE.fullmatch(name)
    assert 1 <= len(name) <= limit
    assert ".." not in name and not name.startswith((".", "-", "_"))
    assert safe_run_name(name, limit) == name  # idempotent
    root = Path("/srv/sweep")
    assert (root / name).resolve().parent == root  # one level below, never outside
    if SAFE.fullmatch(text) and ".." not in text and len(text) <= limit and text[0] not in ".-_" \
            and text[-1] not in ".-_":
        assert name == text  # a name that follows the rules is kept as it is


def test_safe_run_name_rejects_a_bad_limit():
    with pytest.raises(ValueError, match="limit"):
        safe_run_name("a", 0)
