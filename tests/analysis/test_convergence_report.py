"""Claims rest on converged runs: unconverged runs are left out, listed and marked (fixture runs)."""

import math

import pytest
from analysis_fixtures import make_run

from vaelik.analysis import load_runs, write_report
from vaelik.analysis.claims import CLAIMS, Frames

REASON = "σ²/MSE = 2 on the training split (|·−1| > 0.1): the scale lags the decoder; raise --scale-lr-factor or --epochs"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("convergence-runs")
    mse = 0.01
    make_run(root, "good", sigma=math.sqrt(1.02 * mse), mse=mse)
    # unconverged: σ²/MSE = 2 would make C2 fail if it were judged
    make_run(root, "lagging", sigma=math.sqrt(2.0 * mse), mse=mse, seed=1, converged=False,
             convergence_reasons=[REASON, "another reason"])
    make_run(root, "old", sigma=math.sqrt(0.99 * mse), mse=mse, seed=2, converged=None)
    return root


def test_runs_table_has_the_convergence_columns(runs_root):
    runs = load_runs(runs_root).runs.set_index("run")
    assert runs.loc["good", "convergence"] == "converged" and runs.loc["good", "converged"]
    assert runs.loc["lagging", "convergence"] == "not converged" and not runs.loc["lagging", "converged"]
    assert runs.loc["lagging", "convergence_reasons"] == f"{REASON}; another reason"
    assert runs.loc["old", "convergence"] == "not recorded" and runs.loc["old", "converged"]


def test_frames_leave_unconverged_runs_out(runs_root):
    frames = Frames.from_runs(load_runs(runs_root))
    assert set(frames.runs["run"]) == {"good", "old"}
    assert set(frames.completed["run"]) == {"good", "lagging", "old"}
    assert "lagging" not in set(frames.sigma["run"]) and "lagging" not in set(frames.metrics["run"])
    assert list(frames.left_out["run"]) == ["lagging"]
    assert frames.left_out["reason"][0] == f"not converged: {REASON}; another reason"
    # C2 is judged without the lagging run: held; with it, it would not hold
    assert CLAIMS["C2"].judge(frames, CLAIMS["C2"].tolerances).verdict == "held"


def test_report_says_what_it_left_out(runs_root, tmp_path):
    report = write_report(runs_root, tmp_path / "r.html", tmp_path / "r.md")
    assert report.basis == ("The claims rest on 2 of 3 completed runs; 1 of 3 left out: not converged. "
                            "The section 'Convergence' lists them and why.")
    assert list(report.left_out["run"]) == ["lagging"]
    assert report.verdicts.set_index("claim").loc["C2", "verdict"] == "held"
    html = report.html.read_text(encoding="utf-8")
    md = report.markdown.read_text(encoding="utf-8")
    for text in (html, md):
        assert "The claims rest on 2 of 3 completed runs" in text
        assert "Runs left out of the claims (1 of 3: not converged)" in text
        assert "do not record convergence" in text and "not recorded" in text
    # the summary line comes before the first claim
    assert html.index("The claims rest on") < html.index("id='C1'")
    # the comparison marks how many runs of a group converged
    assert "2 of 3" in md


def test_all_runs_converged_says_so(tmp_path):
    make_run(tmp_path / "runs", "only", sigma=0.1, mse=0.01)
    report = write_report(tmp_path / "runs", tmp_path / "r.html")
    assert report.basis.startswith("The claims rest on 1 of 1 completed runs (every completed run converged")
    assert report.left_out.empty


def test_no_converged_run_leaves_every_claim_unmeasured(tmp_path):
    """Every run left out (a demo of one epoch): the report is written, no claim is judged."""
    from analysis_fixtures import build_suite

    root = tmp_path / "runs"
    build_suite(root)
    for eval_json in root.rglob("eval.json"):
        text = eval_json.read_text(encoding="utf-8")
        if '"converged": true' in text:
            eval_json.write_text(text.replace('"converged": true', '"converged": false'), encoding="utf-8")
    report = write_report(root, tmp_path / "r.html", tmp_path / "r.md")
    assert report.basis.startswith("The claims rest on 0 of ")
    assert all(v.startswith("not measured") for v in report.verdicts["verdict"]), report.verdicts
