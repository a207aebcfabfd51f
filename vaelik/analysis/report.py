"""One self-contained HTML report (and its Markdown twin) over a folder of runs.

The report has a section per claim C1-C8 of the design: the numbers measured, a
verdict (``held`` / ``did not hold`` / ``not measured in these runs: <why>``)
with the tolerance it was judged by, and a plain-language reading. Then the
comparison table, the ArviZ model comparison of comparable runs and the ArviZ
summary of Bayesian scales. Figures are embedded as base64 PNG data URIs; the
page loads nothing from elsewhere. Every string that comes from a run (names,
configs, file names, eval.json text) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vaelik.atomic import atomic_write_bytes

from . import arviz_io, figures
from ._common import HELD, NOT_HELD, NOT_MEASURED, family_of, fmt, not_measured, num
from .compare import c6_check, c6_frame, comparison_table, format_mean_sd, heldout_ranking
from .identity import identity_table, pointwise_frame
from .runs import RunFileError, Runs, load_images, load_pointwise, load_runs
from .sigma import per_dim_frame, per_dim_summary, sigma_over_epochs, sigma_table

__all__ = ["Section", "Report", "TOLERANCES", "build_sections", "write_report"]

#: The tolerance each verdict is judged by (stated in the report next to the verdict).
TOLERANCES = {
    "C1": "|fitted slope / (−1/(2σ²)) − 1| < 0.01 and R² > 0.999, every fixed/learned/optimal Normal run",
    "C2": "|σ²/MSE − 1| < 0.1, every learned-σ Normal run",
    "C3": "|median_j σ_j²/MSE_j − 1| < 0.1 (dims not at the bound) and Pearson r(σ_j, RMSE_j) > 0.9, every per_dim Normal run",
    "C4": "|b/MAE − 1| < 0.1 (learned b) and |fitted slope / (−1/b) − 1| < 0.01 with R² > 0.999 (fixed/learned/optimal b)",
    "C5": "|fitted slope + 1| < 0.01, |intercept| < 0.01 nats, R² > 0.999 for Bernoulli runs; "
          "a Bernoulli run on non-binary data must say comparable: false",
    "C6": "per series (≥ 3 fixed σ), seed-averaged MSE strictly increases and KL strictly decreases with σ",
    "C7": "Spearman ρ(MSE, sampled I_q(x;z)) < −0.5 across the runs of each test split (≥ 4 runs)",
    "C8": "|σ²_learned/σ²_ML − 1| < 0.15 and |log p(x) − ELBO| < 1 nat per point",
}

CLAIMS = {
    "C1": ("Gaussian with fixed σ ⇔ MSE",
           "−log N(x; x̂, σ²I) = d/2·log(2πσ²) + ‖x−x̂‖²/(2σ²): affine in the SSE with slope 1/(2σ²)."),
    "C2": ("A learned global σ converges to √MSE",
           "For a fixed decoder mean, the maximising σ² is SSE/(N·d) = MSE, so σ²/MSE ≈ 1 after training."),
    "C3": ("Per-dimension σ converges to per-dimension RMSE", "σ_j² = mean_n (x_nj − x̂_nj)²."),
    "C4": ("Laplace ⇔ MAE", "−log Laplace(x; x̂, b) = d·log(2b) + ‖x−x̂‖₁/b; a learned b tends to the MAE."),
    "C5": ("Bernoulli ⇔ BCE",
           "−log Bern(x; p) = summed BCE exactly; on non-binary x it is not a normalised density "
           "(the continuous Bernoulli adds log C(λ))."),
    "C6": ("σ is a β: a fixed σ trades reconstruction against KL",
           "ELBO(σ) ∝ −SSE/(2σ²) − KL: large fixed σ ⇒ blurry means and collapsed latents; small σ ⇒ sharp means, higher KL."),
    "C7": ("MSE ⇔ information (a bound)",
           "H(x|z) ≤ d/2·log(2πe·MSE), so I(x;z) ≥ H(x) − d/2·log(2πe·MSE). A bound, not an equality; "
           "minimising the MSE raises it."),
    "C8": ("Linear VAE = probabilistic PCA",
           "With a linear decoder and learned σ the optimum is Tipping & Bishop's: σ²_ML = mean of the discarded "
           "eigenvalues of the data covariance, and the ELBO is tight."),
}


@dataclass
class Section:
    """One block of the report: text, tables and figures, rendered to HTML and Markdown.

    Attributes
    ----------
    key : str
        ``C1`` .. ``C8`` for claims, a short slug otherwise (used in anchors and file names).
    title : str
    verdict : str or None
        ``held``, ``did not hold`` or ``not measured in these runs: <why>``; None for
        sections that are not claims.
    tolerance : str
    statement : str
        What is claimed, exactly.
    numbers : list of str
        Measured numbers, one line each.
    reading : str
        The plain-language reading.
    tables : list of (caption, DataFrame)
    figures : list of (slug, caption, Figure)
    """

    key: str
    title: str
    verdict: str | None = None
    tolerance: str = ""
    statement: str = ""
    numbers: list[str] = field(default_factory=list)
    reading: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, str, Figure]] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html : Path
    markdown : Path or None
    verdicts : pandas.DataFrame
        ``claim, title, verdict, tolerance`` (the summary table at the top).
    problems : list of str
        Files that could not be read or analyses that could not run.
    figures : list of str
        Slugs of the embedded figures.
    """

    html: Path
    markdown: Path | None
    verdicts: pd.DataFrame
    problems: list[str]
    figures: list[str]


# --------------------------------------------------------------------------- verdict helpers

def _verdict(ok: list[bool], why_none: str) -> str:
    if not ok:
        return not_measured(why_none)
    return HELD if all(ok) else NOT_HELD


def _is_true(value: object) -> bool:
    return value is True or str(value).lower() == "true"


def _round_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- claims

def _c1(ident: pd.DataFrame, points: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C1"]
    rows = ident[(family_of(ident) == "normal") & ident["scale_mode"].isin(["fixed", "learned", "optimal"])]
    ok = [bool(r.slope_rel_error < 0.01 and r.r2 > 0.999) for r in rows.itertuples()]
    others = ident[(family_of(ident) == "normal") & ~ident.index.isin(rows.index)]
    numbers = [f"{r.run}: fitted slope {fmt(r.slope, 8)} vs theory {fmt(r.slope_theory, 8)} "
               f"(relative error {fmt(r.slope_rel_error, 2)}), intercept {fmt(r.intercept, 6)} vs "
               f"{fmt(r.intercept_theory, 6)}, R² = {fmt(r.r2, 8)}" for r in rows.itertuples()]
    numbers += [f"{r.run} ({r.scale_mode}): theory undefined — {r.reason}; fitted R² = {fmt(r.r2, 4)}"
                for r in others.itertuples()]
    reading = (
        "Per test example, the Gaussian reconstruction log-likelihood is a straight line in the summed "
        "squared error: training a Normal likelihood with a fixed σ is training with MSE, rescaled by "
        "1/(2σ²) and shifted by a constant. The slope sets how much reconstruction weighs against the KL."
    )
    fig = figures.plot_identity(points, pd.concat([rows, others]))
    return Section("C1", title, _verdict(ok, "no fixed, learned or optimal Normal run with pointwise.csv"),
                   TOLERANCES["C1"], statement, numbers, reading,
                   [("Normal runs: recon against SSE", pd.concat([rows, others]))],
                   [("c1-identity", "recon against SSE per test example, theory line and least-squares fit", fig)])


def _c2(sig: pd.DataFrame, over: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C2"]
    normal = sig[family_of(sig) == "normal"]
    learned = normal[normal["scale_mode"] == "learned"]
    ok = [bool(abs(r - 1) < 0.1) for r in learned["ratio"]]
    numbers = [f"{r.run}: σ = {fmt(r.sigma)}, √MSE = {fmt(r.rmse)}, σ²/MSE = {fmt(r.ratio)}, "
               f"scales at the lower bound: {fmt(r.scales_at_bound)}" for r in learned.itertuples()]
    numbers += [f"{r.run} ({r.scale_mode}, not judged): σ²/MSE = {fmt(r.ratio)}"
                for r in normal[normal["scale_mode"].isin(["optimal", "bayesian"])].itertuples()]
    reading = (
        "A learned σ is not a free knob: for a given decoder it settles where σ² equals the mean squared "
        "error (MSE measured at z ~ q(z|x), as in the reconstruction term). The figure shows σ tracking "
        "√MSE over training; on the train split it can keep shrinking as the decoder over-fits. "
        "'optimal' sets σ² = MSE by construction and 'bayesian' has a prior pulling σ, so neither is judged."
    )
    return Section("C2", title, _verdict(ok, "no learned-σ Normal run"), TOLERANCES["C2"], statement, numbers,
                   reading, [("Scales of the runs whose family has one", sig)],
                   [("c2-sigma-epochs", "learned scale against √MSE (MAE for Laplace) per epoch",
                     figures.plot_sigma_over_epochs(over))])


def _c3(per_dim: pd.DataFrame, summary: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C3"]
    judged = summary[(summary["scale_mode"] == "per_dim") & (family_of(summary) == "normal")]
    ok = [bool(abs(r.median_ratio - 1) < 0.1 and r.correlation > 0.9) for r in judged.itertuples()]
    numbers = [f"{r.run} ({r.scale_mode}): median σ_j²/MSE_j = {fmt(r.median_ratio)}, r(σ_j, RMSE_j) = "
               f"{fmt(r.correlation)}, {r.n_at_bound} of {r.n_dims} scales at the lower bound"
               for r in summary.itertuples()]
    reading = (
        "Each pixel's σ_j follows that pixel's own reconstruction error. Pixels the decoder fits exactly "
        "(constant border pixels) drive σ_j to the lower bound, where the log-likelihood per pixel grows "
        "without limit: monitor how many scales sit at the bound. 'predicted' scales vary per example and are shown, not judged."
    )
    return Section("C3", title, _verdict(ok, "no per_dim Normal run with per_dim.csv"), TOLERANCES["C3"],
                   statement, numbers, reading, [("Per-dimension scales, per run", summary)],
                   [("c3-scale-heatmap", "per-pixel scale σ_j", figures.plot_scale_heatmap(per_dim)),
                    ("c3-scale-vs-rmse", "σ_j against per-dimension RMSE", figures.plot_per_dim_scale(per_dim))])


def _c4(sig: pd.DataFrame, ident: pd.DataFrame, points: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C4"]
    lap = sig[(family_of(sig) == "laplace") & (sig["scale_mode"] == "learned")]
    lines = ident[(family_of(ident) == "laplace") & ident["scale_mode"].isin(["fixed", "learned", "optimal"])]
    ok = [bool(abs(r - 1) < 0.1) for r in lap["ratio"]]
    ok += [bool(r.slope_rel_error < 0.01 and r.r2 > 0.999) for r in lines.itertuples()]
    numbers = [f"{r.run}: b = {fmt(r.sigma)}, MAE = {fmt(r.mae)}, b/MAE = {fmt(r.ratio)}" for r in lap.itertuples()]
    numbers += [f"{r.run}: fitted slope {fmt(r.slope, 8)} vs −1/b = {fmt(r.slope_theory, 8)}, intercept "
                f"{fmt(r.intercept, 6)} vs −d·log(2b) = {fmt(r.intercept_theory, 6)}, R² = {fmt(r.r2, 8)}"
                for r in lines.itertuples()]
    reading = ("A Laplace likelihood is the MAE loss: its log-likelihood is a line in the summed absolute "
               "error with slope −1/b, and a learned b settles at the MAE.")
    return Section("C4", title, _verdict(ok, "no Laplace run"), TOLERANCES["C4"], statement, numbers, reading,
                   [("Laplace: recon against SAE", lines)],
                   [("c4-identity", "recon against SAE per test example (Laplace)", figures.plot_identity(points, lines))])


def _c5(ident: pd.DataFrame, runs: pd.DataFrame, points: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C5"]
    fam = family_of(ident)
    bern = ident[fam == "bernoulli"]
    cb = ident[fam == "cbernoulli"]
    ok = [bool(abs(r.slope + 1) < 0.01 and abs(r.intercept) < 0.01 and r.r2 > 0.999) for r in bern.itertuples()]
    numbers = [f"{r.run}: fitted slope {fmt(r.slope, 10)}, intercept {fmt(r.intercept, 4)} nats, R² = {fmt(r.r2, 10)}"
               for r in bern.itertuples()]
    by_run = runs.set_index("run")
    for r in bern.itertuples():
        row = by_run.loc[r.run] if r.run in by_run.index else None
        if row is None:
            continue
        binary, comparable = row.get("binary"), row.get("comparable")
        if binary is not None and not _is_true(binary):
            ok.append(not _is_true(comparable))
            numbers.append(f"{r.run}: data not binary; eval.json comparable = {comparable}")
    numbers += [f"{r.run} (continuous Bernoulli): fitted slope {fmt(r.slope)}, R² = {fmt(r.r2)} < 1 — {r.reason}"
                for r in cb.itertuples()]
    reading = (
        "Binary cross-entropy is exactly the negative Bernoulli log-likelihood. On grey levels it is still a "
        "loss but not a density — its 'log-likelihood' cannot be ranked against densities, so such runs are "
        "listed as not comparable. The continuous Bernoulli adds the log-normaliser log C(λ), which varies "
        "with λ: its recon is not a line in the BCE (R² < 1), and its mean is not λ."
    )
    both = pd.concat([bern, cb])
    return Section("C5", title, _verdict(ok, "no Bernoulli run"), TOLERANCES["C5"], statement, numbers, reading,
                   [("Bernoulli and continuous Bernoulli: recon against summed BCE", both)],
                   [("c5-identity", "recon against summed BCE per test example", figures.plot_identity(points, both))])


def _c6(frame: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C6"]
    check = c6_check(frame)
    measured = check[~check["verdict"].str.startswith(NOT_MEASURED)] if not check.empty else check
    ok = [v == HELD for v in measured["verdict"]] if not measured.empty else []
    why = "no series of ≥ 3 fixed σ for one data set and model" if check.empty or measured.empty else ""
    numbers = [f"{r.data} / {r.model} / latent {r.latent_dim}: σ ∈ {{{r.sigmas}}}; MSE increasing: "
               f"{r.mse_increasing}; KL decreasing: {r.kl_decreasing}; active units non-increasing: "
               f"{r.active_units_nonincreasing}" for r in check.itertuples()]
    learned = frame[frame["kind"] == "learned"] if not frame.empty else frame
    numbers += [f"{r.run} (learned σ = {fmt(r.sigma)}): MSE {fmt(r.mse)}, KL {fmt(r.kl)}, active units {fmt(r.active_units)}"
                for r in learned.itertuples()]
    reading = ("With the scale fixed, 1/(2σ²) weighs the reconstruction against the KL just as β does: "
               "a large σ gives blurry means and few active latents, a small σ sharp means and a larger KL. "
               "A learned σ picks its own point on this curve (★).")
    return Section("C6", title, _verdict(ok, why) if ok else not_measured(why or "no fixed-σ series"),
                   TOLERANCES["C6"], statement, numbers, reading,
                   [("Fixed-σ series", check), ("Runs", frame)],
                   [("c6-sigma-sweep", "MSE, KL and active units against the fixed σ", figures.plot_sigma_sweep(frame))])


def c7_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """C7 per run, with one H(x) estimate shared by all runs scored on the same test split.

    H(x) is unknown. Every comparable run's test cross-entropy −log p(x) is an upper
    bound on it, so the group's estimate is the smallest of them (the tightest);
    each run's bound is then ``H_hat − d/2·log(2πe·MSE)``, computed from that common
    estimate so that the runs differ only through their MSE.
    """
    cols = ["run", "likelihood", "scale", "data", "seed", "data_dim", "n_test", "mse",
            "mutual_info", "comparable", "entropy_estimate"]
    frame = pd.DataFrame({c: runs[c] if c in runs.columns else np.nan for c in cols})
    frame = frame[num(frame, "mse").notna() & num(frame, "mutual_info").notna()].copy()
    if frame.empty:
        return frame.assign(h_estimate=[], c7_bound=[], mi_cap=[])
    ent = num(frame, "entropy_estimate").where(frame["comparable"].map(_is_true))
    key = frame["data"].astype(str) + "|" + frame["seed"].astype(str)
    frame["h_estimate"] = ent.groupby(key).transform("min")
    d = num(frame, "data_dim")
    frame["c7_bound"] = frame["h_estimate"] - d / 2 * np.log(2 * np.pi * np.e * num(frame, "mse"))
    frame["mi_cap"] = np.log(num(frame, "n_test").clip(lower=1))
    frame["group"] = key
    return frame.reset_index(drop=True)


def _c7(runs: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C7"]
    frame = c7_frame(runs)
    ok: list[bool] = []
    numbers: list[str] = []
    for group, g in frame.groupby("group", sort=True) if not frame.empty else []:
        if len(g) < 4:
            numbers.append(f"{group}: {len(g)} runs, too few (< 4) to rank")
            continue
        rho = float(g["mse"].rank().corr(g["mutual_info"].rank()))
        ok.append(rho < -0.5)
        h = g["h_estimate"].iloc[0]
        numbers.append(
            f"{group.replace('|', ', seed ')}: Spearman ρ(MSE, sampled I_q(x;z)) = {fmt(rho)} over {len(g)} runs; "
            f"H(x) estimate {fmt(h)} nats (smallest test cross-entropy among comparable runs: an upper "
            f"bound on H(x), so the bounds below are estimates too); I_q estimates are capped at "
            f"log n_test = {fmt(g['mi_cap'].iloc[0])} nats")
    for r in frame.itertuples():
        numbers.append(f"{r.run}: MSE {fmt(r.mse)}, bound H − d/2·log(2πe·MSE) = {fmt(r.c7_bound)} nats"
                       f"{' (vacuous: ≤ 0)' if r.c7_bound <= 0 else ''}, sampled I_q(x;z) = {fmt(r.mutual_info)} nats")
    reading = (
        "Because the Gaussian has the largest entropy for a given variance, H(x|z) ≤ d/2·log(2πe·MSE), so "
        "I(x;z) ≥ H(x) − d/2·log(2πe·MSE). It is a lower bound, not an equality, and it needs H(x), which "
        "nobody knows: here it is estimated (see above), so the bound's level is uncertain while its "
        "differences between runs are exact. What the claim predicts, and what is judged, is the direction: "
        "runs that reach a lower MSE carry more information about x in z. Minimising the MSE raises the bound."
    )
    shown = frame.drop(columns=["group", "comparable", "entropy_estimate"], errors="ignore")
    return Section("C7", title, _verdict(ok, "fewer than 4 runs with mse and mutual_info on one test split"),
                   TOLERANCES["C7"], statement, numbers, reading, [("C7 bound per run", shown)], [])


def _c8(runs: pd.DataFrame) -> Section:
    title, statement = CLAIMS["C8"]
    lin = runs[(runs["model"] == "linear")] if "model" in runs.columns else runs.iloc[0:0]
    if "ppca_sigma2_ml" in lin.columns:
        lin = lin[num(lin, "ppca_sigma2_ml").notna()]
    else:
        lin = lin.iloc[0:0]
    frame = pd.DataFrame({"run": lin["run"], "sigma2_learned": num(lin, "ppca_sigma2_learned"),
                          "sigma2_ml": num(lin, "ppca_sigma2_ml"), "exact_log_px": num(lin, "ppca_exact_log_px"),
                          "elbo": num(lin, "ppca_elbo")}).reset_index(drop=True)
    frame["relative_error"] = (frame["sigma2_learned"] / frame["sigma2_ml"] - 1).abs()
    frame["gap"] = frame["exact_log_px"] - frame["elbo"]
    ok = [bool(r.relative_error < 0.15 and abs(r.gap) < 1) for r in frame.itertuples()]
    numbers = [f"{r.run}: σ²_learned = {fmt(r.sigma2_learned)}, σ²_ML = {fmt(r.sigma2_ml)} (relative error "
               f"{fmt(r.relative_error, 3)}); exact log p(x) − ELBO = {fmt(r.gap, 3)} nats per point"
               for r in frame.itertuples()]
    reading = ("A VAE with a linear decoder and a learned σ recovers probabilistic PCA: its noise variance is the "
               "mean of the discarded eigenvalues, and the ELBO is (nearly) the exact marginal likelihood.")
    return Section("C8", title, _verdict(ok, "no linear-model run with a ppca block in eval.json"),
                   TOLERANCES["C8"], statement, numbers, reading, [("pPCA check", frame)], [])


# --------------------------------------------------------------------------- other sections

def _pick_per_likelihood(runs: pd.DataFrame) -> pd.DataFrame:
    # Prefer the VAE / AE runs over the linear model, then the lowest seed.
    ordered = runs.assign(_lin=runs["model"].astype(str) == "linear", _s=num(runs, "seed").fillna(0))
    ordered = ordered.sort_values(["likelihood", "_lin", "_s", "run"])
    return ordered.drop_duplicates("likelihood").drop(columns=["_lin", "_s"])


def _images_section(runs: pd.DataFrame, problems: list[str]) -> Section:
    images = {}
    for row in _pick_per_likelihood(runs).itertuples():
        try:
            images[f"{row.likelihood} ({row.run})"] = load_images(row.path)
        except RunFileError as exc:
            problems.append(f"{row.run}: {exc}")
    return Section("images", "Reconstructions and prior samples",
                   reading="One run per likelihood (lowest seed). Reconstructions are the observation mean at "
                           "z = E_q[z]; prior samples are observation means at z ~ N(0, I).",
                   figures=[("reconstructions", "originals and reconstructions per likelihood",
                             figures.plot_reconstructions(images)),
                            ("prior-samples", "decoded prior samples per likelihood", figures.plot_prior_samples(images))])


def _comparison_section(runs: pd.DataFrame) -> Section:
    table = comparison_table(runs)
    return Section("comparison", "Test metrics over likelihood × scale",
                   reading="Mean ± sd over seeds. MSE, MAE and BCE are computed from the mean of the observation "
                           "distribution for every family (loc for Normal/Laplace, probs for Bernoulli, the mean — "
                           "not λ — for the continuous Bernoulli). ELBO and log p(x) are shown only for runs whose "
                           "likelihood is a normalised density on the data.",
                   tables=[("Comparison (mean ± sd over seeds)", format_mean_sd(table))],
                   figures=[("test-metrics", "test metrics per likelihood, error bars = sd over seeds",
                             figures.plot_test_metrics(runs))])


def _arviz_section(runs: pd.DataFrame, problems: list[str]) -> Section:
    numbers: list[str] = []
    tables: list[tuple[str, pd.DataFrame]] = []
    comparable = runs["comparable"].map(_is_true) if "comparable" in runs.columns else pd.Series(False, index=runs.index)
    excluded = runs[~comparable]
    excluded_frame = pd.DataFrame({
        "run": excluded["run"],
        "reason": [str(r) if isinstance(r, str) and r else "comparable is not true in eval.json"
                   for r in (excluded["comparable_reason"] if "comparable_reason" in excluded.columns
                             else [None] * len(excluded))],
    })
    datas: dict[tuple, dict] = {}
    for row in runs[comparable].itertuples():
        path = Path(row.path) / "posterior.nc"
        try:
            data = arviz_io.load_run_data(path)
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{row.run}: {path.name} unreadable ({exc})")
            excluded_frame.loc[len(excluded_frame)] = [row.run, f"{path.name} unreadable"]
            continue
        # the test split is drawn from the seed: only runs with the same data, seed and
        # test size are scored on the same test points
        key = (row.data, getattr(row, "seed", None), getattr(row, "n_test", None))
        datas.setdefault(key, {})[row.run] = data
    for (data_name, seed, n_test), group in sorted(datas.items(), key=lambda kv: str(kv[0])):
        data_name = f"{data_name}, seed {seed}"
        if len(group) < 2:
            numbers.append(f"{data_name}: only one comparable run ({', '.join(group)}); nothing to compare")
            continue
        paths = dict(zip(runs["run"], runs["path"]))
        try:
            ranking = heldout_ranking({name: load_pointwise(paths[name]) for name in group})
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"held-out ranking on {data_name} failed: {exc}")
        else:
            tables.append((f"Ranking by summed test log p(x) on {data_name} (n_test = {n_test}; "
                           "nats; diff and dse against the best run, paired over test points)",
                           ranking.reset_index(names="run")))
        try:
            table = arviz_io.compare_runs(group)
        except (ValueError, TypeError) as exc:
            problems.append(f"ArviZ comparison on {data_name} failed: {exc}")
            continue
        tables.append((f"ArviZ PSIS-LOO comparison on {data_name} (n_test = {n_test}); elpd in nats summed over "
                       "test points (see the note below on what p_loo means here)",
                       table.reset_index(names="run")))
        for w in table.attrs.get("warnings", []):
            numbers.append(f"ArviZ warning ({data_name}): {w}")
    if not excluded_frame.empty:
        tables.append(("Runs left out of the comparison", excluded_frame.reset_index(drop=True)))
    summaries = []
    for row in runs[runs["scale_mode"] == "bayesian"].itertuples():
        try:
            summary = arviz_io.summarize_scale(arviz_io.load_run_data(Path(row.path) / "posterior.nc"))
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{row.run}: posterior.nc unreadable ({exc})")
            continue
        summaries.append(summary.assign(run=row.run, likelihood=row.likelihood).reset_index(names="variable"))
    if summaries:
        tables.append((f"ArviZ summary of Bayesian scales ({int(arviz_io.HDI_PROB * 100)} % highest-density interval)",
                       pd.concat(summaries, ignore_index=True)))
    else:
        numbers.append("No Bayesian-scale runs: no scale posterior to summarise.")
    return Section("arviz", f"ArviZ model comparison and Bayesian scales (ArviZ {arviz_io.arviz_version()})",
                   numbers=numbers,
                   reading="log p(x) per test point is estimated by importance sampling (IWAE, K samples) on held-out "
                           "test points, so the first table — the summed test log p(x) with paired standard errors "
                           "— is the ranking to read: a difference several dse wide is real. Only runs whose "
                           "likelihood is a normalised density on the same test points are compared. ArviZ's "
                           "PSIS-LOO table is computed from the same numbers, with the draws being independent "
                           "groups of importance samples (or, for a Bayesian scale, draws of σ): there p_loo and "
                           "the Pareto-k warnings measure the Monte Carlo noise of the estimator, not model "
                           "complexity, and elpd is biased low by that noise. Caution on quantised data such as "
                           "the digits (17 grey levels, a blank border): a density can grow without bound on "
                           "values that repeat exactly, so a family that puts a spike there (the continuous "
                           "Bernoulli near 0, a per-dimension σ near its lower bound) ranks high for that reason, "
                           "not for sharper reconstructions — read the ranking next to the MSE.",
                   tables=tables)


def _runs_section(all_runs: pd.DataFrame, problems: list[str]) -> Section:
    cols = [c for c in ("run", "status", "likelihood", "scale", "scale_mode", "model", "data", "seed", "latent_dim") if c in all_runs.columns]
    tables = [("All runs found", all_runs[cols].reset_index(drop=True))]
    if problems:
        tables.append(("Problems met while reading", pd.DataFrame({"problem": problems})))
    return Section("runs", "Runs", reading="Only runs whose status is 'completed' enter the analyses above.",
                   tables=tables)


def build_sections(runs: Runs) -> tuple[list[Section], list[str]]:
    """Compute every section of the report from loaded runs.

    Returns
    -------
    sections : list of Section
        C1..C8 first, then comparison, images, ArviZ, runs.
    problems : list of str
        :attr:`Runs.problems` plus problems met here.
    """
    problems = list(runs.problems)
    done = runs.completed
    ident = identity_table(done)
    problems += ident.attrs.get("problems", [])
    points = pointwise_frame(done)
    sig = sigma_table(done)
    per_dim = per_dim_frame(done)
    problems += per_dim.attrs.get("problems", [])
    sections = [
        _c1(ident, points),
        _c2(sig, sigma_over_epochs(runs.metrics)),
        _c3(per_dim, per_dim_summary(per_dim)),
        _c4(sig, ident, points),
        _c5(ident, done, points),
        _c6(c6_frame(done)),
        _c7(done),
        _c8(done),
        _comparison_section(done),
        _images_section(done, problems),
        _arviz_section(done, problems),
    ]
    sections.append(_runs_section(runs.runs, problems))
    return sections, problems


# --------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}td.prose{min-width:24em;max-width:40em;text-align:left}th{background:#f0f0f0}td:first-child{text-align:left}
.held{background:#d8f3dc;color:#1b4332}.notheld{background:#ffd6d6;color:#7a0000}.notmeasured{background:#eee;color:#555}
.verdict{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:600}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.85em;color:#555}
.statement{font-style:italic}.reading{background:#f7f7fb;border-left:4px solid #99c;padding:.4em .8em}
"""


def _verdict_class(verdict: str) -> str:
    if verdict == HELD:
        return "held"
    if verdict == NOT_HELD:
        return "notheld"
    return "notmeasured"


def _fmt_cell(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(float(value)) else f"{float(value):.6g}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value is pd.NA:
        return "n/a"
    return str(value)


def _html_cell(value: object) -> str:
    text = _fmt_cell(value)
    # long prose (reasons, methods) gets a readable width instead of a one-word column
    style = " class='prose'" if len(text) > 40 else ""
    return f"<td{style}>{html.escape(text)}</td>"


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(_html_cell(v) for v in row) + "</tr>"
        for row in frame.itertuples(index=False, name=None)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_cell(value: object) -> str:
    return html.escape(_fmt_cell(value)).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(_md_cell(c) for c in frame.columns) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _render_html(sections: list[Section], summary: pd.DataFrame, source: str, pngs: dict[str, bytes]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>vaelik report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>vaelik: what the observation likelihood does to an autoencoder</h1>",
        f"<p>Runs read from <code>{e(source)}</code>. Losses are of the mean of the observation distribution.</p>",
        "<h2 id='summary'>Verdicts at a glance</h2><table><thead><tr><th>claim</th><th>what</th><th>verdict</th>"
        "<th>tolerance</th></tr></thead><tbody>",
    ]
    for r in summary.itertuples():
        parts.append(f"<tr><td><a href='#{e(r.claim)}'>{e(r.claim)}</a></td><td>{e(r.title)}</td>"
                     f"<td><span class='verdict {_verdict_class(r.verdict)}'>{e(r.verdict)}</span></td>"
                     f"<td>{e(r.tolerance)}</td></tr>")
    parts.append("</tbody></table>")
    for s in sections:
        heading = f"{s.key}: {s.title}" if s.verdict is not None else s.title
        parts.append(f"<section id='{e(s.key)}'><h2>{e(heading)}</h2>")
        if s.statement:
            parts.append(f"<p class='statement'>{e(s.statement)}</p>")
        if s.verdict is not None:
            parts.append(f"<p>Verdict: <span class='verdict {_verdict_class(s.verdict)}'>{e(s.verdict)}</span>"
                         f" — tolerance: {e(s.tolerance)}</p>")
        if s.numbers:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in s.numbers) + "</ul>")
        if s.reading:
            parts.append(f"<p class='reading'>{e(s.reading)}</p>")
        for caption, table in s.tables:
            parts.append(f"<h3>{e(caption)}</h3>")
            parts.append(_html_table(table) if not table.empty else "<p><em>(no rows)</em></p>")
        for slug, caption, _ in s.figures:
            data = base64.b64encode(pngs[slug]).decode("ascii")
            parts.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{e(caption)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_md(sections: list[Section], summary: pd.DataFrame, source: str, files: dict[str, str]) -> str:
    e = html.escape
    out = ["# vaelik: what the observation likelihood does to an autoencoder", "",
           f"Runs read from `{e(source)}`. Losses are of the mean of the observation distribution.", "",
           "## Verdicts at a glance", "", _md_table(summary)]
    for s in sections:
        heading = f"{s.key}: {s.title}" if s.verdict is not None else s.title
        out += [f"## {e(heading)}", ""]
        if s.statement:
            out += [f"_{e(s.statement)}_", ""]
        if s.verdict is not None:
            out += [f"**Verdict: {e(s.verdict)}** — tolerance: {e(s.tolerance)}", ""]
        out += [f"- {e(n)}" for n in s.numbers] + ([""] if s.numbers else [])
        if s.reading:
            out += [f"> {e(s.reading)}", ""]
        for caption, table in s.tables:
            out += [f"### {e(caption)}", "", _md_table(table)]
        for slug, caption, _ in s.figures:
            out += [f"![{e(caption)}]({files[slug]})", ""]
    return "\n".join(out)


def write_report(runs_dir: str | Path, out_html: str | Path, out_md: str | Path | None = None) -> Report:
    """Analyse every run under ``runs_dir`` and write the report.

    Parameters
    ----------
    runs_dir : str or Path
        A run directory, a folder of runs or a sweep folder (see :func:`vaelik.analysis.load_runs`).
    out_html : str or Path
        The self-contained HTML file to write (figures as base64 PNG data URIs,
        inline CSS, no external resources).
    out_md : str or Path, optional
        Also write the same text and tables as Markdown; figures are saved as
        ``<stem>-<figure>.png`` beside it.

    Returns
    -------
    Report
        Paths written, the verdict summary and the problems met.

    Examples
    --------
    >>> write_report("sweeps/likelihoods", "report.html", "report.md")  # doctest: +SKIP
    """
    runs = load_runs(runs_dir)
    sections, problems = build_sections(runs)
    summary = pd.DataFrame(
        [{"claim": s.key, "title": s.title, "verdict": s.verdict, "tolerance": s.tolerance}
         for s in sections if s.verdict is not None]
    )
    pngs = {slug: _png(fig) for s in sections for slug, _, fig in s.figures}
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_html, _render_html(sections, summary, str(runs_dir), pngs).encode("utf-8"))
    md_path = None
    if out_md is not None:
        md_path = Path(out_md)
        md_path.parent.mkdir(parents=True, exist_ok=True)
        files = {}
        for slug, data in pngs.items():
            name = f"{md_path.stem}-{slug}.png"
            atomic_write_bytes(md_path.parent / name, data)
            files[slug] = name
        atomic_write_bytes(md_path, _render_md(sections, summary, str(runs_dir), files).encode("utf-8"))
    return Report(html=out_html, markdown=md_path, verdicts=summary, problems=problems, figures=list(pngs))
