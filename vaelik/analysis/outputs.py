"""Where the report goes: the HTML and Markdown paths, checked before anything is written.

``vaelik report RUNS -o NAME`` writes both formats; the suffix of ``NAME`` says
which one ``NAME`` itself is, and the other is written beside it under the same
stem:

================  ==================  ===================
``-o``            HTML                Markdown
================  ==================  ===================
``r.html``        ``r.html``          ``r.md``
``r.md``          ``r.html``          ``r.md``
``r``             ``r.html``          ``r.md``
================  ==================  ===================

``--markdown M`` names the Markdown file instead (it must end in ``.md``). A
file is never written in a format its name does not say (the HTML never goes
to a ``.md`` name, nor the Markdown to a ``.html`` one), the two outputs are
never one file, and an existing folder is never taken for a file.
"""

from __future__ import annotations

from pathlib import Path

from vaelik.errors import InputError

__all__ = ["HTML_SUFFIXES", "MARKDOWN_SUFFIXES", "report_paths", "check_report_paths"]

#: name endings of an HTML report
HTML_SUFFIXES = (".html", ".htm")
#: name endings of a Markdown report
MARKDOWN_SUFFIXES = (".md", ".markdown")


def report_paths(output: str | Path, markdown: str | Path | None = None) -> tuple[Path, Path]:
    """The ``(html, markdown)`` paths of ``vaelik report -o OUTPUT [--markdown MARKDOWN]``.

    Parameters
    ----------
    output : str or Path
        ``NAME.html``, ``NAME.md`` or ``NAME`` (no suffix): see the module docstring.
    markdown : str or Path, optional
        The Markdown path, when it is not derived from ``output``.

    Raises
    ------
    InputError
        For another suffix, two names for the Markdown file, or an output that
        :func:`check_report_paths` refuses.

    Examples
    --------
    >>> [str(p) for p in report_paths("out/report.md")]
    ['out/report.html', 'out/report.md']
    >>> [str(p) for p in report_paths("out/report")]
    ['out/report.html', 'out/report.md']
    """
    out = Path(output)
    suffix = out.suffix.lower()
    if suffix in HTML_SUFFIXES:
        html, md = out, out.with_suffix(".md")
    elif suffix in MARKDOWN_SUFFIXES:
        if markdown is not None and Path(markdown) != out:
            raise InputError(f"-o {output} names the Markdown report and --markdown {markdown} another; "
                             "give -o NAME.html with --markdown, or -o NAME.md alone")
        html, md = out.with_suffix(".html"), out
    elif suffix == "" and out.name not in ("", ".", ".."):
        html, md = out.with_name(out.name + ".html"), out.with_name(out.name + ".md")
    else:
        raise InputError(f"-o {output}: name the report NAME.html or NAME.md (both are written, "
                         "under one stem), or NAME without a suffix")
    if markdown is not None:
        md = Path(markdown)
    check_report_paths(html, md)
    return html, md


def check_report_paths(html: str | Path, markdown: str | Path | None) -> None:
    """Refuse report outputs that would replace a file of another kind, before any is written.

    Raises
    ------
    InputError
        If ``html`` does not end in ``.html``/``.htm``, ``markdown`` not in
        ``.md``/``.markdown``, both are one file, or either is an existing folder.
    """
    html = Path(html)
    if html.suffix.lower() not in HTML_SUFFIXES:
        raise InputError(f"the HTML report {html} must end in .html; name it {html.with_suffix('.html')}")
    outputs = [("HTML report", html)]
    if markdown is not None:
        md = Path(markdown)
        if md.suffix.lower() not in MARKDOWN_SUFFIXES:
            raise InputError(f"--markdown {md}: the Markdown report must end in .md; "
                             f"name it {md.with_suffix('.md')}")
        outputs.append(("Markdown report", md))
    for what, path in outputs:
        if path.is_dir():
            raise InputError(f"the {what} {path} is a folder; name a file, e.g. {path / ('report' + path.suffix)}")
        if path.exists() and not path.is_file():
            raise InputError(f"the {what} {path} exists and is not a regular file; name another file")
