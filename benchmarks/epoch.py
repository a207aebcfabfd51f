"""The whole-epoch cell of ``benchmarks/run.py``: a Fashion-MNIST-sized MLP epoch, vaelik against a hand loop.

One epoch is what ``vaelik train`` spends per epoch: a permutation of the
training rows, ``N // B`` steps, then the end-of-epoch metrics (one-sample
ELBO, recon, KL, MSE, MAE, BCE and the scale, with the same z draws every epoch)
on the train, validation and test splits, the early-stopping update (a CPU copy of
the best parameters) and the plateau schedule. File writes (``metrics.csv``,
the checkpoint on a clock) are left out of both.

- **vaelik**: :func:`vaelik.inference.svi.train_epochs` for one epoch, on a
  :class:`~vaelik.inference.svi.Trainer` set up as ``fit`` sets it up (the
  default ELBO, optimiser, rates, ``--data-init standardise``, a Normal with a
  learned σ).
- **hand**: :class:`HandEpoch`, the same networks (vaelik's initial weights
  copied in), step and metrics written directly in PyTorch.

Data: the real Fashion-MNIST when ``vaelik.inference.load_data("fashion-mnist")``
finds it (60,000 training images with 10 % as validation, the official 10,000 test
images), else synthetic images of the same sizes with 8-bit grey levels k/255
(:func:`fashion_like`): the time of an epoch does not depend on the values.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

#: Fashion-MNIST: training and test images, pixels per image
N_TRAIN, N_TEST, DIM = 60000, 10000, 784
#: the fraction of the training images held out for validation (TrainConfig's default)
VAL_FRACTION = 0.1


def fashion_like(n_train: int = N_TRAIN, n_test: int = N_TEST, d: int = DIM,
                 val_fraction: float = VAL_FRACTION,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic ``(train, val, test)`` of Fashion-MNIST's sizes, grey levels k/255.

    Low-rank structure through a sigmoid, rounded to the 256 levels of an 8-bit
    image; ``val`` is the last ``round(val_fraction * n_train)`` training rows.
    """
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    z = torch.randn(n, 16, generator=g)
    w = torch.randn(16, d, generator=g) / 4
    x = torch.round(torch.sigmoid(z @ w - 1.0) * 255) / 255
    n_val = round(val_fraction * n_train)
    train, test = x[:n_train], x[n_train:]
    return train[: n_train - n_val], train[n_train - n_val :], test


def load_splits(n_train: int = N_TRAIN, n_test: int = N_TEST) -> tuple[str, tuple]:
    """The real Fashion-MNIST splits if installed (full size only), else :func:`fashion_like`."""
    if (n_train, n_test) == (N_TRAIN, N_TEST):
        try:
            from vaelik.errors import InputError
            from vaelik.inference import load_data

            data = load_data("fashion-mnist", val_fraction=VAL_FRACTION)
            return "Fashion-MNIST", (data.train, data.val, data.test)
        except (InputError, OSError):
            pass
    return "synthetic k/255 of Fashion-MNIST's shape", fashion_like(n_train, n_test)


def make_config(batch: int = 128, **fields):
    """The configuration of the cell: the defaults, a Normal with a learned σ (``fields`` override)."""
    from vaelik.inference import TrainConfig

    return TrainConfig(**{"likelihood": "normal", "scale": "learned", "batch_size": batch, **fields})


def make_model(config, x_train: torch.Tensor):
    """vaelik's model as ``build`` makes it (initial σ the data's spread, standardised input)."""
    from vaelik.models import build_model, get_likelihood

    spread = float((x_train - x_train.mean(0)).pow(2).mean().sqrt())
    lik = get_likelihood("normal", scale="learned", init_scale=spread, min_scale=config.min_scale)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model("vae", lik, x_train.shape[1], config.latent_dim, config.hidden_dim)
    model.init_from_data(x_train)
    return model


class VaelikEpoch:
    """``train_epochs`` one epoch at a time, set up as ``fit`` sets it up."""

    name = "vaelik train_epochs"

    def __init__(self, config, x_train, x_val, x_test) -> None:
        from vaelik.inference.schedules import make_schedule
        from vaelik.inference.stopping import EarlyStopping
        from vaelik.inference.svi import Trainer

        self.model = make_model(config, x_train)
        self.x_train, self.x_val, self.x_test = x_train, x_val, x_test
        self.gen = torch.Generator().manual_seed(config.seed)
        self.seed = config.seed
        torch.manual_seed(config.seed)
        with self.model.params():
            self.trainer = Trainer(config, self.model, x_train)
        self.stopper = EarlyStopping(config.patience)
        self.schedule = make_schedule(config.lr_schedule, self.trainer.optimizer, config.epochs,
                                      config.patience)
        self.rows: list[dict] = []
        self.epoch = 0

    def run_epoch(self) -> dict[str, dict]:
        from vaelik.inference.svi import train_epochs

        self.epoch += 1
        with self.model.params(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_epochs(self.trainer, self.model, self.x_train, self.x_test, self.gen,
                         first=self.epoch, last=self.epoch, rows=self.rows, x_val=self.x_val,
                         stopper=self.stopper, schedule=self.schedule, progress=False,
                         metrics_seed=self.seed)
        return {r["split"]: r for r in self.rows if r["epoch"] == self.epoch}


class HandEpoch:
    """The same epoch written directly in PyTorch: steps, metrics, best copy, plateau rate.

    The networks are plain ``nn.Sequential`` MLPs (d → h → ReLU → 2k and
    k → h → ReLU → d) with ``model``'s initial weights copied in; the encoder sees
    ``(x − shift) / scale`` and the decoder's output gets ``offset`` (vaelik's
    ``--data-init standardise``). σ = min_scale + exp(raw), in a param group of its
    own at ``scale_lr_factor × lr``.
    """

    name = "hand-written PyTorch loop"

    def __init__(self, config, x_train, x_val, x_test, model) -> None:
        from vaelik.inference.svi import METRICS_SEED_OFFSET

        nn = torch.nn
        d, k, h = x_train.shape[1], config.latent_dim, config.hidden_dim
        self.k = k
        self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, 2 * k))
        self.dec = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, d))
        with torch.no_grad():
            for mine, theirs in ((self.enc, model.encoder), (self.dec, model.decoder)):
                for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
                    a.copy_(b)
        self.shift, self.sx = model.x_shift.clone(), model.x_scale.clone()
        self.offset = model.out_offset.clone()
        self.min_scale = config.min_scale
        self.raw = torch.tensor(math.log(model.likelihood.init_scale - config.min_scale),
                                requires_grad=True)
        nets = [*self.enc.parameters(), *self.dec.parameters()]
        self.opt = torch.optim.Adam(
            [{"params": nets}, {"params": [self.raw], "lr": config.lr * config.scale_lr_factor}],
            lr=config.lr)
        self.base_lr = [g["lr"] for g in self.opt.param_groups]
        self.splits = [("train", x_train), ("val", x_val), ("test", x_test)]
        self.x, self.n, self.batch = x_train, x_train.shape[0], config.batch_size
        self.gen = torch.Generator().manual_seed(config.seed)
        self.seeds = [config.seed + METRICS_SEED_OFFSET + i for i in range(3)]
        self.patience = config.patience
        self.best, self.best_state = -math.inf, None
        self.avg = self.avg_best = -math.inf
        self.flat, self.factor = 0, 1.0
        self.step_seconds: list[float] = []
        torch.manual_seed(config.seed)

    def sigma(self) -> torch.Tensor:
        return self.min_scale + self.raw.exp()

    def forward(self, x: torch.Tensor):
        """``(log p(x|z), KL, mean of p(x|z), σ)`` per row at one z ~ q(z|x)."""
        hid = self.enc((x - self.shift) / self.sx)
        loc, sd = hid[:, : self.k], F.softplus(hid[:, self.k :]) + 1e-5
        z = loc + sd * torch.randn_like(loc)
        mean = self.dec(z) + self.offset
        sigma = self.sigma()
        log_lik = (-((x - mean) ** 2) / (2 * sigma**2) - sigma.log()
                   - math.log(math.sqrt(2 * math.pi))).sum(-1)
        kl = 0.5 * (sd**2 + loc**2 - 1 - 2 * sd.log()).sum(-1)
        return log_lik, kl, mean, sigma

    def steps(self) -> None:
        perm = torch.randperm(self.n, generator=self.gen)
        for step in range(self.n // self.batch):
            x = self.x[perm[step * self.batch : (step + 1) * self.batch]]
            log_lik, kl, _, _ = self.forward(x)
            loss = -(log_lik - kl).sum() * (self.n / x.shape[0])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, seed: int, chunk: int = 8192) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sums = torch.zeros(5, dtype=torch.float64)
            for r0 in range(0, x.shape[0], chunk):
                xb = x[r0 : r0 + chunk]
                log_lik, kl, mean, sigma = self.forward(xb)
                p = mean.clamp(1e-6, 1 - 1e-6)
                bce = -(xb * p.log() + (1 - xb) * torch.log1p(-p))
                sums += torch.stack([log_lik.sum(), kl.sum(), (xb - mean).pow(2).mean(-1).sum(),
                                     (xb - mean).abs().mean(-1).sum(), bce.mean(-1).sum()]).double()
        recon, kl, mse, mae, bce = (sums / x.shape[0]).tolist()
        return {"elbo": recon - kl, "recon": recon, "kl": kl, "mse": mse, "mae": mae, "bce": bce,
                "scale": float(sigma)}

    def run_epoch(self) -> dict[str, dict]:
        tick = time.perf_counter()
        self.steps()
        self.step_seconds.append(time.perf_counter() - tick)
        rows = {name: self.metrics(x, seed) for (name, x), seed in zip(self.splits, self.seeds,
                                                                        strict=True)}
        val = rows["val"]["elbo"]
        if val > self.best:  # the best epoch's parameters, a CPU copy
            self.best = val
            self.best_state = [p.detach().cpu().clone() for p in
                               (*self.enc.parameters(), *self.dec.parameters(), self.raw)]
        self.avg = val if not math.isfinite(self.avg) else self.avg + 0.3 * (val - self.avg)
        if not math.isfinite(self.avg_best) or self.avg > self.avg_best + 1e-4 * max(1.0, abs(self.avg_best)):
            self.avg_best, self.flat = self.avg, 0
        else:
            self.flat += 1
        if self.patience and self.flat and self.flat % max(1, self.patience // 2) == 0:
            self.factor *= 0.5  # the plateau schedule
            for g, lr in zip(self.opt.param_groups, self.base_lr, strict=True):
                g["lr"] = lr * self.factor
        return rows


def time_epochs(epochs: int = 3, batch: int = 128, n_train: int = N_TRAIN,
                n_test: int = N_TEST, threads: int | None = None) -> dict:
    """Interleaved whole epochs of both contenders; median seconds and the ratio vaelik / hand.

    Each round runs one epoch of each contender in a shuffled order (so that load
    from other processes hits both alike); returns the per-epoch seconds, the
    median of each and their ratio, the median seconds of the steps alone
    (``step_median``; the rest of an epoch is its metrics), the last epoch's metric
    rows of each (``last``) and the data's label.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    label, (x_train, x_val, x_test) = load_splits(n_train, n_test)
    config = make_config(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vaelik = VaelikEpoch(config, x_train, x_val, x_test)
    hand = HandEpoch(config, x_train, x_val, x_test, vaelik.model)
    contenders = {"hand": hand, "vaelik": vaelik}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    last: dict[str, dict] = {}
    order = list(contenders)
    rng = random.Random(0)
    for _ in range(epochs):
        rng.shuffle(order)
        for name in order:
            tick = time.perf_counter()
            last[name] = contenders[name].run_epoch()
            seconds[name].append(time.perf_counter() - tick)
    med = {name: statistics.median(s) for name, s in seconds.items()}
    steps = {"hand": statistics.median(hand.step_seconds),
             "vaelik": statistics.median(r["seconds"] for r in vaelik.rows if r["split"] == "train")}
    return {"data": f"{label}: {x_train.shape[0]:,} train + {x_val.shape[0]:,} val + "
                    f"{x_test.shape[0]:,} test × {x_train.shape[1]}",
            "network": (f"MLP d-{config.hidden_dim}-{config.latent_dim}-{config.hidden_dim}-d "
                        f"(the defaults), Normal with a learned sigma"),
            "batch": batch, "seconds": seconds, "median": med, "ratio": med["vaelik"] / med["hand"],
            "step_median": steps, "last": last}
