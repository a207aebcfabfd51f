"""What ``vaelik sweep`` and ``vaelik demo`` print: the dry-run listing, the progress bar, the summary.

The sweep library (:mod:`vaelik.sweep`) returns data and reports progress
through a callback; this module, used only by :mod:`vaelik.cli`, turns them
into lines on the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from vaelik.rundir import Status
from vaelik.sweep import Expansion, SweepInterrupted, SweepProgress, SweepResult, check_run
from vaelik.sweep.grid import _fmt

__all__ = ["ProgressBar", "describe", "print_notes", "print_summary", "show_sweep"]


def describe(expansion: Expansion, stream: TextIO | None = None) -> None:
    """Print the expanded grid (``--dry-run``): one line per run, its size, the notes."""
    stream = stream or sys.stdout
    width = max([len(r.name) for r in expansion.runs] + [3])
    for run in expansion.runs:
        values = "  ".join(f"{k}={_fmt(v) if (v := run.config.get(k)) is not None else '-'}"
                           for k in expansion.varying)
        problem = check_run(run)
        flag = f"  INVALID: {problem}" if problem else ""
        print(f"{run.name:<{width}}  {values}{flag}", file=stream)
    print(f"{len(expansion)} configuration{'s' * (len(expansion) != 1)}", file=stream)
    for note in expansion.notes:
        print(f"note: {note}", file=stream)


def print_notes(result: SweepResult, stream: TextIO | None = None) -> None:
    """Print the notes of a sweep (ignored scale axes, completed runs kept with another config)."""
    for note in result.notes:
        print(f"note: {note}", file=stream or sys.stderr)


def print_summary(result: SweepResult, stream: TextIO | None = None) -> None:
    """Print the counts per status and one line per run that is not complete, with its reason."""
    stream = stream or sys.stderr
    table = result.table
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    done_now = sum(1 for r in result.results.values() if r.status == Status.COMPLETED)
    parts = [f"{counts.get(Status.COMPLETED, 0)}/{len(table)} completed ({done_now} this time)"]
    parts += [f"{n} {w}" for w, n in sorted(counts.items()) if w != Status.COMPLETED]
    print(f"sweep: {', '.join(parts)} in {result.seconds:.1f} s", file=stream)
    if not len(table):
        return
    bad = table[table["status"] != Status.COMPLETED]
    width = max([len(r) for r in bad["run"]] + [3])
    for _, row in bad.iterrows():
        reason = f"  {row['reason']}" if row["reason"] else ""
        print(f"  {row['run']:<{width}}  {row['status']}{reason}", file=stream)


class ProgressBar:
    """An ``on_progress`` callback: one tqdm bar over the grid, the runs in flight as postfix."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, progress: SweepProgress) -> None:
        """Advance the bar to ``progress.done`` and show the running runs (opened on first call)."""
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=progress.total, initial=progress.done, desc="sweep", unit="run",
                            dynamic_ncols=True)
        self.bar.update(progress.done - self.bar.n)
        self.bar.set_postfix_str(", ".join(progress.running), refresh=True)

    def close(self) -> None:
        """Close the bar (call before printing the summary)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def show_sweep(call: Callable[[ProgressBar], Any], quiet: bool = False,
               sweep_of: Callable[[Any], SweepResult] = lambda result: result) -> Any:
    """Run ``call(on_progress)`` with a progress bar, then print the sweep's notes and summary.

    ``sweep_of`` picks the :class:`SweepResult` out of what ``call`` returns. After
    an interrupted sweep the summary is printed too, and the interrupt re-raised.
    """
    bar = ProgressBar(enabled=not quiet)
    try:
        result = call(bar)
    except SweepInterrupted as e:
        bar.close()
        if not quiet:
            print_notes(e.result)
            print_summary(e.result)
        raise
    finally:
        bar.close()
    if not quiet:
        print_notes(sweep_of(result))
        print_summary(sweep_of(result))
    return result
