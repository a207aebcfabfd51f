"""vaelik's training step and evaluation against the same math written by hand in PyTorch.

``python benchmarks/run.py`` prints one table; ``--quick`` makes a short run.

Training: in one process, with the same threads, data, architecture
(d → 400 → 20 → 400 → d, Normal likelihood with a learned σ), seed and math,
the contenders take steady-state steps in *interleaved* blocks (round robin, so
that a noisy, shared machine slows them alike):

- ``hand``: a hand-written PyTorch VAE step (reparameterised sample, Normal
  log-likelihood with learned σ, analytic KL, ``N/B`` scaling, one Adam, σ in
  a param group of its own at ``--scale-lr-factor`` × lr);
- ``vaelik default``: :class:`vaelik.inference.svi.Trainer` with the default
  ``--elbo``, i.e. exactly the step ``fit`` runs (finiteness flag included);
- ``--elbo X``: the same ``Trainer`` with each ELBO vaelik offers;
- ``pyro SVI.step``: plain ``pyro.infer.SVI`` with ``Trace_ELBO`` and
  ``pyro.optim.Adam`` (the starting point of issue #4).

Conv cells (``--network conv``, 28×28×1 and 32×32×3, batch 128): the
hand-written conv VAE of ``benchmarks/conv_vae.py`` (the same architecture and
step) against ``vaelik default``, interleaved in the same way.

Each cell reports the median ms/step over the timed steps, min–max, data
points/s and the ratio of medians to ``hand``.

Whole epoch (``benchmarks/epoch.py``): a Fashion-MNIST-sized MLP epoch (60,000
images × 784, batching and the end-of-epoch metrics on train/val/test included)
of vaelik's ``train_epochs`` against a hand-written PyTorch loop doing the same
steps and metrics, whole epochs interleaved in shuffled order.

Evaluation: IWAE log p(x) (K=1000, 2,000 test points, 784-d) by
``vaelik.inference.evaluate.iwae_log_px`` against a hand-written batched
estimator, each in a fresh subprocess (time and peak RSS above the RSS before
the estimate, sampled from ``/proc/self/statm``).

IWAE on 10,000 test points (``--skip iwae10k`` leaves it out): ``iwae_log_px``
alone, K=1000, 10,000 × 784, in a fresh process: seconds, RSS before, the peak
rise (sampled) and the process's ``ru_maxrss`` (its high-water mark).

Demo: ``vaelik demo`` end to end in a subprocess with ``--epochs`` small.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIDDEN, LATENT, LR, INIT_SCALE, MIN_SCALE = 400, 20, 1e-3, 0.3, 1e-3


# ----------------------------------------------------------------------------------------
# data and the hand-written step


def make_data(kind: str, n: int = 10000) -> torch.Tensor:
    """``digits``: the bundled 8x8 digits (1,437 rows, 64-d); ``mnist``: 10,000 × 784 synthetic."""
    if kind == "digits":
        from sklearn.datasets import load_digits

        x = torch.from_numpy(load_digits().data[:1437]).float() / 16.0
        return x
    g = torch.Generator().manual_seed(0)
    # MNIST-like: values in [0, 1], mostly near 0, low-rank structure
    z = torch.randn(n, 16, generator=g)
    w = torch.randn(16, 784, generator=g) / 4
    return torch.sigmoid(z @ w - 2.0)


class HandVAE:
    """The same VAE and step written directly in PyTorch."""

    def __init__(self, x: torch.Tensor, batch: int, seed: int = 0) -> None:
        nn = torch.nn
        torch.manual_seed(seed)
        d = x.shape[1]
        self.enc = nn.Sequential(nn.Linear(d, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * LATENT))
        self.dec = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, d))
        # σ = MIN_SCALE + exp(raw): the transform of constraints.greater_than(MIN_SCALE)
        self.raw = torch.tensor(math.log(INIT_SCALE - MIN_SCALE), requires_grad=True)
        nets = [*self.enc.parameters(), *self.dec.parameters()]
        # σ in a param group of its own at --scale-lr-factor × lr, as vaelik's optimiser does
        from vaelik.config import FIELDS

        scale_lr = LR * FIELDS["scale_lr_factor"].default
        self.opt = torch.optim.Adam([{"params": nets}, {"params": [self.raw], "lr": scale_lr}],
                                    lr=LR)
        self.x, self.n, self.batch = x, x.shape[0], batch

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.x[idx]
        h = self.enc(x)
        loc, sd = h[:, :LATENT], torch.nn.functional.softplus(h[:, LATENT:]) + 1e-5
        z = loc + sd * torch.randn_like(loc)
        mean = self.dec(z)
        sigma = MIN_SCALE + self.raw.exp()
        log_lik = (-0.5 * ((x - mean) / sigma) ** 2 - sigma.log()
                   - 0.5 * math.log(2 * math.pi)).sum(-1)
        kl = 0.5 * (loc**2 + sd**2 - 1 - 2 * sd.log()).sum(-1)
        return -(log_lik - kl).sum() * (self.n / x.shape[0])

    def scope(self):
        return contextlib.nullcontext()

    def run(self, perm: torch.Tensor, start: int, count: int) -> None:
        for step in range(start, start + count):
            idx = perm[step * self.batch : (step + 1) * self.batch]
            loss = self.loss(idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


# ----------------------------------------------------------------------------------------
# vaelik's step and plain Pyro SVI


def _vaelik_model(d: int, seed: int = 0, *, network: str = "mlp",
                  shape: tuple[int, ...] | None = None, hidden: int = HIDDEN,
                  latent: int = LATENT):
    from vaelik.models import build_model, get_likelihood

    torch.manual_seed(seed)
    lik = get_likelihood("normal", scale="learned", init_scale=INIT_SCALE, min_scale=MIN_SCALE)
    return build_model("vae", lik, d, latent, hidden, data_shape=shape, network=network)


class VaelikStep:
    """``Trainer`` as ``fit`` builds it (inside the model's parameter scope)."""

    def __init__(self, x: torch.Tensor, batch: int, elbo: str | None, *, network: str = "mlp",
                 shape: tuple[int, ...] | None = None, hidden: int = HIDDEN,
                 latent: int = LATENT) -> None:
        from vaelik.inference import TrainConfig
        from vaelik.inference.svi import Trainer

        kw = {} if elbo is None else {"elbo": elbo}
        config = TrainConfig(batch_size=batch, hidden_dim=hidden, latent_dim=latent, lr=LR,
                             network=network, **kw)
        self.elbo_name = config.elbo
        self.model = _vaelik_model(x.shape[1], network=network, shape=shape, hidden=hidden,
                                   latent=latent)
        with self.model.params():
            self.trainer = Trainer(config, self.model, x)

    def scope(self):
        """``fit`` enters the parameter scope once; the benchmark once per block."""
        return self.model.params()

    def run(self, perm: torch.Tensor, start: int, count: int) -> None:
        if self.trainer.run(perm, start, count) is not None:
            raise RuntimeError("non-finite loss in the benchmark")


class PyroSVI:
    """Plain ``pyro.infer.SVI(model, guide, pyro.optim.Adam, Trace_ELBO).step``."""

    def __init__(self, x: torch.Tensor, batch: int) -> None:
        import pyro

        self.model = _vaelik_model(x.shape[1])
        self.x, self.n, self.batch = x, x.shape[0], batch
        with self.model.params():
            self.svi = pyro.infer.SVI(self.model.model, self.model.guide,
                                      pyro.optim.Adam({"lr": LR}), pyro.infer.Trace_ELBO())

    def scope(self):
        return self.model.params()

    def run(self, perm: torch.Tensor, start: int, count: int) -> None:
        for step in range(start, start + count):
            idx = perm[step * self.batch : (step + 1) * self.batch]
            self.svi.step(self.x[idx], idx, num_data=self.n)


# ----------------------------------------------------------------------------------------
# timing


def time_training(kind: str, batch: int, steps: int, block: int, warmup: int) -> list[dict]:
    """Interleaved per-step timings of every contender on one (data, batch) cell."""
    from vaelik.inference.config import TrainConfig

    x = make_data(kind)
    default = TrainConfig().elbo
    contenders = {
        "hand-written PyTorch": lambda: HandVAE(x, batch),
        f"vaelik default (--elbo {default})": lambda: VaelikStep(x, batch, None),
    }
    for name in ("trace", "meanfield", "jit-trace", "jit-meanfield"):
        contenders[f"vaelik --elbo {name}"] = lambda name=name: VaelikStep(x, batch, name)
    contenders["pyro SVI.step + Trace_ELBO"] = lambda: PyroSVI(x, batch)
    label = f"{kind} ({x.shape[1]}-d, n={x.shape[0]})"
    return _interleaved(contenders, x, batch, steps, block, warmup, label)


def time_conv(shape: tuple[int, int, int], batch: int, steps: int, block: int,
              warmup: int) -> list[dict]:
    """Interleaved per-step timings of the hand-written conv VAE and vaelik's ``--network conv``."""
    from conv_vae import CONV_HIDDEN, CONV_LATENT, HandConvVAE, make_images

    from vaelik.config import FIELDS
    from vaelik.inference.config import TrainConfig

    x = make_images(shape)
    scale_lr = LR * FIELDS["scale_lr_factor"].default
    contenders = {
        "hand-written PyTorch conv VAE": lambda: HandConvVAE(
            x, shape, batch, lr=LR, scale_lr=scale_lr, init_scale=INIT_SCALE,
            min_scale=MIN_SCALE),
        f"vaelik --network conv (default --elbo {TrainConfig().elbo})": lambda: VaelikStep(
            x, batch, None, network="conv", shape=shape, hidden=CONV_HIDDEN,
            latent=CONV_LATENT),
    }
    label = f"conv {'x'.join(map(str, shape))} (n={x.shape[0]})"
    return _interleaved(contenders, x, batch, steps, block, warmup, label)


def _interleaved(contenders: dict, x: torch.Tensor, batch: int, steps: int, block: int,
                 warmup: int, label: str) -> list[dict]:
    """Build the contenders, warm them up, time them in shuffled blocks; ratios to the first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runners = {}
        for name, make in contenders.items():
            runners[name] = make()
    n, per_epoch = x.shape[0], x.shape[0] // batch
    gen = torch.Generator().manual_seed(1)
    perms = {name: torch.randperm(n, generator=gen) for name in runners}
    cursor = {name: 0 for name in runners}
    times: dict[str, list[float]] = {name: [] for name in runners}

    def one_step(name: str) -> float:
        if cursor[name] == per_epoch:
            perms[name], cursor[name] = torch.randperm(n, generator=gen), 0
        tick = time.perf_counter()
        runners[name].run(perms[name], cursor[name], 1)
        elapsed = time.perf_counter() - tick
        cursor[name] += 1
        return elapsed

    for name, runner in runners.items():  # warm-up (JIT profiling runs, allocator, Adam state)
        with runner.scope():
            for _ in range(warmup):
                one_step(name)
    order = list(runners)
    rng = random.Random(0)
    while min(len(t) for t in times.values()) < steps:
        rng.shuffle(order)
        for name in order:
            with runners[name].scope():
                for _ in range(block):
                    times[name].append(one_step(name))
    hand = next(iter(contenders))
    base = statistics.median(times[hand])
    base_min = min(times[hand])
    rows = []
    for name, t in times.items():
        med = statistics.median(t)
        rows.append({"data": label, "batch": batch, "contender": name,
                     "ms": med * 1e3, "min": min(t) * 1e3, "max": max(t) * 1e3,
                     "points_s": batch / med, "ratio": med / base,
                     "ratio_min": min(t) / base_min, "steps": len(t)})
    return rows


# ----------------------------------------------------------------------------------------
# IWAE evaluation (each estimator in its own process, for its peak RSS)


def _hand_iwae(dec, enc, sigma, x, k_total, rows=16) -> torch.Tensor:
    """Batched IWAE: for each block of rows, all K samples at once."""
    out = []
    for r0 in range(0, x.shape[0], rows):
        xb = x[r0 : r0 + rows]
        h = enc(xb)
        loc, sd = h[:, :LATENT], torch.nn.functional.softplus(h[:, LATENT:]) + 1e-5
        eps = torch.randn(k_total, *loc.shape)
        z = loc + sd * eps
        log_q = (-0.5 * eps**2 - sd.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
        mean = dec(z)
        log_px = (-0.5 * ((xb - mean) / sigma) ** 2 - sigma.log()
                  - 0.5 * math.log(2 * math.pi)).sum(-1)
        out.append(torch.logsumexp(log_px + log_pz - log_q, 0) - math.log(k_total))
    return torch.cat(out)


class _RssSampler(threading.Thread):
    """Peak resident set size above the RSS at start, sampled from /proc every 2 ms.

    (``ru_maxrss`` is a high-water mark of the whole process: pages freed after
    imports and set-up are reused without raising it, so its delta can read 0.)
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start_rss = self.peak = self._rss()
        self._done = threading.Event()
        self.start()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def run(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> int:
        self._done.set()
        self.join()
        self.peak = max(self.peak, self._rss())
        return self.peak - self.start_rss


def iwae_worker(which: str, n: int, k: int, threads: int, network: str = "mlp") -> dict:
    torch.set_num_threads(threads)
    x = make_data("mnist", n)
    if network == "conv":  # vaelik compare's conv VAE (--hidden-dim 64, z = 16) on 28 x 28
        model = _vaelik_model(x.shape[1], network="conv", shape=(1, 28, 28), hidden=64, latent=16)
    else:
        model = _vaelik_model(x.shape[1])
    torch.manual_seed(0)
    with model.params(), torch.no_grad():
        from pyro import poutine

        # create the parameters on a few rows (a trace of all n rows would leave freed
        # pages of n × d tensors that the estimate then reuses unseen by the RSS)
        idx = torch.arange(min(n, 128))
        g = poutine.trace(model.guide).get_trace(x[idx], idx, num_data=n)
        poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x[idx], idx, num_data=n)
        sigma = model.likelihood.model_scale(x.shape[1], x).detach()
        import resource

        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        sampler = _RssSampler()
        tick = time.perf_counter()
        if which == "vaelik":
            from vaelik.inference.evaluate import iwae_log_px

            draws = iwae_log_px(model, x, k)
            est = torch.logsumexp(draws, 0) - math.log(draws.shape[0])
        else:
            enc = model.encoder
            est = _hand_iwae(model.decoder, lambda xb: enc.head(enc.body(xb)), sigma, x, k)
        seconds = time.perf_counter() - tick
        peak = sampler.stop()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"which": which, "seconds": seconds, "peak_mb": peak / 2**20,
            "start_rss_mb": sampler.start_rss / 2**20,
            "maxrss_mb": maxrss / 2**10, "maxrss_rise_mb": (maxrss - maxrss_before) / 2**10,
            "log_px": float(est.mean())}


def time_iwae(n: int, k: int, threads: int, repeats: int) -> list[dict]:
    results: dict[str, list[dict]] = {"hand": [], "vaelik": []}
    for _ in range(repeats):
        for which in ("hand", "vaelik"):
            out = subprocess.run(
                [sys.executable, __file__, "--iwae-worker", which, "--iwae-n", str(n),
                 "--iwae-k", str(k), "--threads", str(threads)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )
            results[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["seconds"] for r in results["hand"])
    rows = []
    for which, label in (("hand", "hand-written batched (16 rows × K per chunk)"),
                         ("vaelik", "vaelik iwae_log_px (chunked)")):
        rs = results[which]
        sec = statistics.median(r["seconds"] for r in rs)
        rows.append({"contender": label, "seconds": sec, "min": min(r["seconds"] for r in rs),
                     "max": max(r["seconds"] for r in rs), "ratio": sec / base,
                     "peak_mb": max(r["peak_mb"] for r in rs),
                     "log_px": statistics.mean(r["log_px"] for r in rs)})
    return rows


def time_demo(epochs: int, threads: int) -> dict:
    if not (ROOT / "vaelik" / "demo.py").exists():
        return {"note": "vaelik/demo.py does not exist yet: skipped"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        tick = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from vaelik.cli import main; sys.exit(main())",
             "demo", "--out", str(Path(tmp) / "demo"), "--epochs", str(epochs), "--quiet"],
            capture_output=True, text=True, cwd=ROOT, env=env, check=False,
        )
        seconds = time.perf_counter() - tick
    if proc.returncode != 0:
        return {"note": f"vaelik demo failed (rc {proc.returncode}): {proc.stderr.strip()[-300:]}"}
    return {"seconds": seconds, "epochs": epochs}


# ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short run (fewer steps, smaller IWAE)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="timed steps per contender and cell")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["train", "conv", "epoch", "iwae", "iwae10k", "demo"])
    p.add_argument("--epochs", type=int, default=None,
                   help="timed epochs per contender of the whole-epoch cell (default 3, --quick 1)")
    p.add_argument("--iwae-worker", choices=["hand", "vaelik"], help=argparse.SUPPRESS)
    p.add_argument("--iwae-n", type=int, default=2000, help=argparse.SUPPRESS)
    p.add_argument("--iwae-k", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--iwae-network", choices=["mlp", "conv"], default="mlp", help=argparse.SUPPRESS)
    p.add_argument("--conv-iwae-n", type=int, default=1000,
                   help="points of the conv network's memory cell in iwae10k (default 1,000: the peak "
                        "is that of one chunk, reached at any n above a chunk's rows)")
    args = p.parse_args(argv)
    if args.iwae_worker:
        print(json.dumps(iwae_worker(args.iwae_worker, args.iwae_n, args.iwae_k, args.threads,
                                     args.iwae_network)))
        return 0
    torch.set_num_threads(args.threads)
    steps = args.steps or (30 if args.quick else 100)
    block, warmup = (5, 10) if args.quick else (10, 20)
    import pyro

    print(f"# vaelik benchmark: torch {torch.__version__}, pyro {pyro.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"MLP d-{HIDDEN}-{LATENT}-{HIDDEN}-d, Normal with learned sigma, Adam")
    print(f"# training: median of {steps} steps per contender after {warmup} warm-up steps, "
          f"interleaved in blocks of {block}")
    if "train" not in args.skip:
        cells = [("digits", 128), ("digits", 1024), ("mnist", 128), ("mnist", 1024)]
        print("\n| data | batch | contender | ms/step (median) | min–max | points/s | × hand | × hand (min) |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for kind, batch in cells:
            for r in time_training(kind, batch, steps, block, warmup):
                print(f"| {r['data']} | {r['batch']} | {r['contender']} | {r['ms']:.2f} | "
                      f"{r['min']:.2f}–{r['max']:.2f} | {r['points_s']:,.0f} | "
                      f"{r['ratio']:.2f}× | {r['ratio_min']:.2f}× |", flush=True)
    if "conv" not in args.skip:
        from conv_vae import CONV_HIDDEN, CONV_LATENT, CONV_SHAPES

        print(f"\n# conv VAE (--network conv, --hidden-dim {CONV_HIDDEN}, z={CONV_LATENT}, "
              "Normal with learned sigma): hand-written PyTorch conv VAE vs vaelik's default step")
        print("\n| data | batch | contender | ms/step (median) | min–max | points/s | × hand | × hand (min) |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for shape in CONV_SHAPES:
            for r in time_conv(shape, 128, steps, block, warmup):
                print(f"| {r['data']} | {r['batch']} | {r['contender']} | {r['ms']:.2f} | "
                      f"{r['min']:.2f}–{r['max']:.2f} | {r['points_s']:,.0f} | "
                      f"{r['ratio']:.2f}× | {r['ratio_min']:.2f}× |", flush=True)
    if "epoch" not in args.skip:
        from epoch import time_epochs

        epochs = args.epochs or (1 if args.quick else 3)
        r = time_epochs(epochs=epochs)
        print(f"\n# whole MLP epoch ({r['data']}; {r['network']}, batch {r['batch']}, steps + "
              f"end-of-epoch metrics on train/val/test; {epochs} epochs per contender, interleaved)")
        print("\n| contender | s/epoch (median) | min–max | × hand |")
        print("|---|---:|---:|---:|")
        for name, label in (("hand", "hand-written PyTorch loop"),
                            ("vaelik", "vaelik train_epochs (default step)")):
            s = r["seconds"][name]
            print(f"| {label} | {r['median'][name]:.2f} | {min(s):.2f}–{max(s):.2f} | "
                  f"{r['median'][name] / r['median']['hand']:.2f}× |", flush=True)
        st = r["step_median"]
        print(f"\n# of which the steps (median): hand {st['hand']:.2f} s, vaelik {st['vaelik']:.2f} s; "
              "the rest is the end-of-epoch metrics")
    if "iwae" not in args.skip:
        n, k = (200, 1000) if args.quick else (2000, 1000)
        repeats = 1 if args.quick else 3
        print(f"\n# IWAE log p(x): K={k}, {n} points, 784-d, each run in a fresh process "
              f"(median of {repeats}); peak = max RSS during the estimate − RSS before it "
              "(sampled from /proc every 2 ms)")
        print("\n| estimator | seconds (median) | min–max | × hand | peak RSS MB | mean log p(x) |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in time_iwae(n, k, args.threads, repeats):
            print(f"| {r['contender']} | {r['seconds']:.2f} | {r['min']:.2f}–{r['max']:.2f} | "
                  f"{r['ratio']:.2f}× | {r['peak_mb']:.0f} | {r['log_px']:.2f} |", flush=True)
    if "iwae10k" not in args.skip:
        cells = [("mlp", 1000 if args.quick else 10000), ("conv", 100 if args.quick else args.conv_iwae_n)]
        print("\n# IWAE log p(x) of a Fashion-MNIST-sized test set: K=1000, 784-d, vaelik iwae_log_px "
              "in a fresh process (MLP 784-400-20; conv --hidden-dim 64, the compare grid's)")
        print("\n| network | points | seconds | RSS before MB | peak RSS rise MB (sampled) | ru_maxrss rise MB | "
              "process ru_maxrss MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for network, n in cells:
            out = subprocess.run(
                [sys.executable, __file__, "--iwae-worker", "vaelik", "--iwae-n", str(n),
                 "--iwae-k", "1000", "--threads", str(args.threads), "--iwae-network", network],
                capture_output=True, text=True, check=True, cwd=ROOT)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {network} | {n:,} | {r['seconds']:.1f} | {r['start_rss_mb']:.0f} | {r['peak_mb']:.0f} | "
                  f"{r['maxrss_rise_mb']:.0f} | {r['maxrss_mb']:.0f} |", flush=True)
    if "demo" not in args.skip:
        epochs = 1 if args.quick else 3
        d = time_demo(epochs, args.threads)
        print()
        if "note" in d:
            print(f"# vaelik demo: {d['note']}")
        else:
            print(f"# vaelik demo --epochs {epochs} (subprocess, end to end incl. report): "
                  f"{d['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
