"""``vaelik compare``: the standard likelihood grid on the user's data, then the bits/dim ranking."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaelik.cli import main
from vaelik.compare import (
    COMPARE_FAMILIES,
    COMPARE_NETWORK_SETTINGS,
    COMPARE_SETTINGS,
    binarised,
    compare_grid,
    run_compare,
)
from vaelik.errors import InputError
from vaelik.sweep import expand

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_grid_on_digits_ranks_a_bernoulli_on_the_binarised_twin():
    grid, notes = compare_grid("digits", levels=17, seeds=2, data_options={"n": 300})
    runs = expand(grid).runs
    assert notes == []
    assert len(runs) == 2 * (len(COMPARE_FAMILIES) + 1)
    configs = {(r.config["likelihood"], r.config["seed"]): r.config for r in runs}
    for lik, scale in COMPARE_FAMILIES:
        assert configs[lik, 1]["scale"] == scale and configs[lik, 1]["data"] == "digits"
        assert configs[lik, 0]["dequantise"] == "auto" and configs[lik, 0]["data_options"] == {"n": 300}
    assert configs["bernoulli", 0]["data"] == "digits-binary"
    assert configs["bernoulli", 0]["data_options"] == {"n": 300}
    assert len({r.name for r in runs}) == len(runs)


def test_image_set_scores_its_bernoulli_on_the_thresholded_images():
    grid, notes = compare_grid("fashion-mnist", levels=256, network="conv", data_options={"n": 500})
    runs = expand(grid).runs
    assert {r.config["likelihood"] for r in runs} == {lik for lik, _ in COMPARE_FAMILIES} | {"bernoulli"}
    assert all(r.config["network"] == "conv" for r in runs)
    assert notes == []
    bern = [r.config for r in runs if r.config["likelihood"] == "bernoulli"]
    assert [(c["data"], c["data_options"]) for c in bern] == [("fashion-mnist", {"n": 500, "threshold": 0.5})]


def test_conv_grid_takes_the_conv_width_and_overrides_win():
    widths = {net: {r.config["hidden_dim"] for r in expand(compare_grid("fashion-mnist", levels=256,
                                                                         network=net)[0]).runs}
              for net in ("mlp", "conv")}
    assert widths == {"mlp": {COMPARE_SETTINGS["hidden_dim"]},
                      "conv": {COMPARE_NETWORK_SETTINGS["conv"]["hidden_dim"]}}
    assert widths["conv"] == {64} and widths["mlp"] == {256}
    grid, _ = compare_grid("fashion-mnist", levels=256, network="conv", overrides={"hidden_dim": 8})
    assert {r.config["hidden_dim"] for r in expand(grid).runs} == {8}


def test_grid_without_binarised_data_skips_the_bernoulli_with_a_note():
    grid, notes = compare_grid("mine.npy", levels=256)
    runs = expand(grid).runs
    assert {r.config["likelihood"] for r in runs} == {lik for lik, _ in COMPARE_FAMILIES}
    assert len(notes) == 1 and notes[0].startswith("bernoulli skipped: mine.npy has 256 grey levels")
    assert binarised("mine.npy", {"n": 10}, 2) == ("mine.npy", {"n": 10})  # binary already


def test_floating_point_data_are_refused(tmp_path, capsys):
    path = tmp_path / "floats.npy"
    np.save(path, np.random.default_rng(0).uniform(size=(50, 16)).astype(np.float32))
    with pytest.raises(InputError, match="no grey levels"):
        run_compare(str(path), tmp_path / "out")
    assert main(["compare", "--data", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "floating-point values (no grey levels)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["compare", "--data", "digits", "--network", "rnn", "--out", str(tmp_path / "o")]) == 2
    assert "unknown network 'rnn'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # figures of 2-epoch fits: degenerate ranges
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_compare_on_digits_end_to_end(tmp_path, capsys):
    pytest.importorskip("vaelik.analysis")
    out = tmp_path / "cmp"
    assert main(["compare", "--data", "digits", "--epochs", "2", "--data-opt", "n=300",
                 "--out", str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr()
    assert "digits (n=300), levels=17: test bits/dim" in printed.out and "1. " in printed.out
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == len(COMPARE_FAMILIES) + 1 and (table["status"] == "completed").all(), table
    md = (out / "report.md").read_text()
    first = md.index("### ")
    assert md[first:].startswith("### Which likelihood fits digits (n=300) best (levels = 17)")
    assert first < md.index("Verdicts at a glance")
    # the first table: every grey-level family, ranked in positive bits/dim, lowest first
    lines = md[first:].split("\n\n")[1].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    ranked = pd.DataFrame(rows, columns=header)
    bits = ranked["bits\\_per\\_dim" if "bits\\_per\\_dim" in header else "bits_per_dim"].astype(float)
    assert sorted(ranked["likelihood"]) == sorted(lik for lik, _ in COMPARE_FAMILIES)
    assert (bits > 0).all() and bits.is_monotonic_increasing
    assert set(ranked["kind"]) == {"exact", "bound"}
    assert "Which likelihood fits digits-binary (n=300) best (binarised data)" in md
    assert "images.npz" not in md  # the (C, H, W) images were read and drawn
    # examples/reference_table.py: the README's table from the same folder, read from eval.json
    spec = importlib.util.spec_from_file_location("reference_table", EXAMPLES / "reference_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ref = module.reference_table(out)
    assert len(ref) == len(table) and list(ref["scored data"]) == ["levels=17"] * 5 + ["binary"]
    assert ref["test bits/dim"].iloc[:5].is_monotonic_increasing
    for _, row in ref.iterrows():
        assert row["test bits/dim"] > 0 and row["wall (s)"] > 0 and row["K"] == 1000
    evals = [json.loads((out / r / "eval.json").read_text()) for r in table["run"]]
    assert sorted(ref["test bits/dim"]) == sorted(e["bits_per_dim"] for e in evals)
    assert "| family | network | scored data |" in module.to_markdown(ref)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # figures of 2-epoch fits: degenerate ranges
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_compare_on_the_real_fashion_mnist_subset(tmp_path):
    """Debian's Fashion-MNIST files: every family in positive bits/dim; the exact masses beat a uniform guess.

    A uniform mass over L levels scores log2(L) bits/dim: 8 for the grey levels, 1 for the
    binarised images. Two epochs on 1,000 training images already beat it with every exact
    mass; a dequantised density's bound can still be above it (the Normal's was 8.4).
    """
    pytest.importorskip("vaelik.analysis")
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    result = run_compare("fashion-mnist", tmp_path / "fm", epochs=2, jobs=2,
                         data_options={"n": 1000, "n_test": 200},
                         overrides={"hidden_dim": 32, "latent_dim": 4, "iwae_samples": 20})
    assert result.notes == [] and result.levels == 256
    evals = {p.name: json.loads((p / "eval.json").read_text()) for p in (tmp_path / "fm").iterdir()
             if (p / "eval.json").is_file()}
    assert len(evals) == len(COMPARE_FAMILIES) + 1
    for name, e in evals.items():
        uniform = 1.0 if e["scored_data"] == "binary" else 8.0
        assert 0 < e["bits_per_dim"] < (uniform if e["bits_per_dim_kind"] == "exact" else 16), (name, e)
        assert e["n_test"] == 200 and e["data_dim"] == 784
    kinds = {e["likelihood"]: (e["scored_data"], e["bits_per_dim_kind"]) for e in evals.values()}
    assert kinds["bernoulli"] == ("binary", "exact") and kinds["dnormal"] == ("levels=256", "exact")
    assert kinds["normal"] == ("levels=256", "bound") and kinds["cbernoulli"] == ("levels=256", "bound")
    md = (tmp_path / "fm" / "report.md").read_text()
    assert "Which likelihood fits fashion-mnist (n=1000, n_test=200) best (levels = 256)" in md


def _fake_compare_run(folder: Path, likelihood: str, log_px: np.ndarray, *, n_test: int | None,
                      dequantised: int | None) -> None:
    """A run directory with just what ``paired_table`` reads (config, eval, pointwise)."""
    folder.mkdir(parents=True)
    params = {} if n_test is None else {"n_test": n_test, "subset_seed": 0}
    info = {"n_test": len(log_px), "params": params}
    (folder / "config.json").write_text(json.dumps({"likelihood": likelihood, "data_info": info}))
    (folder / "eval.json").write_text(json.dumps({
        "likelihood": likelihood, "scored_data": "levels=256", "data_dim": 4, "dequantised": dequantised,
        "family": {"label": likelihood}}))
    pd.DataFrame({"index": np.arange(len(log_px)), "log_px": log_px}).to_csv(folder / "pointwise.csv", index=False)


def test_reference_table_pairs_a_test_subset_with_the_whole_test_set(tmp_path):
    """The subset run's rows are mapped to the official rows; diff and se are computed by hand here."""
    from vaelik.inference.data.arrays import subset_rows

    spec = importlib.util.spec_from_file_location("reference_table", EXAMPLES / "reference_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    whole = rng.normal(-12.0, 1.0, size=50)              # nats per image over the 50 official rows
    rows = subset_rows(50, 20, 0, 1)                      # the official rows an n_test=20 run scores
    sub = whole[rows] + rng.normal(0.5, 0.2, size=20)     # better by about 0.5 nats per image
    _fake_compare_run(tmp_path / "conv" / "dnormal-s0", "dnormal", sub, n_test=20, dequantised=None)
    _fake_compare_run(tmp_path / "mlp" / "dnormal-s0", "dnormal", whole, n_test=None, dequantised=None)
    _fake_compare_run(tmp_path / "mlp" / "normal-s0", "normal", whole, n_test=None, dequantised=256)
    table = module.paired_table(tmp_path / "conv", tmp_path / "mlp")
    assert list(table["family"]) == ["dnormal"]           # normal: only in the second folder
    bits = lambda nats, deq=0.0: -(nats - 4 * deq) / (4 * np.log(2))  # noqa: E731
    diff = bits(sub) - bits(whole[rows])
    row = table.iloc[0]
    assert row["test images"] == 20
    np.testing.assert_allclose(row["bits/dim (first)"], bits(sub).mean(), rtol=1e-12)
    np.testing.assert_allclose(row["bits/dim (second)"], bits(whole[rows]).mean(), rtol=1e-12)
    np.testing.assert_allclose(row["first − second"], diff.mean(), rtol=1e-12)
    np.testing.assert_allclose(row["paired se"], diff.std(ddof=1) / np.sqrt(20), rtol=1e-12)
    assert "| dnormal | levels=256 | 20 |" in module.to_markdown(table)
    # the bound's correction d·log L is applied to a dequantised run's log density
    both = module.paired_table(tmp_path / "mlp", tmp_path / "mlp")
    normal = both.set_index("family").loc["normal, dequantised"]
    np.testing.assert_allclose(normal["bits/dim (first)"], bits(whole, np.log(256)).mean(), rtol=1e-12)
    assert normal["first − second"] == 0.0
