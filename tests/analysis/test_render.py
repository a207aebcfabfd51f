"""One structure to HTML and Markdown: escaping, tables, verdict classes."""

import re

import pandas as pd
import pytest

from vaelik.analysis.render import Section, escape_md, format_cell, render
from vaelik.errors import InputError


@pytest.mark.parametrize(("text", "shown"), [
    ("![x](https://e.org/a.png)", "!\\[x\\](https://e.org/a.png)"),
    ("[link](javascript:x)", "\\[link\\](javascript:x)"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("a|b", "a\\|b"),
    ("*bold* _em_ `code` ~~gone~~", "\\*bold\\* \\_em\\_ \\`code\\` \\~\\~gone\\~\\~"),
    ("# heading", "\\# heading"),
    ("- item", "\\- item"),
    ("1. item", "1\\. item"),
    ("two\nlines", "two lines"),
    ("&amp;", "&amp;amp;"),
    ("scale_mode σ_j", "scale_mode σ_j"),  # an underscore inside a word opens nothing
])
def test_escape_md(text, shown):
    assert escape_md(text) == shown


def test_format_cell():
    assert [format_cell(v) for v in (1.23456789, float("nan"), None, True, 3, "x")] == [
        "1.23457", "n/a", "n/a", "True", "3", "x"]


def _sections():
    evil = "<b>![x](https://e.org/a.png)</b>"
    table = pd.DataFrame({"run": [evil, "ok"], "value": [-1.5, 2.0], "why": ["r" * 50, ""]})
    return [
        Section("C1", f"title {evil}", "held", "|x − 1| < 0.1", f"statement {evil}", [f"number {evil}"],
                f"reading {evil}", [(f"caption {evil}", table), ("empty", table.iloc[0:0])]),
        Section("runs", "Runs", reading="plain"),
    ]


def _summary():
    return pd.DataFrame([{"claim": "C1", "title": "t <i>", "verdict": "held", "tolerance": "|x − 1| < 0.1"}])


def test_both_formats_render_the_same_sections():
    html = render(_sections(), _summary(), "src <dir>", "html", {})
    md = render(_sections(), _summary(), "src <dir>", "md", {})
    for text in (html, md):
        assert "<b>" not in text and "<i>" not in text and "<dir>" not in text
        assert text.count("held") >= 2
    assert "![x](" not in md  # in HTML it is plain text
    assert "<section id='C1'>" in html and "class='verdict held'" in html
    assert "<td class='prose'>" + "r" * 50 + "</td>" in html
    assert "<p><em>(no rows)</em></p>" in html
    assert "## C1: title &lt;b&gt;!\\[x\\](https://e.org/a.png)&lt;/b&gt;" in md
    assert "**Verdict: held** — tolerance: \\|x − 1\\| &lt; 0.1" in md
    assert "| &lt;b&gt;!\\[x\\](https://e.org/a.png)&lt;/b&gt; | -1.5 | " in md  # a negative number stays as is
    assert "_(no rows)_" in md
    assert re.search(r"^## Runs$", md, re.M) and re.search(r"^> plain$", md, re.M)
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_unknown_format():
    with pytest.raises(InputError, match="'html' or 'md'"):
        render([], _summary(), "src", "pdf", {})
