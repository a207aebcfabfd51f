"""One self-contained HTML report (and its Markdown twin) over a folder of runs.

The report opens with the answer to "which likelihood fits this data best"
(:mod:`.ranking`: test bits/dim of the families scoring the same discrete data,
with paired standard errors), then judges every registered claim (:mod:`vaelik.analysis.claims`, C1-C8
by default): per claim the numbers measured, a verdict (``held`` / ``did not
hold`` / ``not measured in these runs: <why>``) with the tolerance it was judged
by, and a plain-language reading. Then the comparison table, reconstructions,
the model comparison of comparable runs, the ArviZ summary of Bayesian scales
and the runs found. This module assembles those sections; :mod:`.render` writes
them to HTML and Markdown (figures as base64 PNG data URIs in the HTML, which
loads nothing from elsewhere; every string from a run is escaped in both).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from matplotlib.figure import Figure

from vaelik.errors import InputError
from vaelik.rundir import atomic_write_bytes

from . import arviz_io, figures
from ._claim import converged_mask, is_true
from ._common import LINEAR_MODELS, num, scored_split
from .claims import Claim, Frames, judge_claims
from .compare import _GROUP, by_data_identity, comparison_table, format_mean_sd, heldout_ranking
from .outputs import check_report_paths
from .ranking import not_ranked, ranking_groups
from .render import Section, render
from .runs import RunFileError, Runs, load_images, load_pointwise, load_runs

__all__ = ["Section", "Report", "PSIS_LOO_COLUMNS", "build_sections", "claims_basis", "write_report"]

#: Display names of :func:`vaelik.analysis.compare_runs` columns whose ArviZ names say more than was
#: computed: ``p`` is lppd − elpd over the stored draws, ``warning`` that a Pareto k was high.
PSIS_LOO_COLUMNS = {"elpd": "elpd_psis_loo", "p": "lppd_minus_elpd", "warning": "pareto_k_high"}


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
    basis : str
        The line under the verdict summary: how many runs the claims rest on.
    left_out : pandas.DataFrame
        ``run, reason``: completed runs left out of the claims (not converged).
    """

    html: Path
    markdown: Path | None
    verdicts: pd.DataFrame
    problems: list[str]
    figures: list[str]
    basis: str = ""
    left_out: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["run", "reason"]))


# --------------------------------------------------------------------------- sections that are not claims

def _pick_per_likelihood(runs: pd.DataFrame) -> pd.DataFrame:
    # Prefer converged runs, the VAE / AE runs over the linear model, then the lowest seed.
    ordered = runs.assign(_unconv=~converged_mask(runs), _lin=runs["model"].astype(str).isin(LINEAR_MODELS),
                          _s=num(runs, "seed").fillna(0))
    ordered = ordered.sort_values(["likelihood", "_unconv", "_lin", "_s", "run"])
    return ordered.drop_duplicates("likelihood").drop(columns=["_unconv", "_lin", "_s"])


def _converged_text(runs: pd.DataFrame) -> pd.Series:
    """The report's ``converged`` column: ``yes``, ``no`` or ``not recorded``."""
    words = runs["convergence"] if "convergence" in runs.columns else pd.Series("not recorded", index=runs.index)
    return words.map({"converged": "yes", "not converged": "no"}).fillna("not recorded")


def _mark_converged(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with a ``run`` column) with a ``converged`` column after ``run``."""
    marks = dict(zip(runs["run"], _converged_text(runs), strict=False))
    out = table.copy()
    out.insert(list(out.columns).index("run") + 1, "converged", out["run"].map(marks).fillna("n/a"))
    return out


def _images_section(runs: pd.DataFrame, problems: list[str]) -> Section:
    images = {}
    for row in _pick_per_likelihood(runs).itertuples():
        mark = "" if converged_mask(runs.loc[runs["run"] == row.run]).all() else ", not converged"
        try:
            images[f"{row.likelihood} ({row.run}{mark})"] = load_images(row.path)
        except RunFileError as exc:
            problems.append(f"{row.run}: {exc}")
    return Section("images", "Reconstructions and prior samples",
                   reading="One run per likelihood (lowest seed). Reconstructions are the observation mean at "
                           "z = E_q[z]; prior samples are observation means at z ~ N(0, I).",
                   figures=[("reconstructions", "originals and reconstructions per likelihood",
                             figures.plot_reconstructions(images)),
                            ("prior-samples", "decoded prior samples per likelihood", figures.plot_prior_samples(images))])


def _ranking_section(runs: pd.DataFrame, problems: list[str]) -> Section:
    """The report's first table: families ranked by test bits/dim on the same discrete data."""
    groups = ranking_groups(runs, load_pointwise, problems)
    tables = [(g.caption, g.table) for g in groups]
    left = not_ranked(runs)
    numbers = [] if groups else ["No completed run scores discrete data in bits/dim (a discretised family, "
                                 "a dequantised density or a Bernoulli on binary data): nothing to rank."]
    if not left.empty:
        tables.append(("Runs not ranked in bits/dim, and why", left))
    return Section("ranking", "Which likelihood fits this data best", numbers=numbers, lead=True,
                   reading="Test bits/dim (lower is better), importance-sampled, per data set and per discrete "
                           "data scored (its grey levels, or its binarised version: a Bernoulli is ranked "
                           "only there). exact: a discretised family's log probability mass; bound: a "
                           "continuous density trained and scored on uniformly dequantised data, "
                           "−(log p(x̃) − d·log L)/(d·ln 2), an upper bound on the same discrete bits/dim. "
                           "Runs of one configuration pool their seeds; se is that mean's standard error over "
                           "test images; diff and paired se compare each row with the best, pairing the same "
                           "test image of the same seed (docs/report.md). A difference several paired se wide "
                           "is real. MSE (against the data each run was scored on), the learned scale and "
                           "the active units are means over the runs.",
                   tables=tables)


def _families_section(frames: Frames) -> Section:
    """One identity panel per likelihood family, labelled by the facts the family stated."""
    ident = frames.identity
    if ident.empty:
        return Section("families", "Each family against its own loss",
                       reading="No run with pointwise.csv: nothing to draw.")
    # one run per family: a global scale (where the family states a line) first, then the lowest seed
    order = ident.assign(_no_line=num(ident, "slope_theory").isna())
    picked = order.sort_values(["_no_line", "run"]).drop_duplicates("family").drop(columns="_no_line")
    cols = [c for c in ("family", "run", "scale_mode", "loss_sum_label", "slope", "slope_theory", "r2",
                        "reason") if c in picked.columns]
    return Section("families", "Each family against its own loss",
                   reading="For one run of every likelihood family found, the reconstruction term per test "
                           "example against the summed loss the family states it is equivalent to (its "
                           "label comes from the family's facts in eval.json). The black line is the exact "
                           "relation the family states, where it states one; the dotted line is the "
                           "least-squares fit.",
                   tables=[("One run per family", picked[cols].reset_index(drop=True))],
                   figures=[("families-identity", "recon against each family's summed loss",
                             figures.plot_identity(frames.points, picked))])


def _comparison_section(runs: pd.DataFrame) -> Section:
    runs = by_data_identity(runs)  # one group per data set *and* its options
    table = format_mean_sd(comparison_table(runs))
    if not table.empty:  # how many runs of each group converged, e.g. "1 of 2"
        ok = runs.assign(_ok=converged_mask(runs)).groupby(_GROUP, sort=True, dropna=False)["_ok"]
        counts = ok.agg(lambda s: f"{int(s.sum())} of {len(s)}").rename("converged").reset_index()
        table = table.merge(counts, on=_GROUP, how="left")
        table.insert(list(table.columns).index("n_runs") + 1, "converged", table.pop("converged"))
    return Section("comparison", "Test metrics over likelihood × scale",
                   reading="All completed runs, converged or not (column converged: how many runs of the "
                           "group converged). Mean ± sd over seeds. MSE, MAE and BCE are computed from the mean of the observation "
                           "distribution for every family (loc for Normal/Laplace, probs for Bernoulli, the mean — "
                           "not λ — for the continuous Bernoulli). ELBO and log p(x) are shown only for runs whose "
                           "likelihood is a normalised density on the data.",
                   tables=[("Comparison (mean ± sd over seeds)", table)],
                   figures=[("test-metrics", "test metrics per likelihood, error bars = sd over seeds",
                             figures.plot_test_metrics(runs))])


def _arviz_section(runs: pd.DataFrame, problems: list[str]) -> Section:
    numbers: list[str] = []
    tables: list[tuple[str, pd.DataFrame]] = []
    comparable = runs["comparable"].map(is_true) if "comparable" in runs.columns else pd.Series(False, index=runs.index)
    excluded = runs[~comparable]
    excluded_frame = pd.DataFrame({
        "run": excluded["run"],
        "reason": [str(r) if isinstance(r, str) and r else "comparable is not true in eval.json"
                   for r in (excluded["comparable_reason"] if "comparable_reason" in excluded.columns
                             else [None] * len(excluded))],
    }, dtype=object)  # rows are added below (an unreadable posterior.nc): text, even when empty
    datas: dict[str, dict] = {}
    # the test split is drawn from the seed: only runs with the same data set, data options,
    # seed and test size are scored on the same test points
    splits = scored_split(runs) + _log_p_kind(runs)
    for row in runs[comparable].itertuples():
        path = Path(row.path) / "posterior.nc"
        try:
            data = arviz_io.load_run_data(path)
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{row.run}: {path.name} unreadable ({exc})")
            excluded_frame.loc[len(excluded_frame)] = [row.run, f"{path.name} unreadable"]
            continue
        datas.setdefault(splits[row.Index], {})[row.run] = data
    for data_name, group in sorted(datas.items()):
        if len(group) < 2:
            numbers.append(f"{data_name}: only one comparable run ({', '.join(group)}); nothing to compare")
            continue
        paths = dict(zip(runs["run"], runs["path"], strict=False))
        try:
            ranking = heldout_ranking({name: load_pointwise(paths[name]) for name in group})
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"held-out ranking on {data_name} failed: {exc}")
        else:
            tables.append((f"Ranking by summed test log p(x) on {data_name} ("
                           "nats; diff and dse against the best run, paired over test points)",
                           _mark_converged(ranking.reset_index(names="run"), runs)))
        try:
            table = arviz_io.compare_runs(group)
        except (ValueError, TypeError) as exc:
            problems.append(f"ArviZ comparison on {data_name} failed: {exc}")
            continue
        caption = (f"ArviZ PSIS-LOO comparison (az.compare) on {data_name} of the "
                   "log-likelihood draws in each run's posterior.nc; elpd_psis_loo in nats summed over test "
                   "points; lppd_minus_elpd = lppd − elpd_psis_loo (ArviZ's p_loo); pareto_k_high: some "
                   "Pareto k above ArviZ's threshold")
        tables.append((caption, _mark_converged(table.rename(columns=PSIS_LOO_COLUMNS).reset_index(names="run"),
                                                runs)))
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
                       _mark_converged(pd.concat(summaries, ignore_index=True), runs)))
    else:
        numbers.append("No Bayesian-scale runs: no scale posterior to summarise.")
    return Section("arviz", f"ArviZ model comparison and Bayesian scales (ArviZ {arviz_io.arviz_version()})",
                   numbers=numbers,
                   reading="log p(x) per test point is estimated by importance sampling (IWAE, K samples) on held-out "
                           "test points, so the first table — the summed test log p(x) with paired standard errors "
                           "— is the ranking to read: a difference several dse wide is real. Only runs whose "
                           "likelihood is a normalised density on the same test points are compared, and "
                           "log masses (discretised families) apart from densities of dequantised data: in "
                           "nats they differ by d·log L (the bits/dim table at the top puts them on one "
                           "scale). The "
                           "PSIS-LOO table applies ArviZ's az.compare to the log-likelihood draws each run stored "
                           "in posterior.nc: lppd_minus_elpd is how far the PSIS-LOO estimate lies below the log "
                           "of the mean draw, and it grows with the spread of the draws, as the Pareto k values "
                           "do. Caution on quantised data such as "
                           "the digits (17 grey levels, a blank border): a density can grow without bound on "
                           "values that repeat exactly, so a family that puts a spike there (the continuous "
                           "Bernoulli near 0, a per-dimension σ near its lower bound) ranks high for that reason, "
                           "not for sharper reconstructions — read the ranking next to the MSE.",
                   tables=tables)


#: what a run's log p(x) is, by eval.json ``bits_per_dim_kind``: log masses and log densities of
#: dequantised data are never summed against each other (they differ by d·log L)
_LOG_P_KINDS = {"exact": " (log masses)", "bound": " (densities of dequantised data)"}


def _log_p_kind(runs: pd.DataFrame) -> pd.Series:
    """A suffix of the scored split that keeps log masses, dequantised and plain densities apart."""
    if "bits_per_dim_kind" not in runs.columns:
        return pd.Series("", index=runs.index, dtype=object)
    return runs["bits_per_dim_kind"].map(lambda k: _LOG_P_KINDS.get(k, "") if isinstance(k, str) else "")


def claims_basis(frames: Frames) -> str:
    """One line: how many runs the claims rest on, and how many were left out and why."""
    total, left = len(frames.completed), len(frames.left_out)
    text = f"The claims rest on {total - left} of {total} completed runs"
    if left:
        return text + f"; {left} of {total} left out: not converged."
    return text + " (every completed run converged or does not record it)."


def _convergence_section(frames: Frames) -> Section:
    done = frames.completed
    numbers = [claims_basis(frames)]
    if "convergence" in done.columns:
        unrecorded = done.loc[done["convergence"] == "not recorded", "run"].astype(str).tolist()
        if unrecorded:
            numbers.append(f"{len(unrecorded)} run(s) do not record convergence (eval.json written by an "
                           f"older vaelik), counted as converged: {', '.join(unrecorded)}")
    tables = []
    if not frames.left_out.empty:
        tables.append((f"Runs left out of the claims ({len(frames.left_out)} of {len(done)}: not converged)",
                       frames.left_out))
    return Section("convergence", "Convergence: the runs the claims rest on", numbers=numbers,
                   reading="A claim about a fitted model says something only about a fit that has converged: "
                           "every claim above is judged on the completed runs whose eval.json says "
                           "converged: true (or does not record it). A run is not converged when its ELBO "
                           "still rose over its last epochs, its learned scale was off its target on the "
                           "training split, a scale sat at its floor where the data vary, or no latent unit "
                           "was active (docs/convergence.md, 'Did it converge?'). The comparison, images and "
                           "ArviZ sections show every completed run and mark the unconverged ones.",
                   tables=tables)


def _runs_section(all_runs: pd.DataFrame, problems: list[str]) -> Section:
    cols = [c for c in ("run", "status", "convergence", "likelihood", "scale", "scale_mode", "model", "data",
                        "seed", "latent_dim") if c in all_runs.columns]
    tables = [("All runs found", all_runs[cols].reset_index(drop=True))]
    if problems:
        tables.append(("Problems met while reading", pd.DataFrame({"problem": problems})))
    return Section("runs", "Runs", reading="Only runs whose status is 'completed' enter the analyses above; "
                                           "the claims use only those that converged (column convergence).",
                   tables=tables)


def build_sections(runs: Runs, claims: Iterable[Claim] | None = None) -> tuple[list[Section], list[str]]:
    """Compute every section of the report from loaded runs.

    Parameters
    ----------
    runs : Runs
        :func:`vaelik.analysis.load_runs` of the runs folder.
    claims : iterable of Claim, optional
        The claims to judge, in order; default every registered claim (C1..C8).

    Returns
    -------
    sections : list of Section
        The bits/dim ranking (``lead``: rendered before the verdict summary), the
        claims, then families, comparison, images, ArviZ, convergence (the runs
        the claims rest on), runs.
    problems : list of str
        :attr:`Runs.problems` plus problems met here.
    """
    frames = Frames.from_runs(runs)
    problems = [*runs.problems, *frames.problems]
    done = frames.completed  # every completed run; the unconverged ones are marked
    sections = [
        _ranking_section(done, problems),
        *judge_claims(frames, claims),
        _families_section(frames),
        _comparison_section(done),
        _images_section(done, problems),
        _arviz_section(done, problems),
        _convergence_section(frames),
    ]
    sections.append(_runs_section(runs.runs, problems))
    return sections, problems


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    """Write one report file (its folder created); an unwritable place is an :class:`InputError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; choose another -o") from exc


def write_report(runs_dir: str | Path, out_html: str | Path, out_md: str | Path | None = None, *,
                 claims: Iterable[Claim] | None = None) -> Report:
    """Analyse every run under ``runs_dir`` and write the report.

    Parameters
    ----------
    runs_dir : str or Path
        A run directory, a folder of runs or a sweep folder (see :func:`vaelik.analysis.load_runs`).
    out_html : str or Path
        The self-contained HTML file to write (figures as base64 PNG data URIs,
        inline CSS, no external resources); its name ends in ``.html``.
    out_md : str or Path, optional
        Also write the same text and tables as Markdown (a name ending in ``.md``);
        figures are saved as ``<stem>-<figure>.png`` beside it.
    claims : iterable of Claim, optional
        The claims to judge, in order; default every registered claim
        (:data:`vaelik.analysis.claims.CLAIMS`).

    Returns
    -------
    Report
        Paths written, the verdict summary and the problems met.

    Raises
    ------
    InputError
        Before anything is read or written, if an output would replace a file of
        another kind (:func:`vaelik.analysis.outputs.check_report_paths`); and if
        an output cannot be written (a read-only place), naming it.

    Examples
    --------
    >>> write_report("sweeps/likelihoods", "report.html", "report.md")  # doctest: +SKIP
    """
    check_report_paths(out_html, out_md)
    runs = load_runs(runs_dir)
    sections, problems = build_sections(runs, claims)
    convergence = next(s for s in sections if s.key == "convergence")
    basis = convergence.numbers[0]
    if convergence.tables:
        basis += " The section 'Convergence' lists them and why."
    left_out = convergence.tables[0][1] if convergence.tables else pd.DataFrame(columns=["run", "reason"])
    summary = pd.DataFrame(
        [{"claim": s.key, "title": s.title, "verdict": s.verdict, "tolerance": s.tolerance}
         for s in sections if s.verdict is not None],
        columns=["claim", "title", "verdict", "tolerance"],
    )
    pngs = {slug: _png(fig) for s in sections for slug, _, fig in s.figures}
    out_html = Path(out_html)
    uris = {slug: "data:image/png;base64," + base64.b64encode(data).decode("ascii") for slug, data in pngs.items()}
    _write(out_html, render(sections, summary, str(runs_dir), "html", uris, basis).encode("utf-8"))
    md_path = None
    if out_md is not None:
        md_path = Path(out_md)
        files = {}
        for slug, data in pngs.items():
            name = f"{md_path.stem}-{slug}.png"
            _write(md_path.parent / name, data)
            files[slug] = quote(name)  # a link target: "(", ")" or spaces in the stem must not end it
        _write(md_path, render(sections, summary, str(runs_dir), "md", files, basis).encode("utf-8"))
    return Report(html=out_html, markdown=md_path, verdicts=summary, problems=problems, figures=list(pngs),
                  basis=basis, left_out=left_out)
