"""The bits/dim ranking ("which likelihood fits this data best") on planted run directories."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import N_TEST, D, make_run

from vaelik.analysis import load_pointwise, load_runs, write_report
from vaelik.analysis.ranking import bits_per_image, not_ranked, ranking_groups
from vaelik.rundir import (
    CONFIG_FILE,
    EVAL_FILE,
    POINTWISE_COLUMNS,
    POINTWISE_FILE,
    write_csv,
    write_json,
)
from vaelik.rundir.family import FamilyFacts

LN2 = math.log(2)

DNORMAL = FamilyFacts("dnormal", "discretised Normal", "mse", "MSE", "sse", "SSE Σ(x−x̂)²", "σ", None, None,
                      None, False, discrete=True, levels=17)


def plant(root, name, *, likelihood, data="digits", seed=0, log_px, kind, scored, dequantised=None,
          comparable=True, reason="", mse=0.02, scale=0.1, active=5, model="vae", dequantise="auto",
          facts=None):
    """A completed run with ``pointwise.csv`` ``log_px`` planted and the eval.json bits/dim keys set."""
    make_run(root, name, likelihood="normal", seed=seed, data=data, mse=mse, sigma=scale, model=model,
             comparable=comparable, active_units=active)
    run = root / name
    config = json.loads((run / CONFIG_FILE).read_text())
    config.update(likelihood=likelihood, network="mlp", dequantise=dequantise)
    write_json(run / CONFIG_FILE, config)
    pw = pd.read_csv(run / POINTWISE_FILE)
    pw["log_px"] = log_px
    write_csv(run / POINTWISE_FILE, pw, POINTWISE_COLUMNS)
    e = json.loads((run / EVAL_FILE).read_text())
    log_mean = float(np.mean(log_px))
    corr = D * math.log(dequantised) if dequantised else 0.0
    e.update(likelihood=likelihood, log_px=log_mean, bits_per_dim=-(log_mean - corr) / (D * LN2),
             bits_per_dim_kind=kind, scored_data=scored, dequantised=dequantised, comparable=comparable,
             comparable_reason=reason)
    if facts is not None:
        e["family"] = facts.to_dict()
    write_json(run / EVAL_FILE, e)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranking")
    rng = np.random.default_rng(7)
    logs = {}
    # three families on the 17-level digits, two seeds: per-image log p(x) (nats)
    for seed in (0, 1):
        common = rng.normal(0, 3.0, N_TEST)  # image difficulty shared by the families (pairing helps)
        logs["dn", seed] = -40.0 + common + rng.normal(0, 0.3, N_TEST)
        logs["no", seed] = 2.0 + common + rng.normal(0, 0.3, N_TEST)  # a density on (k+u)/17
        logs["cb", seed] = 5.0 + common + rng.normal(0, 0.3, N_TEST)
        plant(root, f"dnormal-s{seed}", likelihood="dnormal", seed=seed, log_px=logs["dn", seed],
              kind="exact", scored="levels=17", facts=DNORMAL, mse=0.010 + seed / 1000, scale=0.05)
        plant(root, f"normal-s{seed}", likelihood="normal", seed=seed, log_px=logs["no", seed],
              kind="bound", scored="levels=17", dequantised=17, mse=0.012, scale=0.08 + seed / 100)
        plant(root, f"cbernoulli-s{seed}", likelihood="cbernoulli", seed=seed, log_px=logs["cb", seed],
              kind="bound", scored="levels=17", dequantised=17, mse=0.015, scale=None, active=3)
    logs["bb"] = -8.0 + rng.normal(0, 1.0, N_TEST)
    plant(root, "bernoulli-binary-s0", likelihood="bernoulli", data="digits-binary", log_px=logs["bb"],
          kind="exact", scored="binary", scale=None)
    # not comparable: a Bernoulli on grey levels, an AE, a density on continuous data, an old run
    plant(root, "bernoulli-grey-s0", likelihood="bernoulli", log_px=rng.normal(-9, 1, N_TEST), kind=None,
          scored=None, comparable=False, reason="Bernoulli on grey levels is not a normalised density (C5)",
          scale=None)
    plant(root, "ae-s0", likelihood="normal", model="ae", log_px=np.full(N_TEST, np.nan), kind=None,
          scored=None, comparable=False,
          reason="deterministic encoder (Delta guide): no importance-sampled log p(x)")
    plant(root, "normal-ppca-s0", likelihood="normal", data="ppca", log_px=rng.normal(10, 1, N_TEST),
          kind="density", scored=None)
    plant(root, "normal-grey-s0", likelihood="normal", log_px=rng.normal(30, 1, N_TEST), kind="density",
          scored=None, dequantise="none")
    return root, logs


def _expected_bits(logs, key, deq):
    return np.concatenate([bits_per_image(logs[key, s], D, deq) for s in (0, 1)])


def test_bits_per_image_is_the_eval_json_conversion():
    log_px = np.array([-30.0, 4.0])
    assert bits_per_image(log_px, D, None) == pytest.approx(-log_px / (D * LN2))
    assert bits_per_image(log_px, D, 17) == pytest.approx(-(log_px - D * math.log(17)) / (D * LN2))
    assert bits_per_image(log_px, D, float("nan")) == pytest.approx(-log_px / (D * LN2))
    # a uniform guess over L levels: log2 L bits, exact mass or zero density on (k+u)/L alike
    assert bits_per_image([-D * math.log(17)], D, None)[0] == pytest.approx(math.log2(17))
    assert bits_per_image([0.0], D, 17)[0] == pytest.approx(math.log2(17))


def test_groups_rank_by_bits_with_paired_standard_errors(planted):
    root, logs = planted
    runs = load_runs(root)
    problems: list[str] = []
    groups = ranking_groups(runs.completed, load_pointwise, problems)
    assert problems == []
    assert [(g.data_id, g.scored_data) for g in groups] == [("digits", "levels=17"),
                                                              ("digits-binary", "binary")]
    table = groups[0].table
    bits = {"dnormal": _expected_bits(logs, "dn", None), "normal": _expected_bits(logs, "no", 17),
            "cbernoulli": _expected_bits(logs, "cb", 17)}
    order = sorted(bits, key=lambda k: bits[k].mean())
    assert table["likelihood"].tolist() == order
    assert table["rank"].tolist() == [1, 2, 3]
    assert (table["bits_per_dim"] > 0).all()
    best = bits[order[0]]
    for row in table.itertuples():
        b = bits[row.likelihood]
        assert row.bits_per_dim == pytest.approx(b.mean(), rel=1e-12)
        assert row.se == pytest.approx(b.std(ddof=1) / math.sqrt(len(b)), rel=1e-9)
        delta = b - best  # pairs: the same seed's split, the same test index
        assert row.pairs == 2 * N_TEST and row.images == 2 * N_TEST and row.runs == 2
        assert row.diff == pytest.approx(delta.mean(), abs=1e-12)
        if row.rank > 1:
            assert row.paired_se == pytest.approx(
                math.sqrt(((delta - delta.mean()) ** 2).sum() / (len(delta) * (len(delta) - 1))), rel=1e-9)
            assert row.paired_se < row.se  # the shared image difficulty cancels in the pairs
    kinds = dict(zip(table["likelihood"], table["kind"], strict=True))
    assert kinds == {"dnormal": "exact", "normal": "bound", "cbernoulli": "bound"}
    dn = table.set_index("likelihood").loc["dnormal"]
    assert dn["mse"] == pytest.approx(0.0105) and dn["learned_scale"] == "σ = 0.05"
    assert table.set_index("likelihood").loc["normal", "learned_scale"] == "σ = 0.085"
    assert table.set_index("likelihood").loc["cbernoulli", "active_units"] == 3
    binary = groups[1].table
    assert binary["likelihood"].tolist() == ["bernoulli"]
    assert binary["bits_per_dim"].iloc[0] == pytest.approx(bits_per_image(logs["bb"], D, None).mean())


def test_runs_left_out_are_listed_with_the_reason(planted):
    root, _ = planted
    left = not_ranked(load_runs(root).completed).set_index("run")
    assert set(left.index) == {"bernoulli-grey-s0", "ae-s0", "normal-ppca-s0", "normal-grey-s0"}
    assert "Bernoulli on grey levels" in left.loc["bernoulli-grey-s0", "reason"]
    assert "deterministic encoder" in left.loc["ae-s0", "reason"]
    assert "continuous data" in left.loc["normal-ppca-s0", "reason"]
    assert "dequantise: none" in left.loc["normal-grey-s0", "reason"]


def test_runs_of_other_seeds_are_not_paired(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.normal(-40, 2, N_TEST), rng.normal(-45, 2, N_TEST)
    plant(tmp_path, "dnormal-s0", likelihood="dnormal", seed=0, log_px=a, kind="exact", scored="levels=17")
    plant(tmp_path, "dlaplace-s1", likelihood="dlaplace", seed=1, log_px=b, kind="exact", scored="levels=17")
    table = ranking_groups(load_runs(tmp_path).completed, load_pointwise)[0].table
    second = table.iloc[1]
    assert second["pairs"] == 0 and math.isnan(second["diff"]) and math.isnan(second["paired_se"])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_report_opens_with_the_ranking(planted, tmp_path):
    root, _ = planted
    report = write_report(root, tmp_path / "r.html", tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    first_table = md.index("### ")
    assert md[first_table:].startswith("### Which likelihood fits digits best (levels = 17)")
    assert md.index("Which likelihood fits") < md.index("Verdicts at a glance")
    assert "Which likelihood fits digits-binary best (binarised data)" in md
    assert "Runs not ranked in bits/dim" in md and "Bernoulli on grey levels" in md
    html = (tmp_path / "r.html").read_text()
    assert html.index("Which likelihood fits") < html.index("Verdicts at a glance")
    assert not any("bits/dim ranking" in p for p in report.problems)
