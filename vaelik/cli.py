"""The ``vaelik`` command: a thin layer that parses, checks and calls the Python API.

Exit codes: 0 success; 1 a fit failed (e.g. diverged) or an internal error;
2 bad input (one line on stderr, nothing half-written); 130 interrupted.
Set ``VAELIK_DEBUG=1`` to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from vaelik.errors import DivergenceError, InputError, VaelikError

EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit code 2).

    Abbreviated flags are refused (``--epoch 3`` is an error, not ``--epochs 3``):
    a typo must not silently set another option.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see `{self.prog} --help`)")


def _scale(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return key.strip(), cast(value)
        except ValueError:
            pass
    return key.strip(), value


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from vaelik.inference.config import ELBO_NAMES, OPTIMIZERS, TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("data")
    g.add_argument("--data", default=d.data,
                   help="digits, digits-binary, ppca, laplace-noise, or a .npy/.npz/IDX file")
    g.add_argument("--data-key", default=None, help="array name inside a .npz with several")
    g.add_argument("--data-opt", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="option of a built-in data set, e.g. sigma=0.05 (repeatable)")
    g.add_argument("--test-fraction", type=float, default=d.test_fraction)
    g = p.add_argument_group("model")
    g.add_argument("--likelihood", default=d.likelihood,
                   help="normal, laplace, bernoulli, cbernoulli (or a registered subclass)")
    g.add_argument("--scale", type=_scale, default=None,
                   help="a positive number (fixed), learned, per_dim, predicted, optimal, bayesian")
    g.add_argument("--min-scale", type=float, default=d.min_scale,
                   help="lower bound of learned scales (default %(default)s)")
    g.add_argument("--init-scale", type=float, default=None,
                   help="initial learned scale (default: the data's spread around its mean)")
    g.add_argument("--model", default=d.model, help="vae, ae or linear")
    g.add_argument("--latent-dim", type=int, default=d.latent_dim)
    g.add_argument("--hidden-dim", type=int, default=d.hidden_dim)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--optimizer", default=d.optimizer, help=" or ".join(OPTIMIZERS))
    g.add_argument("--elbo", default=d.elbo, help=", ".join(ELBO_NAMES) + " (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default=d.device, help="cpu or cuda")
    g.add_argument("--iwae-samples", type=int, default=d.iwae_samples,
                   help="K of the final importance-sampled log p(x)")


#: the flags that define a configuration (refused together with --resume)
_TRAIN_DESTS = (
    "data", "data_key", "data_opt", "test_fraction", "likelihood", "scale", "min_scale",
    "init_scale", "model", "latent_dim", "hidden_dim", "epochs", "batch_size", "lr",
    "optimizer", "elbo", "seed", "device", "iwae_samples", "name",
)


def _config_from_args(args: argparse.Namespace):
    from vaelik.inference.config import TrainConfig

    return TrainConfig(
        data=args.data, likelihood=args.likelihood, scale=args.scale, model=args.model,
        latent_dim=args.latent_dim, hidden_dim=args.hidden_dim, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, elbo=args.elbo,
        seed=args.seed, device=args.device, test_fraction=args.test_fraction,
        min_scale=args.min_scale, init_scale=args.init_scale, iwae_samples=args.iwae_samples, data_key=args.data_key,
        data_options=dict(args.data_opt), name=args.name,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from vaelik.inference import fit, resume

    if args.resume:
        given = [f"--{dest.replace('_', '-')}" for dest in _TRAIN_DESTS
                 if getattr(args, dest) != args._defaults[dest]]
        if given or args.out is not None or args.overwrite:
            extra = given + (["--out"] if args.out is not None else []) + (
                ["--overwrite"] if args.overwrite else [])
            raise InputError(
                f"--resume continues with the configuration stored in the run; drop "
                f"{', '.join(extra)} (or train a new run with --out)")
        result = resume(args.resume, progress=not args.quiet)
    else:
        if args.out is None:
            raise InputError("--out RUN_DIR is required (or --resume RUN_DIR)")
        config = _config_from_args(args)
        if config.name is None:
            config.name = os.path.basename(os.path.normpath(args.out))
        result = fit(config, args.out, progress=not args.quiet, overwrite=args.overwrite)
    if not args.quiet:
        e = result.evaluation
        scale = f", scale {e['scale']:.4g}" if e.get("scale") is not None else ""
        log_px = e.get("log_px")
        log_px = f"{log_px:.3f}" if isinstance(log_px, float) and log_px == log_px else "n/a"
        print(f"completed {result.run_dir}: test ELBO {e['elbo']:.3f} nats, "
              f"MSE {e['mse']:.5f}, log p(x) {log_px}{scale}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vaelik.inference import evaluate_run
    from vaelik.inference.rundir import read_status

    status = read_status(args.run)
    if status is not None and status != "completed":
        raise InputError(
            f"run {args.run} is not completed (status: {status}); finish it first with "
            f"`vaelik train --resume {args.run}`")
    e = evaluate_run(args.run, iwae_samples=args.iwae_samples)
    print(f"wrote {os.path.join(args.run, 'eval.json')}: test ELBO {e['elbo']:.3f}, "
          f"log p(x) {e['log_px']:.3f} (K={e['log_px_samples']})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vaelik.analysis import load_runs, write_report

    if not os.path.isdir(args.runs):
        raise InputError(f"{args.runs} is not a folder of runs")
    if load_runs(args.runs).runs.empty:
        raise InputError(f"no run directories (folders with a config.json) under {args.runs}")
    md = args.markdown or os.path.splitext(args.output)[0] + ".md"
    report = write_report(args.runs, args.output, md)
    print(f"wrote {args.output} (self-contained) and {md} "
          f"(with {len(report.figures)} PNG figures beside it)")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from vaelik.cli_sweep import describe, show_sweep
    from vaelik.sweep import expand, load_grid, run_sweep

    grid = load_grid(args.grid)
    if args.dry_run:
        describe(expand(grid))
        return 0
    out = args.out or os.path.join("sweeps", os.path.splitext(os.path.basename(args.grid))[0])
    backend = "ray" if args.address else args.backend
    result = show_sweep(lambda on_progress: run_sweep(
        grid, out, jobs=args.jobs, threads=args.threads, backend=backend, address=args.address,
        on_progress=on_progress), quiet=args.quiet)
    if not args.quiet:
        print(f"wrote {os.path.join(out, 'sweep.csv')}")
    return EXIT_FAILED if result.failed else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vaelik.cli_sweep import show_sweep
    from vaelik.demo import run_demo

    result = show_sweep(lambda on_progress: run_demo(
        out=args.out, epochs=args.epochs, seeds=args.seeds, jobs=args.jobs, device=args.device,
        on_progress=on_progress), quiet=args.quiet, sweep_of=lambda demo: demo.sweep)
    if result.report_skipped:
        print(f"vaelik demo: report skipped ({result.report_skipped})", file=sys.stderr)
    elif not args.quiet:
        print(f"wrote {result.report_html} and {result.report_md}", file=sys.stderr)
    return EXIT_FAILED if result.sweep.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaelik", description=(
        "Fit autoencoders with different observation likelihoods (Pyro SVI) and compare "
        "the learned scale, the reconstruction terms and the MSE."))
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("train", help="fit one model and write its run directory")
    _add_train_args(p)
    p.set_defaults(_defaults={dest: p.get_default(dest) for dest in _TRAIN_DESTS})
    p.add_argument("--out", help="run directory to write")
    p.add_argument("--name", help="run name (default: the --out folder name)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="(re)write eval.json of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--iwae-samples", type=int, default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="write the HTML and Markdown report over runs")
    p.add_argument("runs", help="folder of run directories (or a sweep folder)")
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--markdown", default=None, help="Markdown path (default: beside the HTML)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("sweep", help="train every configuration of a TOML grid (re-runnable)")
    p.add_argument("grid", help="grid file (TOML; see docs/sweeps.md)")
    p.add_argument("--out", help="sweep folder (default sweeps/<grid file name>)")
    p.add_argument("--dry-run", action="store_true", help="print the expanded grid and its size")
    p.add_argument("--jobs", type=int, default=None,
                   help="configurations trained at once (default: cores)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per process (default: cores // jobs)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes or a Ray cluster (default %(default)s)")
    p.add_argument("--address", default=None,
                   help="Ray address: local, auto or ray://HOST:10001 (implies --backend ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("demo", help="train the standard grid on digits and write the report")
    p.add_argument("--out", default="demo", help="output folder (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 30)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per configuration")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vaelik`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            raise InputError("no command given; choose one (see `vaelik --help`)")
        return args.func(args)
    except InputError as e:
        print(f"vaelik: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except DivergenceError as e:
        print(f"vaelik: fit failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    except VaelikError as e:
        print(f"vaelik: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vaelik: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("VAELIK_DEBUG"):
            raise
        msg = (str(e).splitlines() or [""])[0]
        print(f"vaelik: internal error: {type(e).__name__}: {msg} "
              "(rerun with VAELIK_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
