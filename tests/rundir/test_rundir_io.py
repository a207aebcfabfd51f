"""vaelik.rundir: the status, JSON/CSV files and atomic writes of a run directory (no torch)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vaelik.rundir import (
    METRICS_COLUMNS,
    RUN_FILES,
    STATUS_FILE,
    RunFileError,
    Status,
    atomic_path,
    read_csv,
    read_json,
    read_status,
    write_csv,
    write_json,
    write_status,
)


@pytest.mark.parametrize("status", [Status.RUNNING, Status.COMPLETED, Status.INTERRUPTED,
                                    Status.failed("loss was NaN at epoch 3")])
def test_status_round_trip(tmp_path, status):
    write_status(tmp_path, status)
    assert read_status(tmp_path) == status
    assert Status.is_completed(read_status(tmp_path)) == (status == Status.COMPLETED)
    assert Status.word(status) in (Status.RUNNING, Status.COMPLETED, Status.INTERRUPTED, Status.FAILED)


def test_failed_reason_becomes_one_line(tmp_path):
    write_status(tmp_path, Status.failed("ValueError: bad\n  thing\n"))
    assert (tmp_path / STATUS_FILE).read_text() == "failed: ValueError: bad thing\n"
    assert Status.is_failed(read_status(tmp_path)) and not Status.is_completed(read_status(tmp_path))


def test_missing_or_empty_status_reads_none(tmp_path):
    assert read_status(tmp_path) is None
    (tmp_path / STATUS_FILE).write_text("\n")
    assert read_status(tmp_path) is None
    assert Status.word(None) == Status.MISSING and not Status.is_completed(None)


def test_status_reader_takes_the_first_line(tmp_path):
    (tmp_path / STATUS_FILE).write_text("  completed \nwritten by something else\n")
    assert read_status(tmp_path) == "completed"


def test_json_nan_becomes_null_and_arrays_lists(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": np.float32(1.5),
                                     "c": np.arange(3), "d": [np.inf, 2]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": 1.5, "c": [0, 1, 2],
                                                             "d": [None, 2]}
    assert read_json(tmp_path / "x.json")["b"] == 1.5
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        read_json(tmp_path / "list.json")


def test_csv_columns_are_checked_both_ways(tmp_path):
    frame = pd.DataFrame({c: [1.0] for c in METRICS_COLUMNS})
    write_csv(tmp_path / "m.csv", frame, METRICS_COLUMNS)
    assert tuple(read_csv(tmp_path / "m.csv", METRICS_COLUMNS).columns) == METRICS_COLUMNS
    with pytest.raises(ValueError, match="lacks column"):
        write_csv(tmp_path / "bad.csv", frame.drop(columns="kl"), METRICS_COLUMNS)
    assert not (tmp_path / "bad.csv").exists()
    with pytest.raises(RunFileError, match="missing; re-run `vaelik evaluate`"):
        read_csv(tmp_path / "none.csv")
    with pytest.raises(RunFileError, match=r"lacks column\(s\) nope"):
        read_csv(tmp_path / "m.csv", ("epoch", "nope"))


def test_atomic_path_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_run_files_are_the_schema_names():
    assert RUN_FILES == ("status", "eval.json", "checkpoint.pt", "metrics.csv", "pointwise.csv",
                         "per_dim.csv", "images.npz", "posterior.nc")
