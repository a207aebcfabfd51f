r"""Explicit Pyro ``model(x)`` / ``guide(x)`` pairs: VAE, deterministic AE, linear VAE.

All three share the generative model

.. math::
    z_n \sim \mathcal N(0, I_k), \qquad x_n \mid z_n \sim p_\theta(x_n \mid z_n)

with the observation family given by a :class:`~vaelik.models.likelihoods.Likelihood`.
Minibatches go through ``pyro.plate("data", num_data, subsample=idx)``, which
scales the per-example terms by ``num_data / batch_size``: the minibatch ELBO is
an unbiased estimate of the full-data ELBO, while global sites (a learned
scale, a Bayesian scale and its prior) are counted once.

Each model keeps its own Pyro parameter-store state (``param_state``) so that
several fitted models can live in one process; :meth:`VAE.params` activates it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from vaelik.errors import InputError
from vaelik.models.likelihoods import Likelihood
from vaelik.models.networks import Decoder, Encoder
from vaelik.validate import check_positive_int

__all__ = ["VAE", "AE", "LinearVAE", "MODELS", "build_model"]


class VAE(nn.Module):
    """Variational autoencoder with a diagonal-Normal amortised guide.

    Parameters
    ----------
    likelihood : Likelihood
        Observation family and its scale handling.
    data_dim, latent_dim : int
        Sizes of x and z.
    hidden_dim : int
        Width of the encoder's and decoder's hidden layer.

    Examples
    --------
    >>> from vaelik.models import VAE, Normal
    >>> vae = VAE(Normal(scale="learned"), data_dim=64, latent_dim=8)
    >>> x = torch.rand(5, 64)
    >>> with vae.params():
    ...     loss = pyro.infer.Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    """

    kind = "vae"

    def __init__(
        self, likelihood: Likelihood, data_dim: int, latent_dim: int = 8, hidden_dim: int = 256
    ) -> None:
        super().__init__()
        check_positive_int("data_dim", data_dim)
        check_positive_int("latent_dim", latent_dim)
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 0:
            raise InputError(f"hidden_dim must be an integer >= 0, got {hidden_dim!r}")
        self.likelihood = likelihood
        self.data_dim, self.latent_dim, self.hidden_dim = data_dim, latent_dim, hidden_dim
        self.encoder = Encoder(data_dim, latent_dim, hidden_dim)
        self.decoder = Decoder(latent_dim, data_dim * likelihood.output_multiplier(), hidden_dim)
        self.param_state: dict = {"params": {}, "constraints": {}}

    @contextlib.contextmanager
    def params(self) -> Iterator[dict]:
        """Activate this model's parameters in Pyro's global parameter store."""
        with pyro.get_param_store().scope(self.param_state) as state:
            yield state

    def _plate(self, x: torch.Tensor, idx: torch.Tensor | None, num_data: int | None):
        if idx is None:
            return pyro.plate("data", x.shape[0])
        return pyro.plate("data", num_data, subsample=idx)

    def model(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, num_data: int | None = None
    ) -> None:
        """Generative model :math:`p(z)\\,p(x \\mid z)` for a batch ``x`` of shape ``(B, d)``.

        ``idx`` (indices of the batch in the full data) and ``num_data`` turn on
        minibatch scaling; without them ``x`` is the whole data set.
        """
        pyro.module("decoder", self.decoder)
        scale = self.likelihood.model_scale(self.data_dim, x)
        with self._plate(x, idx, num_data):
            zeros = x.new_zeros(x.shape[:-1] + (self.latent_dim,))
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            out = self.decoder(z)
            pyro.sample("x", self.likelihood.observation(out, scale, x), obs=x)

    def guide(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, num_data: int | None = None
    ) -> None:
        """Variational family :math:`q(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\,s(x)^2)`."""
        pyro.module("encoder", self.encoder)
        self.likelihood.guide_scale(self.data_dim, x)
        with self._plate(x, idx, num_data):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of :math:`q(z \\mid x)`."""
        return self.encoder(x)

    def describe(self) -> dict:
        return {"model": self.kind, "latent_dim": self.latent_dim, "hidden_dim": self.hidden_dim}


class AE(VAE):
    """Deterministic autoencoder: the same networks with a Delta guide.

    With :math:`q(z \\mid x) = \\delta(z - \\mu(x))` the ELBO is
    :math:`\\log p(x \\mid \\mu(x)) + \\log p(\\mu(x))`: a MAP fit of the codes
    (the "KL" term reported is :math:`-\\log p(z)`).
    """

    kind = "ae"

    def guide(self, x, idx=None, num_data=None):
        pyro.module("encoder", self.encoder)
        self.likelihood.guide_scale(self.data_dim, x)
        with self._plate(x, idx, num_data):
            loc, _ = self.encoder(x)
            pyro.sample("z", dist.Delta(loc).to_event(1))

    def encode(self, x):
        loc, _ = self.encoder(x)
        return loc, torch.zeros_like(loc)


class LinearVAE(VAE):
    """VAE with linear encoder and decoder: probabilistic PCA (DESIGN C8).

    With a Normal likelihood and a learned global σ, the optimum is Tipping &
    Bishop's: :math:`\\sigma^2_{ML}` is the mean of the discarded eigenvalues of
    the data covariance and the ELBO equals the exact log-likelihood.
    """

    kind = "linear"

    def __init__(self, likelihood, data_dim, latent_dim=8, hidden_dim=0):
        super().__init__(likelihood, data_dim, latent_dim, hidden_dim=0)


MODELS: dict[str, type[VAE]] = {"vae": VAE, "ae": AE, "linear": LinearVAE}


def build_model(
    name: str, likelihood: Likelihood, data_dim: int, latent_dim: int = 8, hidden_dim: int = 256
) -> VAE:
    """Build a model by name (``"vae"``, ``"ae"``, ``"linear"``)."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](likelihood, data_dim, latent_dim, hidden_dim)
