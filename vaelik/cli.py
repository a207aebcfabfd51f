"""The ``vaelik`` command: a thin layer that parses, checks and calls the Python API.

Exit codes: 0 success; 1 a fit failed (e.g. diverged) or an internal error;
2 bad input, an output that cannot be written or a device this machine lacks
(one line on stderr, nothing half-written); 130 interrupted by Ctrl-C (SIGINT),
143 by SIGTERM (both leave a run ``interrupted``, resumable).
Set ``VAELIK_DEBUG=1`` to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from vaelik.errors import DivergenceError, InputError, VaelikError

EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 1, 2, 130
#: exit code after a SIGTERM (128 + 15, the shell's convention)
EXIT_TERMINATED = 128 + signal.SIGTERM


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


def _add_train_args(p: argparse.ArgumentParser) -> None:
    """The flags of the :class:`~vaelik.config.TrainConfig` fields, from their declaration."""
    from vaelik.config import FIELDS

    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, spec in FIELDS.items():
        if not spec.flag:
            continue
        target = p if spec.group is None else groups.get(spec.group) \
            or groups.setdefault(spec.group, p.add_argument_group(spec.group))
        help_text = spec.help_text()
        if spec.default not in (None, "", {}) and "default" not in help_text:
            help_text += " (default %(default)s)"
        kwargs: dict[str, Any] = {"dest": name, "help": help_text, "metavar": spec.metavar}
        if spec.repeat:
            kwargs.update(action="append", default=[])
        else:
            kwargs["default"] = spec.default
        if spec.parse is not None:
            kwargs["type"] = spec.parse
        target.add_argument(spec.flag, **kwargs)


def _train_dests() -> tuple[str, ...]:
    """The fields that define a configuration and have a flag (refused together with --resume)."""
    from vaelik.config import FIELDS

    return tuple(name for name, spec in FIELDS.items() if spec.flag and spec.defines)


#: the flags that define a configuration (refused together with --resume)
_TRAIN_DESTS = _train_dests()


def _config_from_args(args: argparse.Namespace):
    from vaelik.config import FIELDS, TrainConfig

    values = {name: getattr(args, name) for name, spec in FIELDS.items() if spec.flag}
    values.update({name: dict(values[name]) for name, spec in FIELDS.items()
                   if spec.flag and spec.repeat})
    return TrainConfig(**values)


def _cmd_train(args: argparse.Namespace) -> int:
    from vaelik.inference import fit, resume

    if args.resume:
        from vaelik.config import FIELDS

        given = [FIELDS[dest].flag for dest in _TRAIN_DESTS
                 if getattr(args, dest) != args._defaults[dest]]
        if given or args.out is not None or args.overwrite:
            extra = given + (["--out"] if args.out is not None else []) + (
                ["--overwrite"] if args.overwrite else [])
            raise InputError(
                f"--resume continues with the configuration stored in the run; drop "
                f"{', '.join(extra)} (or train a new run with --out)")
        result = resume(args.resume, progress=not args.quiet, tensorboard=args.tensorboard)
    else:
        if args.out is None:
            raise InputError("--out RUN_DIR is required (or --resume RUN_DIR)")
        config = _config_from_args(args)
        if config.name is None:
            config.name = os.path.basename(os.path.normpath(args.out))
        result = fit(config, args.out, progress=not args.quiet, overwrite=args.overwrite,
                     tensorboard=args.tensorboard)
    if not args.quiet:
        e = result.evaluation
        scale = f", scale {e['scale']:.4g}" if e.get("scale") is not None else ""
        log_px = e.get("log_px")
        log_px = f"{log_px:.3f}" if isinstance(log_px, float) and log_px == log_px else "n/a"
        t = result.training
        epochs = (f"; best epoch {t['best_epoch']} of {t['epochs_run']}"
                  f"{' (stopped early)' if t['stopped_early'] else ''}" if t else "")
        print(f"completed {result.run_dir}: test ELBO {e['elbo']:.3f} nats, "
              f"MSE {e['mse']:.5f}, log p(x) {log_px}{scale}{epochs}")
    _warn_unconverged("train", result.evaluation)
    return 0


def _warn_unconverged(command: str, evaluation: dict[str, Any]) -> None:
    """One warning line on stderr when ``eval.json`` says the run did not converge.

    Printed with ``--quiet`` too: it is a warning about the result, not progress.
    """
    from vaelik.inference.convergence import Convergence

    if evaluation.get("converged", True) is not False:
        return
    reasons = [str(r) for r in evaluation.get("convergence_reasons") or []] or ["no reason recorded"]
    print(f"vaelik {command}: warning: {Convergence(False, reasons).warning()}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises ``KeyboardInterrupt``: a run stops as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops a command as Ctrl-C does (status ``interrupted``).

    Only the main thread can set a signal handler; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_line(e: OSError) -> str:
    """One line for a file the command could not write or read (exit code 2)."""
    reason = e.strerror or type(e).__name__
    where = f" {e.filename}" if e.filename else ""
    return (f"cannot use{where} ({reason}); check that the path exists, is writable and "
            "that the disk has space")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vaelik.inference import evaluate_run
    from vaelik.rundir import Status, read_status

    status = read_status(args.run)
    if status is None and os.path.isfile(os.path.join(args.run, "config.json")):
        raise InputError(
            f"run {args.run} has no status file, so it may not have finished; finish it with "
            f"`vaelik train --resume {args.run}` or train it again with --overwrite")
    if status is not None and status != Status.COMPLETED:
        shown = status if len(status) <= 80 else status[:77] + "..."
        raise InputError(
            f"run {args.run} is not completed (status: {shown}); finish it first with "
            f"`vaelik train --resume {args.run}`")
    e = evaluate_run(args.run, iwae_samples=args.iwae_samples)
    print(f"wrote {os.path.join(args.run, 'eval.json')}: test ELBO {e['elbo']:.3f}, "
          f"log p(x) {e['log_px']:.3f} (K={e['log_px_samples']})")
    _warn_unconverged("evaluate", e)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vaelik.analysis import load_runs, write_report
    from vaelik.analysis.outputs import report_paths

    if not os.path.isdir(args.runs):
        raise InputError(f"{args.runs} is not a folder of runs")
    html, md = report_paths(args.output, args.markdown)  # checked before anything is written
    _check_report_outputs(str(html), str(md))
    if load_runs(args.runs).runs.empty:
        raise InputError(f"no run directories (folders with a config.json) under {args.runs}")
    report = write_report(args.runs, html, md)
    print(f"wrote {html} (self-contained) and {md} "
          f"(with {len(report.figures)} PNG figures beside it)")
    return 0


def _check_report_outputs(html: str, md: str) -> None:
    """Refuse report outputs in a folder that cannot be written.

    Their names and kinds are checked by :func:`vaelik.analysis.outputs.report_paths`.
    """
    from vaelik.rundir.io import probe_writable

    for flag, path in (("-o", html), ("--markdown", md)):
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.lexists(folder):  # the report creates missing folders: probe the first there
            folder = os.path.dirname(folder)
        try:
            probe_writable(folder)
        except OSError as e:
            raise InputError(f"cannot write the report {path} ({e.strerror or type(e).__name__}); "
                             f"choose a writable place for {flag}") from None


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
    from vaelik.inference.run import check_device_available

    check_device_available(args.device)  # before any run is created
    result = show_sweep(lambda on_progress: run_demo(
        out=args.out, epochs=args.epochs, seeds=args.seeds, jobs=args.jobs, device=args.device,
        on_progress=on_progress), quiet=args.quiet, sweep_of=lambda demo: demo.sweep)
    if result.report_skipped:
        print(f"vaelik demo: report skipped ({result.report_skipped})", file=sys.stderr)
    elif not args.quiet:
        print(f"wrote {result.report_html} and {result.report_md}", file=sys.stderr)
    return EXIT_FAILED if result.sweep.failed else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from vaelik.cli_sweep import show_sweep
    from vaelik.compare import run_compare
    from vaelik.inference.run import check_device_available

    check_device_available(args.device)  # before any run is created
    result = show_sweep(lambda on_progress: run_compare(
        args.data, args.out, epochs=args.epochs, seeds=args.seeds, jobs=args.jobs,
        network=args.network, device=args.device, data_options=dict(args.data_opt),
        data_dir=args.data_dir, data_key=args.data_key, on_progress=on_progress),
        quiet=args.quiet, sweep_of=lambda compared: compared.sweep)
    for note in result.notes:
        print(f"vaelik compare: {note}", file=sys.stderr)
    if result.report_skipped:
        print(f"vaelik compare: report skipped ({result.report_skipped})", file=sys.stderr)
        return EXIT_FAILED if result.sweep.failed else 0
    if not args.quiet:
        _print_ranking(args.out)
        print(f"wrote {result.report_html} and {result.report_md}", file=sys.stderr)
    return EXIT_FAILED if result.sweep.failed else 0


def _print_ranking(out: str) -> None:
    """The report's first tables in the terminal: rank, likelihood, kind, bits/dim ± paired se."""
    from vaelik.analysis import load_pointwise, load_runs
    from vaelik.analysis.ranking import ranking_groups

    for group in ranking_groups(load_runs(out).completed, load_pointwise):
        print(f"{group.data_id}, {group.scored_data}: test bits/dim (lower is better)")
        for row in group.table.itertuples():
            diff = "" if row.rank == 1 or row.diff != row.diff else (
                f"  (+{row.diff:.4f} ± {row.paired_se:.4f} paired)")
            print(f"  {row.rank}. {row.likelihood:<11} {row.kind:<6} {row.bits_per_dim:.4f}{diff}")


def build_parser() -> argparse.ArgumentParser:
    """The ``vaelik`` argument parser.

    One subcommand each for ``train``, ``evaluate``, ``report``, ``sweep``,
    ``demo`` and ``compare``; each sets its handler as the ``func`` default.
    """
    parser = _Parser(prog="vaelik", description=(
        "Fit autoencoders with different observation likelihoods (Pyro SVI) and compare "
        "the learned scale, the reconstruction terms and the MSE."))
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("train", help="fit one model and write its run directory")
    p.add_argument("--out", help="run directory to write")
    _add_train_args(p)
    p.set_defaults(_defaults={dest: p.get_default(dest) for dest in _TRAIN_DESTS})
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary (the warning that a run did not converge is "
                        "still printed)")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="also write each epoch's metrics.csv rows as TensorBoard scalars into DIR "
                        "(needs pip install 'vaelik[tensorboard]'; not part of the configuration)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="(re)write eval.json of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--iwae-samples", type=int, default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="write the HTML and Markdown report over runs")
    p.add_argument("runs", help="folder of run directories (or a sweep folder)")
    p.add_argument("-o", "--output", default="report.html",
                   help="NAME.html, NAME.md or NAME: both formats are written, NAME.html and NAME.md "
                        "(default report.html)")
    p.add_argument("--markdown", default=None, help="Markdown path, ending in .md (default: NAME.md)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary (the warning that a run did not converge is "
                        "still printed)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("demo", help="train the standard grid on digits and write the report")
    p.add_argument("--out", default="demo", help="output folder (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 30)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per configuration")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

    from vaelik.config import parse_key_value

    p = sub.add_parser("compare", help="which likelihood fits my images best? the standard grid in "
                                       "bits/dim on your data, then the report")
    p.add_argument("--data", required=True,
                   help="a built-in data set (fashion-mnist, mnist, cifar10, digits) or a file of "
                        "8-bit images (.npy, .npz, IDX)")
    p.add_argument("--out", default="compare", help="output folder (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="the most epochs per run (default 100; "
                   "early stopping ends most runs sooner)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per likelihood (default %(default)s)")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: cores)")
    p.add_argument("--network", default="mlp", help="encoder/decoder networks: mlp (256 hidden units) or "
                   "conv (64 channels in its deepest block) (default %(default)s)")
    p.add_argument("--data-opt", action="append", default=[], type=parse_key_value,
                   metavar="KEY=VALUE", help="option of the data set, e.g. n=5000 for a subset "
                   "(repeatable)")
    p.add_argument("--data-dir", default=None, metavar="FOLDER",
                   help="folder holding the files of fashion-mnist, mnist or cifar10")
    p.add_argument("--data-key", default=None, help="array name inside a .npz with several")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_compare)
    return parser


def _is_out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _memory_line(e: BaseException) -> str:
    """One line for a data set or model too large for the memory (exit code 2)."""
    first = (str(e).splitlines() or [type(e).__name__])[0][:160]
    return (f"out of memory ({first}); the data or the model is too large for this machine: "
            "lower --data-opt n, --latent-dim, --hidden-dim, --batch-size or --iwae-samples")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vaelik`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            raise InputError("no command given; choose one (see `vaelik --help`)")
        with _sigterm_as_interrupt():
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
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated) or isinstance(e.__context__, Terminated) \
            or isinstance(e.__cause__, Terminated)
        print(f"vaelik: {'terminated (SIGTERM)' if terminated else 'interrupted'}",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except MemoryError as e:  # numpy's allocation failure: data or model too large
        print(f"vaelik: error: {_memory_line(e)}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as e:  # an output that cannot be written, a file that cannot be read
        print(f"vaelik: error: {_os_error_line(e)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        if isinstance(e, RuntimeError) and _is_out_of_memory(e):  # torch's, CPU or CUDA
            print(f"vaelik: error: {_memory_line(e)}", file=sys.stderr)
            return EXIT_INPUT
        if os.environ.get("VAELIK_DEBUG"):
            raise
        msg = (str(e).splitlines() or [""])[0]
        print(f"vaelik: internal error: {type(e).__name__}: {msg} "
              "(rerun with VAELIK_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
