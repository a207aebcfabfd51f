"""vaelik.rundir.staging and the type checks: all-or-nothing sets, total readers (no torch)."""

from __future__ import annotations

import os

import pytest

from vaelik.rundir import (
    EVAL_FILE,
    EVALUATION_FILES,
    POINTWISE_FILE,
    STAGING_DIR,
    RunFileError,
    Staging,
    read_eval,
    read_json,
    read_status,
    recover,
    write_json,
)
from vaelik.rundir.check import EVAL_TYPES, json_type_problems

SET = (POINTWISE_FILE, "per_dim.csv", EVAL_FILE)


def _write_set(run, version: int, where=None) -> None:
    where = where or (lambda name: run / name)
    for name in SET:
        write_json(where(name), {"version": version})


def _versions(run) -> set:
    return {read_json(run / name)["version"] for name in SET}


def test_a_failure_at_every_rename_leaves_the_old_or_the_new_set(tmp_path, monkeypatch):
    real = os.replace
    counted = []
    monkeypatch.setattr(os, "replace", lambda s, d: (counted.append(d), real(s, d))[1])
    reference = tmp_path / "reference"
    reference.mkdir()
    with Staging(reference, SET) as stage:
        _write_set(reference, 2, stage.path)
        stage.commit()
    monkeypatch.setattr(os, "replace", real)
    seen = set()
    for k in range(1, len(counted) + 1):
        run = tmp_path / f"k{k}"
        run.mkdir()
        _write_set(run, 1)
        calls = []

        def failing(src, dst, k=k, calls=calls):
            calls.append(dst)
            if len(calls) == k:
                raise OSError("injected")
            return real(src, dst)

        monkeypatch.setattr(os, "replace", failing)
        with pytest.raises(OSError), Staging(run, SET) as stage:
            _write_set(run, 2, stage.path)
            stage.commit()
        monkeypatch.setattr(os, "replace", real)
        versions = _versions(run)  # through the readers: one version
        assert len(versions) == 1, (k, versions)
        seen |= versions
        recover(run)
        assert not (run / STAGING_DIR).exists() and not list(run.glob(".*.tmp"))
        assert _versions(run) == versions  # the next run finished (or dropped) the swap
    assert seen == {1, 2}


def test_a_file_the_new_set_lacks_is_removed(tmp_path):
    _write_set(tmp_path, 1)
    with Staging(tmp_path, SET) as stage:
        write_json(stage.path(EVAL_FILE), {"version": 2})
        stage.commit()
    assert not (tmp_path / POINTWISE_FILE).exists() and read_json(tmp_path / EVAL_FILE)["version"] == 2


def test_an_error_before_the_commit_changes_nothing(tmp_path):
    _write_set(tmp_path, 1)
    with pytest.raises(RuntimeError), Staging(tmp_path, SET) as stage:
        _write_set(tmp_path, 2, stage.path)
        raise RuntimeError("killed")
    assert _versions(tmp_path) == {1} and not (tmp_path / STAGING_DIR).exists()
    assert set(EVALUATION_FILES) >= set(SET)


@pytest.mark.parametrize("blob", [b"", b"\xff\xfe", b"[1, 2]", b"{\"a\": ", b"[" * 50_000])
def test_read_json_turns_any_bytes_into_one_line(tmp_path, blob):
    (tmp_path / "x.json").write_bytes(blob)
    with pytest.raises(RunFileError) as err:
        read_json(tmp_path / "x.json", hint="do this")
    assert "\n" not in str(err.value) and str(err.value).endswith("; do this")


def test_eval_json_types_are_checked(tmp_path):
    write_json(tmp_path / EVAL_FILE, {"mse": "0.1", "n_test": True, "scale": None, "converged": 1})
    with pytest.raises(RunFileError, match=r"mse is a string \('0.1'\), expected a number; "
                                           r"n_test is a boolean \(True\), expected an integer; "
                                           r"converged is an integer \(1\), expected true or false"):
        read_eval(tmp_path / EVAL_FILE)
    assert json_type_problems({"ppca": {"elbo": "x"}}, EVAL_TYPES) == [
        "ppca.elbo is a string ('x'), expected a number"]


def test_status_of_any_bytes_is_one_printable_line(tmp_path):
    (tmp_path / "status").write_bytes(b"\x00\x80\x1b[2Jcompleted\r\nmore")
    status = read_status(tmp_path)
    assert status == "\ufffd\ufffd[2Jcompleted" and status.isprintable()
