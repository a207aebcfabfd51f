"""The report: verdicts, escaping, embedded figures, Markdown twin."""

import base64
import re
import shutil

import pytest
from analysis_fixtures import build_suite, make_run

from vaelik.analysis import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-runs")
    build_suite(root)
    make_run(root / "evil", EVIL, likelihood="laplace", sigma=0.08, mae=0.08, data=EVIL)
    out = tmp_path_factory.mktemp("report-out")
    result = write_report(root, out / "report.html", out / "report.md")
    return result, result.html.read_text(encoding="utf-8"), result.markdown.read_text(encoding="utf-8")


def test_every_claim_has_a_verdict(report):
    result, html, _ = report
    assert list(result.verdicts["claim"]) == [f"C{i}" for i in range(1, 9)]
    assert set(result.verdicts["verdict"]) == {"held"}
    assert html.index("Verdicts at a glance") < html.index("id='C1'")
    for claim in result.verdicts["claim"]:
        assert f"id='{claim}'" in html


def test_run_strings_are_escaped(report):
    _, html, md = report
    assert EVIL not in html and EVIL not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


MD_IMAGE = "![x](https://e.org/a.png)"


def test_run_strings_are_inert_in_both_outputs(tmp_path):
    """A run name that is Markdown or HTML markup is shown as text, never as markup."""
    runs = tmp_path / "runs"
    for name in (MD_IMAGE, EVIL, "a|b *bold* _em_"):
        make_run(runs, name, likelihood="laplace", sigma=0.08, mae=0.08)
    result = write_report(runs, tmp_path / "r.html", tmp_path / "r.md")
    html = result.html.read_text(encoding="utf-8")
    md = result.markdown.read_text(encoding="utf-8")
    # HTML: autoescaped text; no script element, every image source is an embedded PNG
    assert "<script" not in html.lower() and "&lt;script&gt;" in html
    assert re.findall(r"<img [^>]*src='(?!data:image/png;base64,)", html) == []
    assert "![x](https://e.org/a.png)" in html  # as text inside a table cell
    # Markdown: no live image, link, HTML or table break from a run name
    assert MD_IMAGE not in md and "![x]" not in md and "<script" not in md.lower()
    assert "!\\[x\\](https://e.org/a.png)" in md and "&lt;script&gt;" in md
    assert "a\\|b \\*bold\\* \\_em\\_" in md
    # the escaped bar splits no cell: the row of the runs table has as many cells as its header
    lines = md.splitlines()
    row = [line for line in lines if line.startswith("| a\\|b")][-1]
    header = [line for line in lines if line.startswith("| run | status |")][-1]
    assert len(re.split(r"(?<!\\)\|", row)) == len(re.split(r"(?<!\\)\|", header))


def test_figures_are_embedded_pngs(report):
    result, html, _ = report
    uris = re.findall(r"<img alt='[^']*' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", html)
    assert len(uris) == len(result.figures) >= 10
    for uri in uris:
        assert base64.b64decode(uri).startswith(PNG_MAGIC)


def test_self_contained(report):
    _, html, _ = report
    assert not re.search(r"(src|href)\s*=\s*['\"](?!data:|#)", html)
    assert "<link" not in html and "http://" not in html and "https://" not in html


def test_markdown_twin(report):
    result, _, md = report
    for claim in result.verdicts["claim"]:
        assert f"## {claim}:" in md
    for slug in result.figures:
        png = result.markdown.parent / f"report-{slug}.png"
        assert png.read_bytes().startswith(PNG_MAGIC)
        assert f"(report-{slug}.png)" in md


def test_arviz_sections(report):
    _, html, _ = report
    assert "PSIS-LOO comparison" in html
    assert "Runs left out of the comparison" in html and "bernoulli-s0" in html
    assert "ArviZ summary of Bayesian scales" in html and "hdi_lower" in html


def test_labels_say_what_was_computed(report):
    _, html, md = report
    # the PSIS-LOO columns are named for what was computed from the stored draws ...
    assert "<th>elpd_psis_loo</th><th>lppd_minus_elpd</th>" in html
    assert "| pareto_k_high |" in md
    for text in (html, md):
        # ... so no caption has to explain that its own numbers mean something else
        assert "what p_loo means" not in text and "not model complexity" not in text
        # C7: the bound from the split's H(x) estimate is not spelled like eval.json's c7_bound
        assert "mi_bound_estimate" in text and "h_x_estimate" in text and "c7_bound" not in text


def test_problems_are_listed(report):
    result, html, _ = report
    assert any("broken-run" in p for p in result.problems)
    assert "Problems met while reading" in html


def test_verdicts_turn_when_planted_wrong(tmp_path):
    make_run(tmp_path, "too-big", sigma=0.2, mse=0.01)  # σ²/MSE = 4
    make_run(tmp_path, "lin", model="linear", sigma=0.3, mse=0.09,
             ppca={"sigma2_learned": 0.2, "sigma2_ml": 0.09, "exact_log_px": -20.0, "ml_log_px": -19.9,
                   "elbo": -25.0})
    # C7: information that *rises* with the MSE contradicts the claim
    for i, mse in enumerate((0.01, 0.02, 0.04, 0.08)):
        make_run(tmp_path, f"c7-{i}", sigma=mse**0.5, mse=mse, mutual_info=1.0 + i)
    verdicts = write_report(tmp_path, tmp_path / "r.html").verdicts.set_index("claim")["verdict"]
    assert verdicts["C2"] == "did not hold"
    assert verdicts["C8"] == "did not hold"
    assert verdicts["C7"] == "did not hold"
    assert verdicts["C1"] == "held"
    assert verdicts["C6"].startswith("not measured in these runs:")
    assert verdicts["C4"].startswith("not measured in these runs:")


def test_empty_folder_gives_a_report(tmp_path):
    (tmp_path / "runs").mkdir()
    result = write_report(tmp_path / "runs", tmp_path / "r.html")
    assert all(v.startswith("not measured") for v in result.verdicts["verdict"])
    shutil.rmtree(tmp_path / "runs")


def test_c7_held_when_information_falls_with_mse(tmp_path):
    for i, mse in enumerate((0.01, 0.02, 0.04, 0.08)):
        make_run(tmp_path, f"c7-{i}", sigma=mse**0.5, mse=mse, mutual_info=5.0 - i)
    verdicts = write_report(tmp_path, tmp_path / "r.html").verdicts.set_index("claim")["verdict"]
    assert verdicts["C7"] == "held"
