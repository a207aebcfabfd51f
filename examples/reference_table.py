"""The README's reference table from a ``vaelik compare`` folder, as Markdown.

    vaelik compare --data fashion-mnist --epochs 40 --out compare/fashion-mnist
    python examples/reference_table.py compare/fashion-mnist

One row per run, grouped by the discrete data the numbers are about (grey levels,
then binarised) and ranked by test bits/dim within each group. Every number is
read from the runs' ``eval.json`` and ``config.json`` and the sweep's
``sweep.csv`` (wall time); nothing is recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from vaelik.analysis.runs import find_run_dirs

COLUMNS = ["family", "network", "scored data", "test bits/dim", "kind", "K", "test ELBO (nats/image)",
           "MSE", "scale", "active units", "epochs (best / run)", "converged", "wall (s)", "seed"]


def _row(run_dir: Path, seconds: dict[str, float]) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    e = json.loads((run_dir / "eval.json").read_text())
    scale = e.get("scale")
    return {
        "family": e["family"]["label"] + ("" if e.get("dequantised") is None else ", dequantised"),
        "network": config.get("network", "mlp"),
        "scored data": e.get("scored_data") or "—",
        "test bits/dim": e.get("bits_per_dim"),
        "kind": e.get("bits_per_dim_kind") or "—",
        "K": e.get("log_px_samples"),
        "test ELBO (nats/image)": e["elbo"],
        "MSE": e["mse"],
        "scale": "—" if scale is None else f"{e['family'].get('scale_symbol') or 'scale'} = {scale:.4g}",
        "active units": f"{e['active_units']} / {e['latent_dim']}",
        "epochs (best / run)": f"{e['best_epoch']} / {e['epochs_run']}",
        "converged": "yes" if e.get("converged") else "no",
        "wall (s)": seconds.get(run_dir.name),
        "seed": config["seed"],
    }


def reference_table(folder: str | Path) -> pd.DataFrame:
    """The table's rows, ranked by bits/dim within each group of scored data."""
    folder = Path(folder)
    sweep = folder / "sweep.csv"
    seconds = {}
    if sweep.is_file():
        table = pd.read_csv(sweep)
        seconds = dict(zip(table["run"], table["seconds"], strict=True))
    runs = [r for r in find_run_dirs(folder) if (r / "eval.json").is_file()]
    if not runs:
        raise SystemExit(f"no evaluated runs under {folder}")
    frame = pd.DataFrame([_row(r, seconds) for r in runs], columns=COLUMNS)
    binary = frame["scored data"].eq("binary")
    return (frame.assign(_binary=binary)
            .sort_values(["_binary", "scored data", "test bits/dim"])
            .drop(columns="_binary").reset_index(drop=True))


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (numbers rounded for reading)."""
    def cell(column: str, value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "—"
        if column == "test bits/dim":
            return f"**{value:.3f}**"
        if column in ("test ELBO (nats/image)", "wall (s)"):
            return f"{value:,.0f}"
        if column == "MSE":
            return f"{value:.4f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the --out folder of vaelik compare")
    args = parser.parse_args(argv)
    print(to_markdown(reference_table(args.folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
