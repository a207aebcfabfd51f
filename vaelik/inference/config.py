"""The training configuration: one dataclass, checked once, written to ``config.json``."""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from typing import Any

from vaelik.errors import InputError
from vaelik.validate import check_choice, check_fraction, check_positive, check_positive_int

__all__ = ["TrainConfig", "ELBO_NAMES", "OPTIMIZERS", "versions"]

ELBO_NAMES = ("trace", "meanfield", "jit-trace", "jit-meanfield")
OPTIMIZERS = ("adam", "clipped-adam")


@dataclass
class TrainConfig:
    """Everything that defines a run. Field names are the CLI flags (``-`` for ``_``).

    Attributes
    ----------
    data : str
        Built-in data name or a file path (see :func:`vaelik.inference.load_data`).
    likelihood : str
        Registered likelihood name.
    scale : float, str or None
        Fixed scale, a scale mode, or None for the family's default.
    model : {"vae", "ae", "linear"}
    elbo : {"trace", "meanfield", "jit-trace", "jit-meanfield"}
        ``Trace_ELBO``, ``TraceMeanField_ELBO`` (analytic KL) and their JIT variants.
        The default ``jit-meanfield`` gives the same gradients as ``meanfield``,
        bit for bit, at a fraction of Pyro's per-step overhead (docs/performance.md).
    optimizer : {"adam", "clipped-adam"}
        One optimiser over all parameters.
    min_scale : float
        Lower bound of learned / predicted / optimal scales.
    init_scale : float or None
        Initial learned scale; None = the data's own spread (the RMS deviation
        from the per-dimension mean for Normal, the mean absolute deviation for
        Laplace), i.e. the scale of a decoder that predicts the mean image.
    iwae_samples : int
        K of the final importance-sampled log p(x).
    """

    data: str = "digits"
    likelihood: str = "normal"
    scale: float | str | None = None
    model: str = "vae"
    latent_dim: int = 8
    hidden_dim: int = 256
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    elbo: str = "jit-meanfield"
    seed: int = 0
    device: str = "cpu"
    test_fraction: float = 0.2
    min_scale: float = 1e-3
    init_scale: float | None = None
    iwae_samples: int = 1000
    data_key: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    def check(self) -> TrainConfig:
        """Validate every field; raise :class:`InputError` naming the first bad one."""
        from vaelik.models import MODELS, likelihood_names

        names = likelihood_names()
        if isinstance(self.likelihood, str) and self.likelihood not in names \
                and self.likelihood.lower() in names:
            self.likelihood = self.likelihood.lower()  # "Normal" means "normal"
        check_choice("likelihood", self.likelihood, names)
        check_choice("model", self.model, MODELS)
        check_choice("elbo", self.elbo, ELBO_NAMES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for key in ("latent_dim", "epochs", "batch_size", "iwae_samples"):
            check_positive_int(key.replace("_", "-"), getattr(self, key))
        if isinstance(self.hidden_dim, bool) or not isinstance(self.hidden_dim, int) or self.hidden_dim < 0:
            raise InputError(f"hidden-dim must be an integer >= 0, got {self.hidden_dim!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r}")
        check_positive("lr", self.lr)
        check_positive("min-scale", self.min_scale)
        if self.init_scale is not None:
            check_positive("init-scale", self.init_scale)
        check_fraction("test-fraction", self.test_fraction)
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise InputError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        return self

    def likelihood_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`vaelik.models.get_likelihood`."""
        kwargs: dict[str, Any] = {"min_scale": self.min_scale}
        if self.init_scale is not None:
            kwargs["init_scale"] = self.init_scale
        if self.scale is not None:
            kwargs["scale"] = self.scale
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring keys that are not fields (e.g. ``versions``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that change the numbers."""
    import numpy
    import pyro
    import torch

    import vaelik

    return {
        "vaelik": vaelik.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro-ppl": pyro.__version__,
        "numpy": numpy.__version__,
    }
