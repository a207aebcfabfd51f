"""Claims as data: tolerances written once, tolerance text generated, a new claim is one entry."""

from dataclasses import replace

import pandas as pd
import pytest
from analysis_fixtures import make_run

from vaelik.analysis import write_report
from vaelik.analysis.claims import CLAIMS, Claim, Judgement, register_claim, verdict_of
from vaelik.errors import InputError


def test_c1_to_c8_are_registered_in_order():
    assert list(CLAIMS)[:8] == [f"C{i}" for i in range(1, 9)]


@pytest.mark.parametrize("claim_id", [f"C{i}" for i in range(1, 9)])
def test_tolerance_text_is_generated_from_the_numbers(claim_id):
    claim = CLAIMS[claim_id]
    assert claim.tolerances, f"{claim_id} states no tolerance"
    # move every tolerance to a number that appears nowhere else: each must show up in the text
    moved = {name: 1000 + i for i, name in enumerate(claim.tolerances)}
    text = replace(claim, tolerances=moved).tolerance_text()
    for value in moved.values():
        assert str(value) in text
    for value in claim.tolerances.values():
        assert f"{value:g}".replace("-", "−") in claim.tolerance_text()


def test_tolerance_template_must_name_exactly_the_tolerances():
    with pytest.raises(InputError, match="tolerance_template"):
        Claim("CX", "t", "s", {"ratio": 0.1}, "|x − 1| < 0.1", judge=lambda f, t: None)
    with pytest.raises(InputError, match="tolerance_template"):
        Claim("CX", "t", "s", {}, "|x − 1| < {ratio}", judge=lambda f, t: None)


@pytest.fixture
def too_big(tmp_path):
    """One learned-σ Normal run with σ²/MSE = 4, and one linear run for C8."""
    make_run(tmp_path / "runs", "too-big", sigma=0.2, mse=0.01)
    return tmp_path / "runs"


def test_changing_a_tolerance_changes_verdict_and_text(too_big, tmp_path):
    c2 = CLAIMS["C2"]
    strict = write_report(too_big, tmp_path / "a.html", claims=[c2]).verdicts.set_index("claim")
    assert strict.loc["C2", "verdict"] == "did not hold"
    assert strict.loc["C2", "tolerance"].startswith("|σ²/MSE − 1| < 0.1,")
    loose = write_report(too_big, tmp_path / "b.html", tmp_path / "b.md",
                         claims=[replace(c2, tolerances={"ratio": 3.5})])
    row = loose.verdicts.set_index("claim").loc["C2"]
    assert row["verdict"] == "held"
    assert row["tolerance"].startswith("|σ²/MSE − 1| < 3.5,")
    md = loose.markdown.read_text(encoding="utf-8")
    assert "tolerance: \\|σ²/MSE − 1\\| &lt; 3.5," in md
    assert "&lt; 3.5," in loose.html.read_text(encoding="utf-8")
    assert list(loose.verdicts["claim"]) == ["C2"]


def _judge_enough_runs(frames, tol):
    """Toy claim: at least ``min_runs`` completed runs were found."""
    n = len(frames.runs)
    table = pd.DataFrame({"run": frames.runs["run"], "status": frames.runs["status"]})
    return Judgement(verdict_of([n >= tol["min_runs"]], "no runs"), [f"{n} completed runs"],
                     [("Runs counted", table)])


def test_a_new_claim_is_one_entry_plus_its_judge(too_big, tmp_path):
    toy = Claim("C9", "Enough runs", "The folder holds at least a few completed runs.",
                {"min_runs": 1}, "at least {min_runs} completed run(s)", _judge_enough_runs,
                reading="A toy claim registered by a test.")
    register_claim(toy)
    try:
        with pytest.raises(InputError, match="already registered"):
            register_claim(toy)
        result = write_report(too_big, tmp_path / "r.html", tmp_path / "r.md")
    finally:
        CLAIMS.pop("C9")
    row = result.verdicts.set_index("claim").loc["C9"]
    assert (row["title"], row["verdict"], row["tolerance"]) == (
        "Enough runs", "held", "at least 1 completed run(s)")
    html = result.html.read_text(encoding="utf-8")
    md = result.markdown.read_text(encoding="utf-8")
    assert "id='C9'" in html and "href='#C9'" in html and "Runs counted" in html
    assert "## C9: Enough runs" in md and "1 completed runs" in md
    assert "tolerance: at least 1 completed run(s)" in md
    assert list(result.verdicts["claim"]) == [*(f"C{i}" for i in range(1, 9)), "C9"]
