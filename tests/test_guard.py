"""Who may write a run directory, and when (issue 13, "guard").

- everything is checked before the first write; ``--overwrite`` replaces an old
  run only once the new one is set up;
- one owner per run directory (``vaelik/rundir/lock.py``); no run inside another
  run or a sweep folder the run does not belong to;
- a fingerprint (config and data sha256) that ``--resume`` and ``evaluate`` check;
- SIGTERM stops a run as Ctrl-C does; unwritable outputs and device errors exit 2;
- write probes and the lock never follow a symbolic link.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelik.cli import EXIT_TERMINATED, main
from vaelik.config import TrainConfig
from vaelik.errors import InputError
from vaelik.inference import fit, resume
from vaelik.inference.run import check_device_available, evaluate_run, load_fitted
from vaelik.rundir import read_status, write_status
from vaelik.rundir.fingerprint import FINGERPRINT_KEY, config_sha256
from vaelik.rundir.lock import (
    LOCK_FILE,
    SWEEP_MARKERS,
    check_new_run_dir,
    hold_run_dir,
    sweep_owns,
)

#: a data set small enough that a fit with its evaluation takes a second or two
SMALL = dict(epochs=2, hidden_dim=8, latent_dim=2, iwae_samples=5, batch_size=16, name="run")


def tree_digest(folder: Path) -> str:
    """Hash of every file name and content under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


def _data(path: Path, seed: int = 0) -> Path:
    np.save(path, np.random.default_rng(seed).random((100, 5)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A completed run on a small data file (the file lies beside the run)."""
    root = tmp_path_factory.mktemp("guard")
    data = _data(root / "data.npy")
    fit(TrainConfig(data=str(data), **SMALL), root / "run", progress=False)
    return root / "run"


def _copy(done: Path, tmp_path: Path) -> Path:
    """A copy of the completed run and its data file (same relative layout)."""
    shutil.copy(done.parent / "data.npy", tmp_path / "data.npy")
    run = tmp_path / "run"
    shutil.copytree(done, run)
    record = json.loads((run / "config.json").read_text())
    assert record["data"] == str(done.parent / "data.npy")
    return run


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vaelik: error: ")
    return lines[0]


# ------------------------------------------------------------------------------------------
# 1. Check everything before the first write


@pytest.mark.parametrize(("values", "message"), [
    ({"lr": "0.01"}, "lr must be a positive number, got '0.01'"),
    ({"seed": 2**40}, f"seed must be an integer from 0 to {2**32 - 1}, got {2**40}"),
    ({"seed": 2**32}, f"seed must be an integer from 0 to {2**32 - 1}, got {2**32}"),
    ({"epochs": True}, "epochs must be an integer >= 1, got True"),
    ({"lr": True}, "lr must be a positive number, got True"),
    ({"scale": True}, "scale must be a positive number (a fixed scale) or a scale mode name, "
                      "got True"),
    ({"scale": -1.0}, "scale must be a positive finite number, got -1.0"),
    ({"data": 3}, "data must be a non-empty text, got 3"),
    ({"name": 5}, "name must be a non-empty text or none, got 5"),
    ({"data_key": ["a"]}, "data-key must be a non-empty text or none, got ['a']"),
    ({"device": "cudafoo"}, "device must be 'cpu' or 'cuda[:N]', got 'cudafoo'"),
    ({"data_options": {"n": [1, 2]}}, "data-opt n must be a number or a text, got [1, 2]"),
    ({"likelihood_options": {"df": float("inf")}}, "lik-opt df must be a number or a text, got inf"),
])
def test_check_refuses_wrong_types_and_ranges_with_one_line(values, message):
    with pytest.raises(InputError) as e:
        TrainConfig(**values).check()
    assert str(e.value) == message


def test_check_turns_numpy_scalars_and_paths_into_what_config_json_stores(tmp_path):
    config = TrainConfig(lr=np.float32(0.5), seed=np.int64(7), data=tmp_path / "x.npy",
                         data_options={"n": np.int64(3)}).check()
    assert type(config.lr) is float and type(config.seed) is int and config.seed == 7
    assert config.data == str(tmp_path / "x.npy") and type(config.data_options["n"]) is int
    json.dumps(config.to_dict())  # JSON-ready


def test_the_cli_refuses_what_the_api_refuses(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "o"), "--seed", str(2**40)]) == 2
    assert _one_line(capsys) == (f"vaelik: error: seed must be an integer from 0 to "
                                 f"{2**32 - 1}, got {2**40}")
    assert not (tmp_path / "o").exists()


def test_overwrite_with_bad_input_keeps_the_completed_run(done, tmp_path, capsys):
    run = _copy(done, tmp_path)
    before = tree_digest(run)
    assert main(["train", "--out", str(run), "--overwrite", "--seed", "4294967296"]) == 2
    _one_line(capsys)
    with pytest.raises(InputError, match="seed"):
        fit(TrainConfig(data=str(tmp_path / "data.npy"), **{**SMALL, "seed": 2**40}), run,
            overwrite=True, progress=False)
    assert tree_digest(run) == before and read_status(run) == "completed"


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_to_set_up(done, tmp_path,
                                                                       monkeypatch):
    """A failure after all checks, while the new run is set up (here: its schedule)."""
    from vaelik.inference import run as run_module

    run = _copy(done, tmp_path)
    before = tree_digest(run)

    def broken(*args, **kwargs):
        raise RuntimeError("set-up failed")

    monkeypatch.setattr(run_module, "make_schedule", broken)
    config = TrainConfig(data=str(tmp_path / "data.npy"), **{**SMALL, "seed": 3})
    with pytest.raises(RuntimeError, match="set-up failed"):
        fit(config, run, overwrite=True, progress=False)
    assert tree_digest(run) == before and read_status(run) == "completed"
    with pytest.raises(RuntimeError, match="set-up failed"):  # a new folder is not left behind
        fit(config, tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


def test_overwrite_replaces_every_file_of_the_old_run(done, tmp_path):
    run = _copy(done, tmp_path)
    (run / ".eval.json.abc.tmp").write_text("stale")
    config = TrainConfig(data=str(tmp_path / "data.npy"), **{**SMALL, "seed": 3, "epochs": 1})
    fit(config, run, overwrite=True, progress=False, evaluate=False)
    record = json.loads((run / "config.json").read_text())
    assert record["seed"] == 3 and not (run / "eval.json").exists()
    assert not (run / ".eval.json.abc.tmp").exists()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1


# ------------------------------------------------------------------------------------------
# 2. One owner per run directory


def test_a_second_writer_is_refused_with_one_line(done, tmp_path, capsys):
    run = _copy(done, tmp_path)
    before = tree_digest(run)
    with hold_run_dir(run):
        assert main(["train", "--out", str(run), "--overwrite", "--data",
                     str(tmp_path / "data.npy"), "--epochs", "1", "--batch-size", "16",
                     "--quiet"]) == 2
        line = _one_line(capsys)
        assert "is in use by another vaelik process" in line
        assert main(["evaluate", str(run)]) == 2
        assert "in use by another vaelik process" in _one_line(capsys)
        write_status(run, "interrupted")
        assert main(["train", "--resume", str(run), "--quiet"]) == 2
        assert "in use by another vaelik process" in _one_line(capsys)
        write_status(run, "completed")
    assert tree_digest(run) == before
    with hold_run_dir(run):  # released after each refusal and after the fit
        pass


_HOLDER = """
import sys
from vaelik.rundir.lock import hold_run_dir
with hold_run_dir(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_writer_in_another_process_is_refused(done, tmp_path, capsys):
    run = _copy(done, tmp_path)
    before = tree_digest(run)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # waits for the holder, no deadline
        assert main(["train", "--out", str(run), "--overwrite", "--data",
                     str(tmp_path / "data.npy"), "--batch-size", "16", "--quiet"]) == 2
        assert "in use by another vaelik process" in _one_line(capsys)
    finally:
        holder.communicate("", timeout=300)
    assert tree_digest(run) == before


def _fake_sweep(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in (*SWEEP_MARKERS, "grid.toml"):
        (folder / name).write_text("")
    return folder


def test_no_run_inside_a_run_or_a_sweep_unless_the_sweep_owns_it(done, tmp_path):
    run = _copy(done, tmp_path)
    with pytest.raises(InputError, match="inside the run directory"):
        check_new_run_dir(run / "inner")
    with pytest.raises(InputError, match="inside the run directory"):
        check_new_run_dir(run / "a" / "b")
    sweep = _fake_sweep(tmp_path / "sweep")
    with pytest.raises(InputError, match="inside the sweep folder"):
        check_new_run_dir(sweep / "mine")
    with pytest.raises(InputError, match="is a sweep folder"):
        check_new_run_dir(sweep)
    with sweep_owns(sweep):
        check_new_run_dir(sweep / "its-run")  # the sweep's own worker
        with pytest.raises(InputError, match="is a sweep folder"):
            check_new_run_dir(sweep)
    with pytest.raises(InputError, match="inside the sweep folder"):
        check_new_run_dir(sweep / "its-run")  # ownership ends with the block
    with pytest.raises(InputError, match=r"holds run directories \(run\)"):
        check_new_run_dir(tmp_path)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text("{}")  # another tool's config.json
    check_new_run_dir(tmp_path / "plain" / "new")


def test_sweep_markers_are_the_sweep_packages_files():
    from vaelik.sweep.driver import LOCK_FILE as SWEEP_LOCK
    from vaelik.sweep.table import SWEEP_CSV

    assert set(SWEEP_MARKERS) == {SWEEP_LOCK, SWEEP_CSV}


def test_train_out_into_a_sweep_folder_leaves_it_unchanged(tmp_path, capsys):
    sweep = _fake_sweep(tmp_path / "sweep")
    before = tree_digest(sweep)
    for out in (sweep, sweep / "mine"):
        assert main(["train", "--out", str(out), "--overwrite", "--epochs", "1", "--quiet"]) == 2
        _one_line(capsys)
    assert tree_digest(sweep) == before


# ------------------------------------------------------------------------------------------
# 3. The fingerprint


def test_fingerprint_is_in_config_json_and_the_checkpoint(done):
    record = json.loads((done / "config.json").read_text())
    fp = record[FINGERPRINT_KEY]
    data = (done.parent / "data.npy").read_bytes()
    assert fp["data"] == {"kind": "file", "path": str(done.parent / "data.npy"),
                          "sha256": hashlib.sha256(data).hexdigest()}
    fields = TrainConfig.from_dict(record).to_dict()
    assert fp["config"] == hashlib.sha256(json.dumps(
        fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert fp["config"] == config_sha256(fields)
    state = torch.load(done / "checkpoint.pt", weights_only=True)
    assert json.loads(state[FINGERPRINT_KEY]) == fp


def test_builtin_data_is_fingerprinted_by_name_and_resolved_options(tmp_path):
    from vaelik.inference import build
    from vaelik.inference.run import fingerprint

    config = TrainConfig(data="ppca", data_options={"n": 200, "sigma": 0.5}).check()
    fp = fingerprint(config, build(config)[0])["data"]
    assert fp["kind"] == "builtin" and fp["name"] == "ppca"
    assert fp["params"] == {"n": 200, "d": 20, "k": 4, "sigma": 0.5, "data_seed": 0}
    other = TrainConfig(data="ppca", data_options={"n": 200, "sigma": 0.05}).check()
    assert fingerprint(other, build(other)[0])["data"]["sha256"] != fp["sha256"]


def test_resume_and_evaluate_refuse_a_changed_data_file(done, tmp_path, capsys):
    run = _copy(done, tmp_path)
    record = json.loads((run / "config.json").read_text())
    record["data"] = str(tmp_path / "data.npy")  # this copy's file (same bytes)
    record[FINGERPRINT_KEY]["config"] = config_sha256(TrainConfig.from_dict(record).to_dict())
    (run / "config.json").write_text(json.dumps(record))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"] = json.dumps(TrainConfig.from_dict(record).to_dict(), sort_keys=True)
    state[FINGERPRINT_KEY] = json.dumps(record[FINGERPRINT_KEY])
    torch.save(state, run / "checkpoint.pt")
    assert evaluate_run(run)["elbo"] is not None  # the same data: accepted
    _data(tmp_path / "data.npy", seed=1)  # same shape, other values
    before = tree_digest(run)
    assert main(["evaluate", str(run)]) == 2
    line = _one_line(capsys)
    assert f"the data file {tmp_path / 'data.npy'} changed since the run started (sha256" in line
    assert tree_digest(run) == before
    write_status(run, "interrupted")
    before = tree_digest(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "changed since the run started" in _one_line(capsys)
    assert tree_digest(run) == before


def test_evaluate_and_resume_name_the_edited_field(done, tmp_path, capsys):
    run = _copy(done, tmp_path)
    record = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**record, "likelihood": "laplace"}))
    before = tree_digest(run)
    assert main(["evaluate", str(run)]) == 2
    assert "was edited since the run started: likelihood normal -> laplace" in _one_line(capsys)
    write_status(run, "interrupted")
    before = tree_digest(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "likelihood normal -> laplace" in _one_line(capsys)
    assert tree_digest(run) == before


def test_an_edit_the_checkpoint_cannot_show_is_found_by_the_hash(done, tmp_path):
    """config.json and the checkpoint's config both edited: the recorded hash differs."""
    run = _copy(done, tmp_path)
    record = json.loads((run / "config.json").read_text())
    record = {**record, "data": str(tmp_path / "data.npy"), "iwae_samples": 7}
    (run / "config.json").write_text(json.dumps(record))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"] = json.dumps(TrainConfig.from_dict(record).to_dict(), sort_keys=True)
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(InputError, match="was edited since the run started .*sha256"):
        load_fitted(run)


def test_a_run_without_a_fingerprint_still_resumes_and_evaluates(done, tmp_path):
    run = _copy(done, tmp_path)
    record = json.loads((run / "config.json").read_text())
    del record[FINGERPRINT_KEY]
    record["data"] = str(tmp_path / "data.npy")
    (run / "config.json").write_text(json.dumps(record))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state[FINGERPRINT_KEY]
    state["config"] = json.dumps(TrainConfig.from_dict(record).to_dict(), sort_keys=True)
    torch.save(state, run / "checkpoint.pt")
    _data(tmp_path / "data.npy", seed=1)  # nothing recorded to tell: accepted, as before
    assert evaluate_run(run)["elbo"] is not None
    write_status(run, "interrupted")
    assert resume(run, progress=False).status == "completed"
    assert read_status(run) == "completed"


# ------------------------------------------------------------------------------------------
# 4. Signals, unwritable outputs, devices


def test_sigterm_marks_a_run_interrupted_and_exits_143(tmp_path):
    data = _data(tmp_path / "data.npy")
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaelik.cli", "train", "--data", str(data), "--out", str(run),
         "--epochs", "100000", "--hidden-dim", "8", "--batch-size", "16", "--patience", "0",
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for _ in range(6000):  # wait for the first checkpoint (a file, not a deadline)
            if (run / "checkpoint.pt").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_TERMINATED == 143, err
    assert err.strip() == "vaelik: terminated (SIGTERM)"
    assert read_status(run) == "interrupted"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] >= 1  # resumable


def test_device_errors_are_one_line(monkeypatch, tmp_path, capsys):
    with pytest.raises(InputError, match="device must be"):
        check_device_available("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="torch sees no CUDA device; use --device cpu"):
        check_device_available("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match="torch sees 1 CUDA device"):
        check_device_available("cuda:3")
    assert main(["demo", "--device", "tpu", "--out", str(tmp_path / "demo"), "--quiet"]) == 2
    _one_line(capsys)
    assert not (tmp_path / "demo").exists()


def _read_only(monkeypatch):
    """Make the lock file of any run directory fail as on a read-only file system."""
    from vaelik.rundir import lock

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(lock, "_open_no_follow", refuse)


def test_evaluate_and_resume_on_a_read_only_run_exit_2(done, tmp_path, monkeypatch, capsys):
    run = _copy(done, tmp_path)
    _read_only(monkeypatch)
    assert main(["evaluate", str(run)]) == 2
    line = _one_line(capsys)
    assert "cannot write to run directory" in line and "Read-only file system" in line
    write_status(run, "interrupted")
    before = tree_digest(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "Read-only file system" in _one_line(capsys)
    assert tree_digest(run) == before


def test_an_oserror_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from vaelik.sweep import driver

    grid = tmp_path / "g.toml"
    grid.write_text('epochs = 1\nhidden_dim = 8\n[grid]\nseed = [0]\n')

    class ReadOnlyLock:
        def __init__(self, path, timeout):
            self.path = path

        def acquire(self):
            raise OSError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(driver, "FileLock", ReadOnlyLock)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    line = _one_line(capsys)
    assert "Read-only file system" in line and ".sweep.lock" in line


def test_report_outputs_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dir.html").mkdir()
    for output, part in ((tmp_path / "dir.html", "folder"),
                         (tmp_path / "afile" / "r.html", "cannot write the report")):
        assert main(["report", str(tmp_path / "runs"), "-o", str(output)]) == 2
        assert part in _one_line(capsys)


# ------------------------------------------------------------------------------------------
# 5. Probes never follow links


def test_a_planted_write_test_link_is_never_followed(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".write-test").symlink_to(precious)
    fit(TrainConfig(data=str(_data(tmp_path / "data.npy")), **{**SMALL, "epochs": 1}), out,
        progress=False, evaluate=False)
    assert precious.read_text() == "keep me"
    assert (out / ".write-test").is_symlink()  # not ours: left alone


def test_a_planted_lock_link_is_refused_and_never_followed(tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(precious)
    data = _data(tmp_path / "data.npy")
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "16", "--quiet"]) == 2
    assert "is a symbolic link" in _one_line(capsys)
    assert precious.read_text() == "keep me"
