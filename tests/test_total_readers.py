"""Total readers and all-or-nothing evaluation (issue 13).

Property tests: one small real run is built once; then, for each file of the run,
random bytes, truncated prefixes, damaged bytes and (for the JSON files and the
checkpoint) values of the wrong type are written into a copy, and

* the analysis loaders never raise (``load_runs``) or raise only ``RunFileError``
  (the per-file loaders), and a run they cannot use is listed as unreadable;
* ``vaelik report``, ``vaelik evaluate`` and ``vaelik train --resume`` either
  succeed or exit 2 with one line on stderr -- never exit 1 ("internal error");
* ``vaelik evaluate`` that refuses changes nothing in the run directory, and one
  that succeeds leaves a readable ``eval.json`` (a corrupt one is repaired).

The CLI runs in-process (``vaelik.cli.main``). The default variant draws a
modest, fixed-seed set of cases (well under a minute on one core); the ``slow``
variant tries every case on every command.

Evaluation is all-or-nothing: a failure injected at the k-th ``os.replace`` of
an evaluation, for every k, leaves the old or the new set of evaluation files,
as readers see them and after the next run's recovery.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelik.analysis import load_images, load_per_dim, load_pointwise, load_runs
from vaelik.analysis.arviz_io import load_run_data
from vaelik.cli import main
from vaelik.inference import TrainConfig, evaluate_run, fit
from vaelik.rundir import (
    EVAL_FILE,
    EVALUATION_FILES,
    IMAGES_FILE,
    METRICS_FILE,
    PER_DIM_FILE,
    POINTWISE_FILE,
    POSTERIOR_FILE,
    STAGING_DIR,
    STATUS_FILE,
    RunFileError,
    Status,
    read_eval,
    recover,
)

BASE = {"data": "ppca", "data_options": {"n": 200}, "epochs": 2, "hidden_dim": 8, "latent_dim": 2,
        "batch_size": 32, "iwae_samples": 5, "name": "base"}
#: files whose damage makes a completed run unusable for the analysis
ESSENTIAL = ("config.json", EVAL_FILE, METRICS_FILE)
#: files each command reads (a command is tried on the others only in the slow variant)
READS = {"evaluate": ("config.json", "checkpoint.pt", METRICS_FILE, EVAL_FILE, STATUS_FILE),
         "resume": ("config.json", "checkpoint.pt", METRICS_FILE, STATUS_FILE)}
WRONG_VALUES = ([1], {"a": 1}, "zz", -1, None, True, 2.5)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A completed 2-epoch run on 200 pPCA points (its checkpoint is at its last epoch)."""
    run = tmp_path_factory.mktemp("total") / "base"
    fit(TrainConfig(**BASE), run, progress=False)
    assert Status.is_completed((run / STATUS_FILE).read_text())
    return run


# ------------------------------------------------------------------------------------------
# the damaged files


def _checkpoint_damages(data: bytes) -> list[tuple[str, bytes]]:
    state = torch.load(io.BytesIO(data), weights_only=True)

    def changed(edit) -> bytes:
        new = copy.deepcopy(state)
        edit(new)
        buffer = io.BytesIO()
        torch.save(new, buffer)
        return buffer.getvalue()

    first = next(iter(state["params"]))
    return [
        ("rng-empty", changed(lambda s: s.__setitem__("rng", {}))),
        ("rng-torch-empty", changed(lambda s: s["rng"].__setitem__("torch", torch.zeros(0, dtype=torch.uint8)))),
        ("rng-python-empty", changed(lambda s: s["rng"].__setitem__("python", []))),
        ("rng-numpy-short", changed(lambda s: s["rng"]["numpy"].__setitem__("keys", torch.zeros(3, dtype=torch.int64)))),
        ("params-empty", changed(lambda s: s.__setitem__("params", {}))),
        ("params-shape", changed(lambda s: s["params"].__setitem__(first, torch.zeros(1)))),
        ("epoch-text", changed(lambda s: s.__setitem__("epoch", "x"))),
        ("epoch-negative", changed(lambda s: s.__setitem__("epoch", -3))),
        ("metrics-numbers", changed(lambda s: s.__setitem__("metrics", [1, 2]))),
        ("optimizer-empty", changed(lambda s: s.__setitem__("optimizer", {}))),
        ("optimizer-moments", changed(lambda s: [e.__setitem__("exp_avg", torch.zeros(2, 2))
                                                 for e in s["optimizer"]["state"].values()])),
        ("best-text", changed(lambda s: s.__setitem__("best", {"epoch": "x"}))),
        ("best-params", changed(lambda s: s["best"].__setitem__("params", {"a": 1}))),
        ("schedule-text", changed(lambda s: s.__setitem__("schedule", {"factor": "x"}))),
        ("config-number", changed(lambda s: s.__setitem__("config", 3))),
    ]


def damages(name: str, data: bytes, rng: random.Random, many: bool) -> list[tuple[str, bytes]]:
    """Damaged contents for the file ``name`` whose good bytes are ``data``."""
    cuts = sorted({1, len(data) // 3, len(data) // 2, len(data) - 1} if many else {len(data) // 2})
    out = [("random", bytes(rng.randrange(256) for _ in range(rng.choice((7, 64, 700))))),
           ("empty", b""), ("not-utf8", b"\xff\xfe\x80" + data[:40])]
    out += [(f"prefix-{c}", data[:c]) for c in cuts if 0 < c < len(data)]
    if len(data) > 64:
        flipped = bytearray(data)
        for i in range(len(data) // 2, len(data) // 2 + 16):
            flipped[i] ^= 0xA5
        out.append(("flipped", bytes(flipped)))
    if name.endswith(".json"):
        record = json.loads(data)
        out += [(f"json-{type(v).__name__}", json.dumps(v).encode()) for v in ([1, 2], "x", 3, None)]
        out.append(("json-deep", b"[" * 100_000 + b"]" * 100_000))
        keys = list(record) if many else rng.sample(list(record), 4)
        for i, key in enumerate(keys):
            values = WRONG_VALUES if many else (WRONG_VALUES[i % len(WRONG_VALUES)],)
            out += [(f"{key}={v!r}", json.dumps({**record, key: v}).encode()) for v in values]
    if name == "checkpoint.pt":
        out += _checkpoint_damages(data)
    if name == METRICS_FILE:
        out.append(("text-in-numbers", text_in_numbers(data)))
    return out


def text_in_numbers(csv: bytes) -> bytes:
    """A CSV whose second data row holds text where numbers belong."""
    lines = csv.split(b"\n")
    lines[2] = lines[2].replace(b",", b",abc", 3)
    return b"\n".join(lines)


# ------------------------------------------------------------------------------------------
# running a command


def cli(*argv: str) -> tuple[int, str]:
    """``vaelik ARGV`` in this process: exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse's --help
            code = e.code if isinstance(e.code, int) else 1
    return code, err.getvalue()


def assert_clean(code: int, err: str, what: str) -> None:
    """Success, or exit 2 with exactly one line (``vaelik: error: ...``); never exit 1."""
    assert code in (0, 2), f"{what}: exit {code}: {err}"
    assert "internal error" not in err and "Traceback" not in err, f"{what}: {err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vaelik: error: "), f"{what}: {err!r}"


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _damaged_copy(base: Path, tmp: Path, name: str, blob: bytes, status: str | None = None) -> Path:
    shutil.rmtree(tmp, ignore_errors=True)
    run = tmp / "runs" / "base"
    shutil.copytree(base, run)
    if status is not None:
        (run / STATUS_FILE).write_text(status + "\n")
    (run / name).write_bytes(blob)
    return run


def check_loaders(run: Path, name: str, what: str) -> None:
    """The analysis never raises anything but RunFileError, and lists a run it cannot use."""
    runs = load_runs(run.parent)
    assert len(runs.runs) == 1, what
    row = runs.runs.iloc[0]
    if Status.word(row["status"]) == Status.UNREADABLE:
        assert not row["completed"] and any("unreadable" in p for p in runs.problems), what
    for loader in (load_pointwise, load_per_dim, load_images):
        with contextlib.suppress(RunFileError):
            loader(run)
    with contextlib.suppress(RunFileError):
        load_run_data(run / POSTERIOR_FILE)


def check_commands(base: Path, tmp: Path, name: str, blob: bytes, what: str, *,
                   report: bool, every_command: bool) -> None:
    run = _damaged_copy(base, tmp, name, blob)
    check_loaders(run, name, what)
    if report:
        out = tmp / "report" / "report.html"
        code, err = cli("report", str(run.parent), "-o", str(out))
        assert_clean(code, err, f"report, {what}")
        if code == 0 and name in ESSENTIAL and not Status.is_completed(load_runs(run).runs.iloc[0]["status"]):
            assert "unreadable" in out.with_suffix(".md").read_text(), what  # listed with its reason
    if every_command or name in READS["evaluate"]:
        before = digest(run)
        code, err = cli("evaluate", str(run), "--iwae-samples", "3")
        assert_clean(code, err, f"evaluate, {what}")
        if code == 2:
            assert digest(run) == before, f"evaluate refused but changed the run: {what}"
        else:
            read_eval(run / EVAL_FILE)  # written whole (a damaged eval.json is repaired)
            assert not (run / STAGING_DIR).exists()
    if (every_command or name in READS["resume"]) and name != STATUS_FILE:
        run = _damaged_copy(base, tmp, name, blob, status=Status.INTERRUPTED)
        code, err = cli("train", "--resume", str(run), "--quiet")
        assert_clean(code, err, f"train --resume, {what}")
    if name == STATUS_FILE:  # a damaged status is a run that is not completed: resumable
        code, err = cli("train", "--resume", str(run), "--quiet")
        assert_clean(code, err, f"train --resume, {what}")


FILES = ("config.json", STATUS_FILE, METRICS_FILE, "checkpoint.pt", EVAL_FILE, POINTWISE_FILE,
         PER_DIM_FILE, IMAGES_FILE, POSTERIOR_FILE)
#: files whose damage the fast variant also shows to ``vaelik report`` (~5 s a report)
REPORTED = (STATUS_FILE, "config.json", IMAGES_FILE)


@pytest.mark.parametrize("name", FILES)
def test_any_bytes_in_a_run_file_are_a_problem_or_one_exit_2_line(base_run, tmp_path, name):
    rng = random.Random(f"total-{name}")
    data = (base_run / name).read_bytes()
    cases = damages(name, data, rng, many=False)
    reported = {cases[3][0]} if name in REPORTED else set()  # a truncated file
    for label, blob in cases:
        check_commands(base_run, tmp_path, name, blob, f"{name} {label}",
                       report=label in reported, every_command=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_any_bytes_in_a_run_file_every_case_every_command(base_run, tmp_path, name):
    rng = random.Random(f"total-slow-{name}")
    data = (base_run / name).read_bytes()
    for i, (label, blob) in enumerate(damages(name, data, rng, many=True)):
        # a report takes seconds: every byte-level damage, one wrong-typed value in seven
        check_commands(base_run, tmp_path, name, blob, f"{name} {label}",
                       report="=" not in label or i % 7 == 0, every_command=True)


def test_a_wrong_typed_eval_json_is_listed_and_repaired_by_evaluate(base_run, tmp_path):
    record = json.loads((base_run / EVAL_FILE).read_text())
    run = _damaged_copy(base_run, tmp_path, EVAL_FILE, json.dumps({**record, "mse": "low"}).encode())
    runs = load_runs(run)
    status = runs.runs.iloc[0]["status"]
    assert status.startswith("unreadable: eval.json: mse is a string ('low'), expected a number")
    assert any("re-run `vaelik evaluate`" in p for p in runs.problems)
    assert cli("evaluate", str(run))[0] == 0
    assert isinstance(read_eval(run / EVAL_FILE)["mse"], float)
    assert load_runs(run).runs.iloc[0]["completed"]


def test_wrong_typed_config_is_one_line_naming_the_field(base_run, tmp_path):
    record = json.loads((base_run / "config.json").read_text())
    run = _damaged_copy(base_run, tmp_path, "config.json", json.dumps({**record, "data": ["ppca"]}).encode())
    code, err = cli("evaluate", str(run))
    assert code == 2 and "data is a list (['ppca']), expected a string" in err, err


def test_an_empty_rng_state_refuses_resume_before_any_change(base_run, tmp_path):
    blob = dict(_checkpoint_damages((base_run / "checkpoint.pt").read_bytes()))["rng-empty"]
    run = _damaged_copy(base_run, tmp_path, "checkpoint.pt", blob, status=Status.INTERRUPTED)
    before = digest(run)
    code, err = cli("train", "--resume", str(run), "--quiet")
    assert code == 2 and "is damaged (its RNG state" in err and "--overwrite" in err, err
    assert digest(run) == before


# ------------------------------------------------------------------------------------------
# all-or-nothing evaluation


def test_a_corrupt_metrics_csv_stops_evaluate_before_it_writes(base_run, tmp_path):
    data = (base_run / METRICS_FILE).read_bytes()
    run = _damaged_copy(base_run, tmp_path, METRICS_FILE, text_in_numbers(data))
    before = digest(run)
    code, err = cli("evaluate", str(run))
    assert code == 2 and "metrics.csv" in err and "not a number" in err, err
    assert digest(run) == before and not (run / STAGING_DIR).exists()


def _set_key(run: Path, via_readers: bool) -> dict[str, str]:
    """What identifies each evaluation file's version (read through the readers or directly)."""
    def path(name: str) -> Path:
        return run / name

    keys = {}
    if via_readers:
        keys[EVAL_FILE] = repr(read_eval(run / EVAL_FILE)["log_px_samples"])
        keys[POINTWISE_FILE] = f"{load_pointwise(run)['log_px'].sum():.6f}"
        keys[PER_DIM_FILE] = f"{load_per_dim(run)['mse'].sum():.9f}"
        keys[IMAGES_FILE] = hashlib.sha256(load_images(run)["prior_samples"].tobytes()).hexdigest()
        ll = load_run_data(run / POSTERIOR_FILE)
        from vaelik.rundir.posterior import group

        keys[POSTERIOR_FILE] = f"{float(np.asarray(group(ll, 'log_likelihood')['x'].values).sum()):.6f}"
        return keys
    import pandas as pd

    keys[EVAL_FILE] = repr(json.loads(path(EVAL_FILE).read_text())["log_px_samples"])
    keys[POINTWISE_FILE] = f"{pd.read_csv(path(POINTWISE_FILE))['log_px'].sum():.6f}"
    keys[PER_DIM_FILE] = f"{pd.read_csv(path(PER_DIM_FILE))['mse'].sum():.9f}"
    with np.load(path(IMAGES_FILE)) as npz:
        keys[IMAGES_FILE] = hashlib.sha256(np.asarray(npz["prior_samples"]).tobytes()).hexdigest()
    import xarray as xr

    with xr.open_dataset(path(POSTERIOR_FILE), group="log_likelihood", engine="h5netcdf") as ds:
        keys[POSTERIOR_FILE] = f"{float(ds['x'].values.sum()):.6f}"
    return keys


def test_evaluation_is_all_or_nothing_at_every_rename(base_run, tmp_path, monkeypatch):
    """A failure at the k-th rename of an evaluation, for every k: old set or new set."""
    old = _set_key(base_run, via_readers=True)
    reference = tmp_path / "reference"
    shutil.copytree(base_run, reference)
    real_replace, calls = os.replace, []

    def counting(src, dst):
        calls.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    evaluate_run(reference, iwae_samples=7)
    monkeypatch.setattr(os, "replace", real_replace)
    new = _set_key(reference, via_readers=True)
    assert all(old[n] != new[n] for n in EVALUATION_FILES), (old, new)  # every file tells the sets apart
    assert len(calls) > 2 * len(EVALUATION_FILES) and calls[-1] == EVAL_FILE  # eval.json swapped in last

    outcomes = set()
    for k in range(1, len(calls) + 1):
        run = tmp_path / f"k{k}"
        shutil.copytree(base_run, run)
        seen = []

        def failing(src, dst, k=k, seen=seen):
            seen.append(dst)
            if len(seen) == k:
                raise OSError(f"injected failure at rename {k}")
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", failing)
        with pytest.raises(OSError, match="injected"):
            evaluate_run(run, iwae_samples=7)
        monkeypatch.setattr(os, "replace", real_replace)
        seen_by_readers = _set_key(run, via_readers=True)
        assert seen_by_readers in (old, new), f"k={k}: a mixed set {seen_by_readers}"
        outcomes.add("old" if seen_by_readers == old else "new")
        # the next run finishes or discards the swap and removes the debris
        recover(run)
        assert not (run / STAGING_DIR).exists() and not list(run.glob(".*.tmp")), k
        assert _set_key(run, via_readers=False) == seen_by_readers, k
        assert _set_key(run, via_readers=True) == seen_by_readers, k
        shutil.rmtree(run)
    assert outcomes == {"old", "new"}  # both sides of the commit point were hit


def test_the_next_evaluate_cleans_what_a_killed_one_left(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / STAGING_DIR).mkdir()
    (run / STAGING_DIR / EVAL_FILE).write_text("{half")  # staged, never committed
    (run / ".pointwise.csv.abc123.tmp").write_text("x")
    before = _set_key(run, via_readers=True)
    assert before == _set_key(base_run, via_readers=True)  # uncommitted staging is invisible
    assert cli("evaluate", str(run), "--iwae-samples", "3")[0] == 0
    assert not (run / STAGING_DIR).exists() and not list(run.glob(".*.tmp"))
