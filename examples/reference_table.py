"""The README's reference table from a ``vaelik compare`` folder, as Markdown.

    vaelik compare --data fashion-mnist --epochs 40 --out compare/fashion-mnist
    python examples/reference_table.py compare/fashion-mnist

One row per run, grouped by the discrete data the numbers are about (grey levels,
then binarised) and ranked by test bits/dim within each group. Every number is
read from the runs' ``eval.json`` and ``config.json`` and the sweep's
``sweep.csv`` (wall time); nothing is recomputed.

    python examples/reference_table.py compare/fashion-mnist-conv --against compare/fashion-mnist

adds a second table: each family of the first folder against the same family of
the second on the test images both scored (a run on an ``n_test`` subset against
one on the whole test set: the subset's official rows), from the runs'
``pointwise.csv``: the mean bits/dim of each, their difference and its paired
standard error over those images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from vaelik.analysis.ranking import bits_per_image
from vaelik.analysis.runs import find_run_dirs
from vaelik.inference.data.arrays import subset_rows

COLUMNS = ["family", "network", "scored data", "test bits/dim", "kind", "K", "test ELBO (nats/image)",
           "MSE", "scale", "active units", "epochs (best / run)", "converged", "wall (s)", "seed"]


def _family(e: dict) -> str:
    """The family's label from ``eval.json``, marked when it scored dequantised data."""
    return e["family"]["label"] + ("" if e.get("dequantised") is None else ", dequantised")


def _grouped(frame: pd.DataFrame, bits: str) -> pd.DataFrame:
    """Rows grouped by the discrete data scored (grey levels first, binarised last), by ``bits`` within."""
    binary = frame["scored data"].eq("binary")
    return (frame.assign(_binary=binary).sort_values(["_binary", "scored data", bits])
            .drop(columns="_binary").reset_index(drop=True))


def _row(run_dir: Path, seconds: dict[str, float]) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    e = json.loads((run_dir / "eval.json").read_text())
    scale = e.get("scale")
    return {
        "family": _family(e),
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
    return _grouped(pd.DataFrame([_row(r, seconds) for r in runs], columns=COLUMNS), "test bits/dim")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (numbers rounded for reading)."""
    def cell(column: str, value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "—"
        if column == "test bits/dim":
            return f"**{value:.3f}**"
        if column in ("test ELBO (nats/image)", "wall (s)"):
            return f"{value:,.0f}"
        if column in ("MSE", "first − second", "paired se") or column.startswith("bits/dim ("):
            return f"{value:.4f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines)


PAIRED_COLUMNS = ["family", "scored data", "test images", "bits/dim (first)", "bits/dim (second)",
                  "first − second", "paired se"]


def _scored(run_dir: Path) -> dict:
    """What the paired table needs of one run: its key, label, official test rows and bits per image."""
    config = json.loads((run_dir / "config.json").read_text())
    e = json.loads((run_dir / "eval.json").read_text())
    info = config["data_info"]
    points = pd.read_csv(run_dir / "pointwise.csv")
    bits = bits_per_image(points["log_px"], int(e["data_dim"]), e.get("dequantised"))
    return {"key": (e["likelihood"], e.get("scored_data")),
            "family": _family(e),
            "subset": info.get("params", {}).get("n_test"), "seed": info.get("params", {}).get("subset_seed", 0),
            "n_test": int(info["n_test"]), "bits": pd.Series(bits, index=points["index"].to_numpy())}


def _official_rows(run: dict, total: int) -> np.ndarray:
    """The official test rows a run scored, in the order of its ``pointwise.csv`` index."""
    rows = subset_rows(total, run["subset"], run["seed"], 1)  # None: the whole test set
    return np.arange(total) if rows is None else rows


def paired_table(first: str | Path, second: str | Path) -> pd.DataFrame:
    """Each family of ``first`` against the same family of ``second`` on the test images both scored.

    The runs' test rows are mapped to the official test rows (the ``n_test`` subset
    rule, :func:`~vaelik.inference.data.arrays.subset_rows`); a family's row is the
    mean bits/dim of each over the shared images, the mean of the per-image
    differences and its standard error (std / √n: the paired se).
    """
    runs = {}
    for folder in (first, second):
        found = [_scored(r) for r in find_run_dirs(Path(folder)) if (r / "pointwise.csv").is_file()]
        runs[folder] = {r["key"]: r for r in found}
    whole = [r["n_test"] for side in runs.values() for r in side.values() if r["subset"] is None]
    if not whole:
        raise SystemExit("neither folder scored the whole test set: the official rows are unknown")
    rows = []
    for key, a in runs[first].items():
        b = runs[second].get(key)
        if b is None:
            continue
        left = pd.Series(a["bits"].to_numpy(), index=_official_rows(a, whole[0])[a["bits"].index])
        right = pd.Series(b["bits"].to_numpy(), index=_official_rows(b, whole[0])[b["bits"].index])
        shared = left.index.intersection(right.index)
        diff = left[shared] - right[shared]
        rows.append({"family": a["family"], "scored data": key[1], "test images": len(shared),
                     "bits/dim (first)": left[shared].mean(), "bits/dim (second)": right[shared].mean(),
                     "first − second": diff.mean(), "paired se": diff.std(ddof=1) / np.sqrt(len(shared))})
    return _grouped(pd.DataFrame(rows, columns=PAIRED_COLUMNS), "bits/dim (first)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the --out folder of vaelik compare")
    parser.add_argument("--against", metavar="FOLDER",
                        help="another compare folder: each family against it on the test images both scored")
    args = parser.parse_args(argv)
    print(to_markdown(reference_table(args.folder)))
    if args.against:
        paired = paired_table(args.folder, args.against)
        print()
        print(to_markdown(paired))
    return 0


if __name__ == "__main__":
    sys.exit(main())
