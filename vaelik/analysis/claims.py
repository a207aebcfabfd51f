"""The claims C1-C8 of the design, one :class:`Claim` entry each: statement, tolerances, judge.

Each entry names its tolerances once, as numbers; the judge compares against
those numbers and the report's tolerance text is generated from them
(:meth:`Claim.tolerance_text`). To add a claim, write its judge and register one
more entry (see ``docs/report.md``)::

    register_claim(Claim("C9", "title", "statement", {"max_gap": 0.5},
                         "|gap| < {max_gap} nats", judge=my_judge))
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from vaelik.rundir.schema import MI_MAX_POINTS

from . import figures
from ._claim import (
    CLAIMS,
    Claim,
    Frames,
    Judgement,
    is_true,
    judge_claims,
    register_claim,
    verdict_of,
)
from ._common import (
    HELD,
    LINEAR_MODELS,
    NOT_MEASURED,
    data_id_of,
    family_of,
    fmt,
    not_measured,
    num,
    scored_split,
)
from .compare import c6_check, c6_frame
from .sigma import per_dim_summary, sigma_over_epochs

__all__ = ["Claim", "Frames", "Judgement", "CLAIMS", "register_claim", "judge_claims", "verdict_of",
           "c7_frame", "c8_frame"]

_LINE_MODES = ["fixed", "learned", "optimal"]


# --------------------------------------------------------------------------- C1

def _judge_c1(f: Frames, tol: Mapping[str, float]) -> Judgement:
    ident = f.identity
    rows = ident[(family_of(ident) == "normal") & ident["scale_mode"].isin(_LINE_MODES)]
    ok = [bool(r.slope_rel_error < tol["slope_rel"] and r.r2 > tol["r2"]) for r in rows.itertuples()]
    others = ident[(family_of(ident) == "normal") & ~ident.index.isin(rows.index)]
    numbers = [f"{r.run}: fitted slope {fmt(r.slope, 8)} vs theory {fmt(r.slope_theory, 8)} "
               f"(relative error {fmt(r.slope_rel_error, 2)}), intercept {fmt(r.intercept, 6)} vs "
               f"{fmt(r.intercept_theory, 6)}, R² = {fmt(r.r2, 8)}" for r in rows.itertuples()]
    numbers += [f"{r.run} ({r.scale_mode}): theory undefined — {r.reason}; fitted R² = {fmt(r.r2, 4)}"
                for r in others.itertuples()]
    both = pd.concat([rows, others])
    return Judgement(verdict_of(ok, "no fixed, learned or optimal Normal run with pointwise.csv"), numbers,
                     [("Normal runs: recon against SSE", both)],
                     [("c1-identity", "recon against SSE per test example, theory line and least-squares fit",
                       figures.plot_identity(f.points, both))])


register_claim(Claim(
    "C1", "Gaussian with fixed σ ⇔ MSE",
    "−log N(x; x̂, σ²I) = d/2·log(2πσ²) + ‖x−x̂‖²/(2σ²): affine in the SSE with slope 1/(2σ²).",
    {"slope_rel": 0.01, "r2": 0.999},
    "|fitted slope / (−1/(2σ²)) − 1| < {slope_rel} and R² > {r2}, every fixed/learned/optimal Normal run",
    _judge_c1,
    "Per test example, the Gaussian reconstruction log-likelihood is a straight line in the summed "
    "squared error: training a Normal likelihood with a fixed σ is training with MSE, rescaled by "
    "1/(2σ²) and shifted by a constant. The slope sets how much reconstruction weighs against the KL."))


# --------------------------------------------------------------------------- C2

def _within(ratio: float, tol: Mapping[str, float]) -> bool:
    """``1 − below < ratio < 1 + above``: a scale's ratio to its target, with the claim's tolerances."""
    return bool(1 - tol["below"] < ratio < 1 + tol["above"])


def _judged_ratio(row) -> tuple[float, str]:
    """The ratio a claim judges, and on which split.

    The training split (where the scale is fitted) when the run wrote it, else the
    test split (runs written before ``scale_ratio_train``).
    """
    train = getattr(row, "ratio_train", math.nan)
    return (float(train), "train") if math.isfinite(float(train)) else (float(row.ratio), "test")


def _judge_c2(f: Frames, tol: Mapping[str, float]) -> Judgement:
    normal = f.sigma[family_of(f.sigma) == "normal"]
    learned = normal[normal["scale_mode"] == "learned"]
    ok = [_within(_judged_ratio(r)[0], tol) for r in learned.itertuples()]
    numbers = [f"{r.run}: σ = {fmt(r.sigma)}, σ²/MSE = {fmt(_judged_ratio(r)[0])} on the "
               f"{_judged_ratio(r)[1]} split (test split: {fmt(r.ratio)}, √MSE = {fmt(r.rmse)}), "
               f"scales at the lower bound: {fmt(r.scales_at_bound)}" for r in learned.itertuples()]
    numbers += [f"{r.run} ({r.scale_mode}, not judged): σ²/MSE = {fmt(r.ratio)}"
                for r in normal[normal["scale_mode"].isin(["optimal", "bayesian"])].itertuples()]
    return Judgement(verdict_of(ok, "no learned-σ Normal run"), numbers,
                     [("Scales of the runs whose family has one", f.sigma)],
                     [("c2-sigma-epochs", "learned scale against √MSE (MAE for Laplace) per epoch",
                       figures.plot_sigma_over_epochs(sigma_over_epochs(f.metrics)))])


register_claim(Claim(
    "C2", "A learned global σ converges to √MSE",
    "For a fixed decoder mean, the maximising σ² is SSE/(N·d) = MSE, so σ²/MSE ≈ 1 after training.",
    {"above": 0.05, "below": 0.05},
    "1 − {below} < σ²/MSE < 1 + {above} on the training split, every learned-σ Normal run",
    _judge_c2,
    "A learned σ is not a free knob: for a given decoder it settles where σ² equals the mean squared "
    "error (MSE measured at z ~ q(z|x), as in the reconstruction term). The figure shows σ tracking "
    "√MSE over training; on the train split it can keep shrinking as the decoder over-fits. "
    "'optimal' sets σ² = MSE by construction and 'bayesian' has a prior pulling σ, so neither is judged. "
    "The ratio is judged on the training split, the data σ is fitted to (the stationary point "
    "σ² = SSE/(N·d) holds there); a σ that lags sits above √MSE. On the test split the error of a "
    "decoder that over-fits a little is larger, which puts σ²/MSE below 1 there (shown, not judged)."))


# --------------------------------------------------------------------------- C3

def _judge_c3(f: Frames, tol: Mapping[str, float]) -> Judgement:
    summary = per_dim_summary(f.per_dim, quantile=tol["quantile"])
    judged = summary[(summary["scale_mode"] == "per_dim") & (family_of(summary) == "normal")]

    def holds(r) -> bool:
        ratios_ok = abs(r.median_ratio - 1) < tol["median"] and r.ratio_dev_quantile < tol["spread"]
        # r only says something when the RMSE_j spread: with near-equal errors it is noise
        return bool(ratios_ok and (not r.target_cv > tol["cv"] or r.correlation > tol["r"]))

    ok = [holds(r) for r in judged.itertuples()]
    numbers = [f"{r.run} ({r.scale_mode}; MSE_j of the {r.ratio_split} split): "
               f"median σ_j²/MSE_j = {fmt(r.median_ratio)}, "
               f"{fmt(tol['quantile'])}-quantile of |σ_j²/MSE_j − 1| = {fmt(r.ratio_dev_quantile)} "
               f"(range {fmt(r.ratio_min)} … {fmt(r.ratio_max)}) over {r.n_judged} dims; RMSE_j coefficient "
               f"of variation {fmt(r.target_cv)}, r(σ_j, RMSE_j) = {fmt(r.correlation)}"
               f"{'' if r.target_cv > tol['cv'] else ' (not judged: the RMSE_j barely spread)'}; "
               f"{r.n_at_bound} of {r.n_dims} scales at the lower bound"
               for r in summary.itertuples()]
    return Judgement(verdict_of(ok, "no per_dim Normal run with per_dim.csv"), numbers,
                     [("Per-dimension scales, per run", summary)],
                     [("c3-scale-heatmap", "per-pixel scale σ_j", figures.plot_scale_heatmap(f.per_dim)),
                      ("c3-scale-vs-rmse", "σ_j against per-dimension RMSE", figures.plot_per_dim_scale(f.per_dim))])


register_claim(Claim(
    "C3", "Per-dimension σ converges to per-dimension RMSE", "σ_j² = mean_n (x_nj − x̂_nj)².",
    {"median": 0.1, "quantile": 0.9, "spread": 0.5, "cv": 0.3, "r": 0.9},
    "over the dims not at the bound, |median_j σ_j²/MSE_j − 1| < {median} and the {quantile}-quantile of "
    "|σ_j²/MSE_j − 1| < {spread}; Pearson r(σ_j, RMSE_j) > {r} where the RMSE_j spread (coefficient of "
    "variation > {cv}); every per_dim Normal run",
    _judge_c3,
    "Each pixel's σ_j follows that pixel's own reconstruction error: the ratios σ_j²/MSE_j are judged "
    "directly, their median and how far most of them stray from 1. Pixels the decoder fits exactly "
    "(constant border pixels) drive σ_j to the lower bound, where the log-likelihood per pixel grows "
    "without limit: monitor how many scales sit at the bound. The correlation of σ_j with RMSE_j is judged "
    "only where the RMSE_j differ enough between dims for it to measure tracking; where they barely differ "
    "(natural image patches) r is dominated by noise. 'predicted' scales vary per example and are "
    "shown, not judged."))


# --------------------------------------------------------------------------- C4

def _judge_c4(f: Frames, tol: Mapping[str, float]) -> Judgement:
    sig, ident = f.sigma, f.identity
    lap = sig[(family_of(sig) == "laplace") & (sig["scale_mode"] == "learned")]
    lines = ident[(family_of(ident) == "laplace") & ident["scale_mode"].isin(_LINE_MODES)]
    ok = [_within(_judged_ratio(r)[0], tol) for r in lap.itertuples()]
    ok += [bool(r.slope_rel_error < tol["slope_rel"] and r.r2 > tol["r2"]) for r in lines.itertuples()]
    numbers = [f"{r.run}: b = {fmt(r.sigma)}, b/MAE = {fmt(_judged_ratio(r)[0])} on the "
               f"{_judged_ratio(r)[1]} split (test split: {fmt(r.ratio)}, MAE = {fmt(r.mae)})"
               for r in lap.itertuples()]
    numbers += [f"{r.run}: fitted slope {fmt(r.slope, 8)} vs −1/b = {fmt(r.slope_theory, 8)}, intercept "
                f"{fmt(r.intercept, 6)} vs −d·log(2b) = {fmt(r.intercept_theory, 6)}, R² = {fmt(r.r2, 8)}"
                for r in lines.itertuples()]
    return Judgement(verdict_of(ok, "no Laplace run"), numbers, [("Laplace: recon against SAE", lines)],
                     [("c4-identity", "recon against SAE per test example (Laplace)",
                       figures.plot_identity(f.points, lines))])


register_claim(Claim(
    "C4", "Laplace ⇔ MAE", "−log Laplace(x; x̂, b) = d·log(2b) + ‖x−x̂‖₁/b; a learned b tends to the MAE.",
    {"above": 0.05, "below": 0.05, "slope_rel": 0.01, "r2": 0.999},
    "1 − {below} < b/MAE < 1 + {above} on the training split (learned b) and |fitted slope / (−1/b) − 1| < {slope_rel} with R² > {r2} "
    "(fixed/learned/optimal b)",
    _judge_c4,
    "A Laplace likelihood is the MAE loss: its log-likelihood is a line in the summed absolute "
    "error with slope −1/b, and a learned b settles at the MAE of the data it is fitted to, the "
    "training split (on the test split an over-fitting decoder's larger MAE puts b/MAE below 1)."))


# --------------------------------------------------------------------------- C5

def _judge_c5(f: Frames, tol: Mapping[str, float]) -> Judgement:
    ident = f.identity
    fam = family_of(ident)
    bern = ident[fam == "bernoulli"]
    cb = ident[fam == "cbernoulli"]
    ok = [bool(abs(r.slope + 1) < tol["slope"] and abs(r.intercept) < tol["intercept"] and r.r2 > tol["r2"])
          for r in bern.itertuples()]
    numbers = [f"{r.run}: fitted slope {fmt(r.slope, 10)}, intercept {fmt(r.intercept, 4)} nats, R² = {fmt(r.r2, 10)}"
               for r in bern.itertuples()]
    by_run = f.runs.set_index("run")
    for r in bern.itertuples():
        row = by_run.loc[r.run] if r.run in by_run.index else None
        if row is None:
            continue
        binary, comparable = row.get("binary"), row.get("comparable")
        if binary is not None and not is_true(binary):
            ok.append(not is_true(comparable))
            numbers.append(f"{r.run}: data not binary; eval.json comparable = {comparable}")
    numbers += [f"{r.run} (continuous Bernoulli): fitted slope {fmt(r.slope)}, R² = {fmt(r.r2)} < 1 — {r.reason}"
                for r in cb.itertuples()]
    both = pd.concat([bern, cb])
    return Judgement(verdict_of(ok, "no Bernoulli run"), numbers,
                     [("Bernoulli and continuous Bernoulli: recon against summed BCE", both)],
                     [("c5-identity", "recon against summed BCE per test example",
                       figures.plot_identity(f.points, both))])


register_claim(Claim(
    "C5", "Bernoulli ⇔ BCE",
    "−log Bern(x; p) = summed BCE exactly; on non-binary x it is not a normalised density "
    "(the continuous Bernoulli adds log C(λ)).",
    {"slope": 0.01, "intercept": 0.01, "r2": 0.999},
    "|fitted slope + 1| < {slope}, |intercept| < {intercept} nats, R² > {r2} for Bernoulli runs; "
    "a Bernoulli run on non-binary data must say comparable: false",
    _judge_c5,
    "Binary cross-entropy is exactly the negative Bernoulli log-likelihood. On grey levels it is still a "
    "loss but not a density — its 'log-likelihood' cannot be ranked against densities, so such runs are "
    "listed as not comparable. The continuous Bernoulli adds the log-normaliser log C(λ), which varies "
    "with λ: its recon is not a line in the BCE (R² < 1), and its mean is not λ."))


# --------------------------------------------------------------------------- C6

def _judge_c6(f: Frames, tol: Mapping[str, float]) -> Judgement:
    frame = c6_frame(f.runs)
    check = c6_check(frame, min_sigmas=int(tol["min_sigmas"]), min_step_over_spread=tol["step_over_spread"])
    measured = check[~check["verdict"].str.startswith(NOT_MEASURED)] if not check.empty else check
    ok = [v == HELD for v in measured["verdict"]] if not measured.empty else []
    why = (f"no series of ≥ {int(tol['min_sigmas'])} fixed σ for one data set and model"
           if check.empty or measured.empty else "")
    numbers = [f"{r.data} / {r.model} / latent {r.latent_dim}: σ ∈ {{{r.sigmas}}}; MSE increasing: "
               f"{r.mse_increasing}; KL decreasing: {r.kl_decreasing}; active units non-increasing: "
               f"{r.active_units_nonincreasing}; smallest step / seed range: MSE {fmt(r.mse_step_over_spread)}, "
               f"KL {fmt(r.kl_step_over_spread)}" for r in check.itertuples()]
    learned = frame[frame["kind"] == "learned"] if not frame.empty else frame
    numbers += [f"{r.run} (learned σ = {fmt(r.sigma)}): MSE {fmt(r.mse)}, KL {fmt(r.kl)}, active units "
                f"{fmt(r.active_units)}" for r in learned.itertuples()]
    return Judgement(verdict_of(ok, why) if ok else not_measured(why or "no fixed-σ series"), numbers,
                     [("Fixed-σ series", check), ("Runs", frame)],
                     [("c6-sigma-sweep", "MSE, KL and active units against the fixed σ",
                       figures.plot_sigma_sweep(frame))])


register_claim(Claim(
    "C6", "σ is a β: a fixed σ trades reconstruction against KL",
    "ELBO(σ) ∝ −SSE/(2σ²) − KL: large fixed σ ⇒ blurry means and collapsed latents; small σ ⇒ sharp means, "
    "higher KL.",
    {"min_sigmas": 3, "step_over_spread": 1},
    "per series (≥ {min_sigmas} fixed σ), seed-averaged MSE strictly increases and KL strictly decreases with σ, "
    "each step more than {step_over_spread}× the seed range at either end (where a σ has ≥ 2 seeds)",
    _judge_c6,
    "With the scale fixed, 1/(2σ²) weighs the reconstruction against the KL just as β does: "
    "a large σ gives blurry means and few active latents, a small σ sharp means and a larger KL. "
    "A learned σ picks its own point on this curve (★)."))


# --------------------------------------------------------------------------- C7

def c7_frame(runs: pd.DataFrame) -> pd.DataFrame:
    r"""C7 per run, with one H(x) estimate shared by all runs scored on the same test split.

    H(x) is unknown. Every comparable run's test cross-entropy :math:`-\overline{\log p(x)}`
    is an upper bound on it, so the split's estimate is the smallest of them (the
    tightest); each run's bound is computed from that common estimate, so that the
    runs of a split differ only through their MSE.

    Returns
    -------
    pandas.DataFrame
        ``run, likelihood, scale, data, seed, data_dim, n_test, mse, mutual_info,
        comparable, entropy_estimate`` (from the runs table; ``data`` is the data
        identity, the data set with its options) and:

        - ``split``: ``"<data set (options)>, seed <s>, n_test <n>"``, the test split the run
          was scored on (:func:`vaelik.analysis._common.scored_split`: runs on different
          data options never share one);
        - ``h_x_estimate``: smallest ``entropy_estimate`` of the split's comparable runs (nats);
        - ``mi_bound_estimate``: :math:`\hat H(x) - d/2\cdot\log(2\pi e\cdot\mathrm{MSE})`
          with ``h_x_estimate`` for :math:`\hat H(x)` (nats); an estimate, since :math:`\hat H` is;
        - ``mi_points``: :math:`\min(n_\mathrm{test}, M)`, the test points the sampled
          ``mutual_info`` was estimated on (:math:`M` =
          :data:`~vaelik.rundir.schema.MI_MAX_POINTS`);
        - ``log_mi_points``: :math:`\log \min(n_\mathrm{test}, M)`, the most a sampled
          ``mutual_info`` can be (its estimator is a log-mean over those points).

        Only runs with both ``mse`` and ``mutual_info``.
    """
    cols = ["run", "likelihood", "scale", "data", "seed", "data_dim", "n_test", "mse",
            "mutual_info", "comparable", "entropy_estimate"]
    frame = pd.DataFrame({c: runs[c] if c in runs.columns else np.nan for c in cols})
    keep = num(frame, "mse").notna() & num(frame, "mutual_info").notna()
    split = scored_split(runs)[keep]
    frame = frame[keep].copy()
    if frame.empty:
        return frame.assign(h_x_estimate=[], mi_bound_estimate=[], mi_points=[], log_mi_points=[], split=[])
    frame["data"] = data_id_of(runs)[keep]  # the data set with its options
    ent = num(frame, "entropy_estimate").where(frame["comparable"].map(is_true))
    frame["h_x_estimate"] = ent.groupby(split).transform("min")
    d = num(frame, "data_dim")
    frame["mi_bound_estimate"] = frame["h_x_estimate"] - d / 2 * np.log(2 * np.pi * np.e * num(frame, "mse"))
    frame["mi_points"] = num(frame, "n_test").clip(lower=1, upper=MI_MAX_POINTS)
    frame["log_mi_points"] = np.log(frame["mi_points"])
    frame["split"] = split
    return frame.reset_index(drop=True)


def _mi_cap_text(split: pd.DataFrame) -> str:
    """What caps the sampled I_q of a split's runs: the points its estimator used."""
    n_test, points = num(split, "n_test").iloc[0], split["mi_points"].iloc[0]
    used = (f"all {fmt(n_test)} test points" if n_test <= MI_MAX_POINTS
            else f"the first {MI_MAX_POINTS:,} of {fmt(n_test)} test points")
    return (f"I_q estimates are capped at log {fmt(points)} = {fmt(split['log_mi_points'].iloc[0])} nats "
            f"(the estimator uses {used}; at most {MI_MAX_POINTS:,})")


def _judge_c7(f: Frames, tol: Mapping[str, float]) -> Judgement:
    frame = c7_frame(f.runs)
    min_runs = int(tol["min_runs"])
    ok: list[bool] = []
    numbers: list[str] = []
    for split, g in frame.groupby("split", sort=True) if not frame.empty else []:
        if len(g) < min_runs:
            numbers.append(f"{split}: {len(g)} runs, too few (< {min_runs}) to rank")
            continue
        rho = float(g["mse"].rank().corr(g["mutual_info"].rank()))
        ok.append(rho < tol["rho"])
        numbers.append(
            f"{split}: Spearman ρ(MSE, sampled I_q(x;z)) = {fmt(rho)} over {len(g)} runs; "
            f"H(x) estimate {fmt(g['h_x_estimate'].iloc[0])} nats (smallest test cross-entropy among comparable "
            f"runs: an upper bound on H(x), so the bounds below are estimates too); {_mi_cap_text(g)}")
    for r in frame.itertuples():
        numbers.append(f"{r.run}: MSE {fmt(r.mse)}, bound H − d/2·log(2πe·MSE) = {fmt(r.mi_bound_estimate)} nats"
                       f"{' (vacuous: ≤ 0)' if r.mi_bound_estimate <= 0 else ''}, sampled I_q(x;z) = "
                       f"{fmt(r.mutual_info)} nats")
    shown = frame.drop(columns=["split", "comparable", "entropy_estimate"], errors="ignore")
    caption = ("C7 per run: h_x_estimate = smallest test cross-entropy among the comparable runs of the split; "
               "mi_bound_estimate = h_x_estimate − d/2·log(2πe·MSE); mutual_info = sampled I_q(x;z) on "
               f"mi_points = min(n_test, {MI_MAX_POINTS:,}) test points, at most log_mi_points (all in nats)")
    return Judgement(verdict_of(ok, f"fewer than {min_runs} runs with mse and mutual_info on one test split"),
                     numbers, [(caption, shown)])


register_claim(Claim(
    "C7", "MSE ⇔ information (a bound)",
    "H(x|z) ≤ d/2·log(2πe·MSE), so I(x;z) ≥ H(x) − d/2·log(2πe·MSE). A bound, not an equality; "
    "minimising the MSE raises it.",
    {"rho": -0.5, "min_runs": 4},
    "Spearman ρ(MSE, sampled I_q(x;z)) < {rho} across the runs of each test split (≥ {min_runs} runs)",
    _judge_c7,
    "Because the Gaussian has the largest entropy for a given variance, H(x|z) ≤ d/2·log(2πe·MSE), so "
    "I(x;z) ≥ H(x) − d/2·log(2πe·MSE). It is a lower bound, not an equality, and it needs H(x), which "
    "nobody knows: here it is estimated (see above), so the bound's level is uncertain while its "
    "differences between runs are exact. What the claim predicts, and what is judged, is the direction: "
    "runs that reach a lower MSE carry more information about x in z. Minimising the MSE raises the bound."))


# --------------------------------------------------------------------------- C8

def c8_frame(runs: pd.DataFrame) -> pd.DataFrame:
    r"""C8 per linear-model run: the fit against Tipping & Bishop's pPCA optimum.

    Returns
    -------
    pandas.DataFrame
        One row per linear-model run (``linear``, ``linear-diag``) with a ``ppca`` block: ``run``,
        ``sigma2_learned``, ``sigma2_ml`` (σ²_ML: mean of the discarded eigenvalues of
        the training covariance, k components), ``active_components`` and
        ``sigma2_ml_active`` (σ²_ML with as many components as the fit uses; σ²_ML
        for an eval.json without it), ``sigma2_ratio`` (σ²_learned/σ²_ML with the
        fit's components), ``ml_log_px``
        (exact test log p(x) at the ML parameters, nats per point; NaN in an
        eval.json written before it was stored), ``exact_log_px`` (exact test log p(x)
        at the learned parameters), ``elbo`` (test ELBO in closed form, else the
        one-sample estimate of an older eval.json), ``gap_to_optimum``
        (``ml_log_px − elbo``, what is judged), split into ``parameter_gap``
        (``ml_log_px − exact_log_px``: the learned W, b, σ² are not the optimum) and
        ``posterior_gap`` (``exact_log_px − elbo``: q(z|x) is not the exact posterior),
        and ``relative_gap`` (``gap_to_optimum / |ml_log_px|``).
    """
    cols = ["run", "sigma2_learned", "sigma2_ml", "active_components", "sigma2_ml_active",
            "sigma2_ratio", "ml_log_px", "exact_log_px", "elbo",
            "gap_to_optimum", "parameter_gap", "posterior_gap", "relative_gap"]
    # the linear models (``linear``: full-covariance guide; ``linear-diag``: diagonal guide)
    lin = runs[runs["model"].isin(LINEAR_MODELS)] if "model" in runs.columns else runs.iloc[0:0]
    lin = lin[num(lin, "ppca_sigma2_ml").notna()] if "ppca_sigma2_ml" in lin.columns else lin.iloc[0:0]

    def first(*columns: str) -> pd.Series:  # the first column present, filled from the next
        values = pd.Series(np.nan, index=lin.index)
        for c in reversed(columns):
            values = num(lin, c).where(num(lin, c).notna(), values) if c in lin.columns else values
        return values

    frame = pd.DataFrame({"run": lin["run"], "sigma2_learned": num(lin, "ppca_sigma2_learned"),
                          "sigma2_ml": num(lin, "ppca_sigma2_ml"),
                          "active_components": first("ppca_active_components"),
                          "sigma2_ml_active": first("ppca_sigma2_ml_active", "ppca_sigma2_ml"),
                          "ml_log_px": num(lin, "ppca_ml_log_px"),
                          "exact_log_px": num(lin, "ppca_exact_log_px"),
                          "elbo": first("ppca_elbo_exact", "ppca_elbo")}).reset_index(drop=True)
    frame["sigma2_ratio"] = frame["sigma2_learned"] / frame["sigma2_ml_active"]
    frame["gap_to_optimum"] = frame["ml_log_px"] - frame["elbo"]
    frame["parameter_gap"] = frame["ml_log_px"] - frame["exact_log_px"]
    frame["posterior_gap"] = frame["exact_log_px"] - frame["elbo"]
    frame["relative_gap"] = frame["gap_to_optimum"] / frame["ml_log_px"].abs()
    return frame[cols]


def _judge_c8(f: Frames, tol: Mapping[str, float]) -> Judgement:
    frame = c8_frame(f.runs)
    measured = frame[frame["ml_log_px"].notna()]
    allowed = np.maximum(tol["elbo_rel"] * measured["ml_log_px"].abs(), tol["elbo_abs"])
    ok = [bool(abs(r.sigma2_ratio - 1) < tol["sigma2"] and abs(r.gap_to_optimum) < a)
          for r, a in zip(measured.itertuples(), allowed, strict=True)]
    numbers = [f"{r.run}: σ²_learned/σ²_ML = {fmt(r.sigma2_ratio, 4)} ({fmt(r.sigma2_learned)} vs "
               f"{fmt(r.sigma2_ml_active)}{_components(r)}); test ELBO {fmt(r.elbo, 5)} vs log p(x) at the pPCA optimum "
               f"{fmt(r.ml_log_px, 5)}: {fmt(r.gap_to_optimum, 3)} nats per point below "
               f"({fmt(100 * r.relative_gap, 3)} %; allowed {fmt(a, 3)}) = {fmt(r.parameter_gap, 3)} "
               f"(learned parameters: exact log p(x) {fmt(r.exact_log_px, 5)}) + {fmt(r.posterior_gap, 3)} "
               f"(q(z|x) against the exact posterior)"
               for r, a in zip(measured.itertuples(), allowed, strict=True)]
    numbers += [f"{r.run}: not judged — its eval.json has no ppca.ml_log_px (written by an older vaelik)"
                for r in frame[frame["ml_log_px"].isna()].itertuples()]
    return Judgement(verdict_of(ok, "no linear-model run with ppca.sigma2_ml and ppca.ml_log_px in eval.json"),
                     numbers, [("pPCA check (log p(x) and ELBO in nats per test point)", frame)])


def _components(r) -> str:
    if not np.isfinite(r.active_components):
        return ""
    return (f" with the {int(r.active_components)} components the fit uses; "
            f"with all k: {fmt(r.sigma2_ml)}")


register_claim(Claim(
    "C8", "Linear VAE = probabilistic PCA",
    "With a linear decoder and learned σ the optimum is Tipping & Bishop's: σ²_ML = mean of the discarded "
    "eigenvalues of the data covariance, and the ELBO is tight: it reaches the exact log p(x) of the pPCA "
    "maximum-likelihood solution.",
    {"sigma2": 0.05, "elbo_rel": 0.01, "elbo_abs": 0.05},
    "|σ²_learned/σ²_ML − 1| < {sigma2} (σ²_ML of the pPCA solution with the components the fit uses) and "
    "|log p_ML(x) − ELBO| < max({elbo_rel}·|log p_ML(x)|, {elbo_abs} nats) per test point, ELBO in closed form, "
    "log p_ML(x) the exact log-likelihood at the pPCA optimum with all k components (eval.json ppca.ml_log_px)",
    _judge_c8,
    "A VAE with a linear decoder and a learned σ recovers probabilistic PCA: at its optimum the noise "
    "variance is the mean of the discarded eigenvalues and the ELBO equals the exact marginal likelihood "
    "of the closed-form solution. The ELBO is compared with that optimum, not with the exact log p(x) of the "
    "learned parameters: a fit far from the optimum can have an ELBO close to its own log p(x). The "
    "shortfall splits into a parameter gap "
    "(the learned W, b, σ² are not yet the optimum) and a posterior gap (q(z|x) is not yet the exact posterior). "
    "A fit stopped early shows up as one of them. σ² is compared with σ²_ML of the pPCA solution that has as "
    "many components as the fit uses (its active latent dimensions): a latent dimension whose sample "
    "eigenvalue barely exceeds σ² is worth hundredths of a nat (on ppca, four such dimensions 0.03 nats "
    "per point together), the ELBO is nearly flat along it, and gradient descent leaves it collapsed; "
    "that solution is a stationary point of the ELBO whose σ² is the mean of the eigenvalues it leaves out. "
    "The ELBO is still judged against the optimum with all k components, which that shortfall does not "
    "exceed."))
