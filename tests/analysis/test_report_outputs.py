"""The report's outputs: ``-o`` names one format, never replaces a file of another kind.

``vaelik report RUNS -o out/report.md`` used to write the HTML to ``report.md`` and
then the Markdown over it. And every string a user chose (run names, data file
names, likelihood modules, the runs folder) reaches report.md as text.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from analysis_fixtures import make_run

from vaelik.analysis import write_report
from vaelik.analysis.outputs import check_report_paths, report_paths
from vaelik.cli import main
from vaelik.errors import InputError
from vaelik.rundir import CONFIG_FILE


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "a", likelihood="laplace", sigma=0.08, mae=0.08)
    return root


@pytest.mark.parametrize(("output", "html", "md"), [
    ("r.html", "r.html", "r.md"),
    ("r.md", "r.html", "r.md"),
    ("r", "r.html", "r.md"),
    ("R.HTM", "R.HTM", "R.md"),
])
def test_report_paths_by_suffix(tmp_path, output, html, md):
    assert report_paths(tmp_path / output) == (tmp_path / html, tmp_path / md)


def test_report_paths_refusals(tmp_path):
    with pytest.raises(InputError, match=r"name the report NAME\.html or NAME\.md"):
        report_paths(tmp_path / "r.txt")
    with pytest.raises(InputError, match="--markdown .* another"):
        report_paths(tmp_path / "r.md", tmp_path / "other.md")
    with pytest.raises(InputError, match="must end in .md"):
        report_paths(tmp_path / "r.html", tmp_path / "r.html")
    (tmp_path / "d.html").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        report_paths(tmp_path / "d.html")
    with pytest.raises(InputError, match="HTML report .* must end in .html"):
        check_report_paths(tmp_path / "x.md", tmp_path / "x.md")


#: the CLI's parser lists the registries (likelihoods, ELBOs, ...), which import torch; the
#: torch-free analysis environment (.ci/analysis-py312.sh) tests the same paths through the API
needs_cli = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                               reason="vaelik's CLI needs torch to build its parser")


@needs_cli
def test_report_to_a_markdown_name_writes_markdown_there(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", str(runs), "-o", str(out / "report.md")]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert md.startswith("# vaelik") and "<html" not in md.lower()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert f"wrote {out / 'report.html'}" in capsys.readouterr().out


@needs_cli
@pytest.mark.parametrize("argv", [["-o", "notes.txt"], ["-o", "r.md", "--markdown", "x.md"],
                                  ["--markdown", "keep.html"]])
def test_refused_outputs_touch_nothing(runs, tmp_path, capsys, argv):
    for name in ("notes.txt", "keep.html"):
        (tmp_path / name).write_text("the user's own file", encoding="utf-8")
    argv = [a if a.startswith("-") else str(tmp_path / a) for a in argv]
    assert main(["report", str(runs), *argv]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.html", "notes.txt"]
    for name in ("notes.txt", "keep.html"):
        assert (tmp_path / name).read_text(encoding="utf-8") == "the user's own file"


def test_write_report_api_refuses_before_reading(runs, tmp_path):
    with pytest.raises(InputError):
        write_report(runs, tmp_path / "report.md", tmp_path / "report.md")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_one_input_error(runs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="cannot write"):
        write_report(runs, blocker / "sub" / "r.html")


ATTACKS = ("![x](https://e.org/a.png)", "[a](javascript:alert(1))", "<img src=x onerror=alert(1)>")


# the hostile names are long tick labels: the bar chart has no room left for its axes (a figure
# layout matter, not what is tested here)
@pytest.mark.filterwarnings("ignore:constrained_layout not applied")
def test_user_strings_reach_markdown_as_text(tmp_path):
    """Run names, data names, likelihood modules and options are shown, never rendered."""
    runs = tmp_path / "runs"
    for i, attack in enumerate(ATTACKS):
        make_run(runs, attack, likelihood="laplace", sigma=0.08, mae=0.08, data=f"data{i}{attack}.npy")
        config_path = runs / attack.replace("/", "_").replace("<", "_").replace(">", "_") / CONFIG_FILE
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["likelihood"] = f"mod{i}.py:{attack}"
        config["data_options"] = {"note": attack}
        config_path.write_text(json.dumps(config), encoding="utf-8")
    result = write_report(runs, tmp_path / "r.html", tmp_path / "r.md")
    md = result.markdown.read_text(encoding="utf-8")
    html = result.html.read_text(encoding="utf-8")
    for attack in ATTACKS:
        assert attack not in md
    # no image, link or HTML element in the Markdown but the report's own figures
    images = re.findall(r"(?<!\\)!\[[^\]]*\]\(([^)]*)\)", md)
    assert images and all(src.startswith("r-") and src.endswith(".png") for src in images)
    assert not re.search(r"(?<![\\!])\[[^\]]*\]\((?!r-)", md)
    assert "<img" not in md and "javascript:alert" not in re.sub(r"\\\[a\\\]\(javascript:alert", "", md)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
