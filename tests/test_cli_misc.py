"""CLI guards found by trying vaelik as a new user."""

import json
import os
import stat

import pytest

from vaelik.cli import main

TINY = ["--epochs", "1", "--hidden-dim", "8", "--iwae-samples", "5", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_resume_refuses_configuration_flags(run_dir, capsys):
    (run_dir / "status").write_text("interrupted\n")
    try:
        assert main(["train", "--resume", str(run_dir), "--epochs", "5", "--lr", "0.5"]) == 2
    finally:
        (run_dir / "status").write_text("completed\n")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "drop --epochs, --lr" in err[0]


def test_evaluate_refuses_an_unfinished_run(run_dir, capsys):
    before = (run_dir / "eval.json").read_bytes()
    (run_dir / "status").write_text("interrupted\n")
    try:
        assert main(["evaluate", str(run_dir)]) == 2
    finally:
        (run_dir / "status").write_text("completed\n")
    assert "not completed (status: interrupted)" in capsys.readouterr().err
    assert (run_dir / "eval.json").read_bytes() == before


def test_report_on_a_folder_without_runs(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_run_files_are_readable_by_others(run_dir):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "metrics.csv", "eval.json", "checkpoint.pt", "posterior.nc", "status"):
        mode = stat.S_IMODE((run_dir / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


def test_config_json_records_every_declared_field(run_dir):
    from vaelik.config import FIELDS

    record = json.loads((run_dir / "config.json").read_text())
    assert set(FIELDS) <= set(record)
    assert record["likelihood_options"] == {} and record["name"] == "run"
