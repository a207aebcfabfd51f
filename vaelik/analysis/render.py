"""One structure, two formats: the report's sections rendered to HTML and Markdown.

A report is a list of :class:`Section` (text, tables, figures) plus the verdict
summary. :func:`render` turns it into HTML or Markdown through the jinja2
templates ``templates/report.html.j2`` and ``templates/report.md.j2``; both
templates walk the same view of the sections, so the two outputs cannot drift.

Escaping: every string reaches the page through the template engine. HTML uses
jinja2's autoescape; Markdown escapes every interpolated value with
:func:`escape_md` (set as the environment's ``finalize``), so a run named
``![x](https://…)`` or ``<script>`` is shown as text in both outputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import jinja2
import markupsafe
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vaelik.errors import InputError

from ._common import HELD, NOT_HELD

__all__ = ["Section", "render", "escape_md", "format_cell"]

#: A table cell longer than this is prose (reasons, methods) and gets a readable width in HTML.
PROSE_CHARS = 40


@dataclass
class Section:
    """One block of the report: text, tables and figures, rendered to HTML and Markdown.

    Attributes
    ----------
    key : str
        ``C1`` .. ``C8`` for claims, a short slug otherwise (used in anchors).
    title : str
    verdict : str or None
        ``held``, ``did not hold`` or ``not measured in these runs: <why>``; None for
        sections that are not claims.
    tolerance : str
        The tolerance the verdict was judged by, as text.
    statement : str
        What is claimed, exactly.
    numbers : list of str
        Measured numbers, one line each.
    reading : str
        The plain-language reading.
    tables : list of (caption, DataFrame)
    figures : list of (slug, caption, Figure)
    lead : bool
        Shown before the verdict summary (the bits/dim ranking, the report's first table).
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
    lead: bool = False


# --------------------------------------------------------------------------- cells and escaping

def format_cell(value: object) -> str:
    """Display text of one table cell: floats as ``.6g``, missing values as ``n/a``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(float(value)) else f"{float(value):.6g}"
    if value is None or value is pd.NA:
        return "n/a"
    return str(value)


# Characters that can open inline Markdown (GitHub flavour) anywhere in a line. An underscore
# between two letters or digits (scale_mode, σ_j) opens nothing and is left as it is.
_MD_INLINE = re.compile(r"([\\`*\[\]|~]|(?<![^\W_])_|_(?![^\W_]))")
# Characters that open a block construct when they start a line (heading, quote, list, rule).
_MD_LINE_START = re.compile(r"^\s*(?=[#+=-])|^\s*\d+(?=[.)])")


def _escape_inline(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_INLINE.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))


def escape_md(value: object) -> str:
    r"""Text that Markdown shows literally: no links, images, emphasis, HTML or table breaks.

    ``&``, ``<`` and ``>`` become HTML entities; ``\ ` * [ ] | ~`` and an ``_``
    not between two letters or digits are backslash-escaped; a leading ``#``, ``+``,
    ``=``, ``-`` or ``1.`` is escaped; newlines become spaces.

    Examples
    --------
    >>> print(escape_md("![x](https://e.org/a.png) <script>"))
    !\[x\](https://e.org/a.png) &lt;script&gt;
    >>> print(escape_md("# not a heading"))
    \# not a heading
    """
    return _MD_LINE_START.sub(lambda m: m.group(0) + "\\", _escape_inline(value), count=1)


def _md_row(cells: Iterable[object]) -> markupsafe.Markup:
    # One table row; in a cell a leading "-" or "1." opens nothing, so negative numbers stay as they are.
    return markupsafe.Markup("| " + " | ".join(_escape_inline(c) for c in cells) + " |")


def _finalize_md(value: object) -> str:
    # Every {{ value }} of the Markdown template; only md_row output (and |safe macros) is Markup.
    return value if isinstance(value, markupsafe.Markup) else escape_md(value)


def _verdict_class(verdict: str) -> str:
    if verdict == HELD:
        return "held"
    if verdict == NOT_HELD:
        return "notheld"
    return "notmeasured"


# --------------------------------------------------------------------------- the view both templates read

@dataclass(frozen=True)
class _Cell:
    text: str
    prose: bool


@dataclass(frozen=True)
class _Table:
    caption: str
    columns: list[str]
    rows: list[list[_Cell]]


@dataclass(frozen=True)
class _Figure:
    slug: str
    caption: str
    src: str


def _table(caption: str, frame: pd.DataFrame) -> _Table:
    rows = [[_Cell(text, len(text) > PROSE_CHARS) for text in map(format_cell, row)]
            for row in frame.itertuples(index=False, name=None)]
    return _Table(caption, [format_cell(c) for c in frame.columns], rows)


def _view(section: Section, figure_src: Mapping[str, str]) -> dict:
    return {
        "key": section.key,
        "heading": f"{section.key}: {section.title}" if section.verdict is not None else section.title,
        "statement": section.statement,
        "verdict": section.verdict,
        "verdict_class": _verdict_class(section.verdict) if section.verdict is not None else "",
        "tolerance": section.tolerance,
        "numbers": list(section.numbers),
        "reading": section.reading,
        "tables": [_table(caption, frame) for caption, frame in section.tables],
        "figures": [_Figure(slug, caption, figure_src[slug]) for slug, caption, _ in section.figures],
        "lead": section.lead,
    }


@cache
def _environment(fmt: str) -> jinja2.Environment:
    loader = jinja2.PackageLoader("vaelik.analysis", "templates")
    if fmt == "html":
        return jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                  undefined=jinja2.StrictUndefined)
    env = jinja2.Environment(loader=loader, autoescape=False, finalize=_finalize_md, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["md_row"] = _md_row
    return env


def render(sections: list[Section], summary: pd.DataFrame, source: str, fmt: Literal["html", "md"],
           figure_src: Mapping[str, str], basis: str = "") -> str:
    """Render the report to one format.

    Parameters
    ----------
    sections : list of Section
    summary : pandas.DataFrame
        ``claim, title, verdict, tolerance``: the verdict table at the top.
    source : str
        Where the runs were read from (shown at the top).
    fmt : {"html", "md"}
    figure_src : mapping of str to str
        Figure slug to its image source: a ``data:image/png;base64,…`` URI for HTML,
        a file name beside the Markdown file for Markdown.
    basis : str
        A line shown under the verdict summary: how many runs the claims rest on.

    Returns
    -------
    str
        The whole document.
    """
    if fmt not in ("html", "md"):
        raise InputError(f"report format must be 'html' or 'md', got {fmt!r}")
    verdicts = [{"claim": r.claim, "title": r.title, "verdict": r.verdict, "tolerance": r.tolerance,
                 "verdict_class": _verdict_class(r.verdict)} for r in summary.itertuples()]
    template = _environment(fmt).get_template(f"report.{fmt}.j2")
    text = template.render(source=source, verdicts=verdicts, summary=_table("", summary), basis=basis,
                           sections=[_view(s, figure_src) for s in sections])
    return text.rstrip("\n") + "\n"
