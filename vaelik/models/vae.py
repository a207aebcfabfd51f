r"""One Pyro ``model(x)`` / ``guide(x)`` pair, composed of a likelihood, two networks and a guide kind.

Every model shares the generative model

.. math::
    z_n \sim \mathcal N(0, I_k), \qquad x_n \mid z_n \sim p_\theta(x_n \mid z_n)

with the observation family given by a :class:`~vaelik.models.likelihoods.Likelihood`
and the raw parameters of :math:`p_\theta(x \mid z)` given by a decoder network;
the guide is :math:`q_\phi(z \mid x)` of a kind in :data:`GUIDES` whose
parameters come from an encoder network (:mod:`vaelik.models.networks`).
The named combinations offered by ``--model`` are :data:`MODELS`:

===============  =========================  ===================================================
name             networks                   guide
===============  =========================  ===================================================
``vae``          ``--network`` (mlp, conv)  ``normal``: diagonal Normal
``ae``           ``--network`` (mlp, conv)  ``delta``: a point mass (deterministic AE)
``linear``       ``mlp``, ``hidden_dim=0``  ``full``: Normal, one full covariance (pPCA, C8)
``linear-diag``  ``mlp``, ``hidden_dim=0``  ``normal``: diagonal Normal (Lucas et al. 2019)
===============  =========================  ===================================================

Why the linear model's guide has a full covariance: pPCA's exact posterior is
:math:`p(z \mid x) = \mathcal N(M^{-1}W^\top(x - \mu),\ \sigma^2 M^{-1})`,
:math:`M = W^\top W + \sigma^2 I` (Tipping & Bishop 1999, eq. 6), an affine
mean and one covariance for every x. The ``full`` guide holds it for *every*
maximiser :math:`W R` of the likelihood (R orthogonal), so its ELBO is tight at
the optimum. A diagonal guide holds it only where :math:`W^\top W` is diagonal,
and gradient descent turns W toward that rotation slowly: on ``ppca`` the
diagonal guide stayed 0.04–0.05 nats per point below its own decoder's best
diagonal ELBO after 3,000 full-batch steps (``docs/convergence.md``).

Minibatches go through ``pyro.plate("data", num_data, subsample=idx)``, which
scales the per-example terms by ``num_data / batch_size``: the minibatch ELBO is
an unbiased estimate of the full-data ELBO, while global sites (a learned
scale, a Bayesian scale and its prior) are counted once. Sites inside the
plate named :data:`DATA_PLATE` are per-example; the estimators of
:mod:`vaelik.inference.estimators` rely on that name and on nothing else.

Each model keeps its own Pyro parameter-store state (``param_state``) so that
several fitted models can live in one process; :meth:`Model.params` activates it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from vaelik.errors import InputError
from vaelik.models.distributions import kl_full_diagonal  # noqa: F401 - the full guide's KL to the prior
from vaelik.models.likelihoods import Likelihood
from vaelik.models.networks import NETWORKS
from vaelik.validate import check_positive_int

__all__ = ["Model", "GuideKind", "ModelSpec", "GUIDES", "MODELS", "DATA_INITS", "DATA_PLATE",
           "SCALE_TRIL_PARAM", "build_model"]

#: Name of the plate over examples: sites inside it are per-example terms.
DATA_PLATE = "data"

#: ``--data-init`` name -> what it does (:meth:`Model.init_from_data`); the keys are the choices
DATA_INITS: Mapping[str, str] = MappingProxyType({
    "standardise": "the encoder sees each dimension standardised by the training mean and "
                   "spread; the decoder starts at the training mean",
    "none": "the encoder sees the raw data; the decoder starts where its random weights put it",
})


@dataclass(frozen=True)
class GuideKind:
    r"""A kind of amortised guide: how the encoder's ``(loc, scale)`` become :math:`q(z \mid x)`.

    Attributes
    ----------
    help : str
        One line for ``--help`` and error messages.
    q : callable
        ``q(loc, scale, scale_tril)`` returns :math:`q(z \mid x)` with batch shape
        ``(B,)`` and event shape ``(k,)``. ``scale_tril`` is the shared Cholesky
        factor of a kind with ``shared_covariance`` (else None).
    shared_covariance : bool
        Whether the guide has one covariance :math:`LL^\top` for every x: a
        lower-Cholesky parameter ``guide_scale_tril`` (identity at the start);
        the encoder's scale output is then not used.
    """

    help: str
    q: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], dist.TorchDistribution]
    shared_covariance: bool = False


#: Name of the shared Cholesky factor of a ``shared_covariance`` guide in the parameter store.
SCALE_TRIL_PARAM = "guide_scale_tril"

#: Guide kinds by name.
GUIDES: dict[str, GuideKind] = {
    "normal": GuideKind(
        "diagonal Normal q(z|x) = N(mu(x), diag s(x)^2)",
        lambda loc, scale, tril: dist.Normal(loc, scale).to_event(1),
    ),
    "delta": GuideKind(
        "point mass q(z|x) = delta(z - mu(x)): a deterministic autoencoder (MAP codes)",
        lambda loc, scale, tril: dist.Delta(loc).to_event(1),
    ),
    "full": GuideKind(
        "Normal q(z|x) = N(mu(x), L L^T) with one full covariance for every x (L a parameter)",
        lambda loc, scale, tril: dist.MultivariateNormal(loc, scale_tril=tril),
        shared_covariance=True,
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """A named model: which network builds the encoder/decoder and which guide kind.

    ``network`` None: the networks are the configuration's choice (``--network``);
    a name of :data:`~vaelik.models.networks.NETWORKS`: the model fixes its network
    (the linear model is an affine MLP). ``options`` are network options fixed by
    the model, overriding the configuration's (the linear model fixes ``hidden_dim=0``).
    """

    help: str
    network: str | None = None
    guide: str = "normal"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


#: The models of ``--model``; the keys are the choices, ``help`` the help text.
MODELS: dict[str, ModelSpec] = {
    "vae": ModelSpec("VAE: encoder and decoder of --network, diagonal-Normal guide"),
    "ae": ModelSpec("deterministic autoencoder: networks of --network, Delta guide",
                    guide="delta"),
    "linear": ModelSpec(
        "linear VAE (probabilistic PCA): affine encoder and decoder, Normal guide with one "
        "full covariance", network="mlp", guide="full", options=MappingProxyType({"hidden_dim": 0}),
    ),
    "linear-diag": ModelSpec(
        "linear VAE with a diagonal-Normal guide (tight only once W's columns are orthogonal: "
        "slow to converge)", network="mlp", options=MappingProxyType({"hidden_dim": 0}),
    ),
}


class Model(nn.Module):
    r"""A likelihood, an encoder, a decoder and a guide kind, as a Pyro model/guide pair.

    Parameters
    ----------
    likelihood : Likelihood
        Observation family and its scale handling.
    encoder, decoder : torch.nn.Module
        Networks obeying the shape contract of :mod:`vaelik.models.networks`:
        ``encoder(x: (B, d)) -> (loc, scale)`` each ``(B, k)``;
        ``decoder(z: (..., k)) -> (..., m d)`` with ``m = likelihood.output_multiplier()``.
    guide : {"normal", "delta", "full"}
        Kind of :math:`q(z \mid x)`, a key of :data:`GUIDES`.
    data_dim, latent_dim : int
        Sizes d of x and k of z.
    kind : str, optional
        The :data:`MODELS` name it was built from (for :meth:`describe`).
    network : str, optional
        The :data:`~vaelik.models.networks.NETWORKS` name of the networks (for :meth:`describe`).
    network_options : dict, optional
        The options the networks were built with (for :meth:`describe`).

    Examples
    --------
    >>> from vaelik.models import Normal, build_model
    >>> model = build_model("vae", Normal(scale="learned"), data_dim=64, latent_dim=8)
    >>> x = torch.rand(5, 64)
    >>> with model.params():
    ...     loss = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    """

    def __init__(
        self,
        likelihood: Likelihood,
        encoder: nn.Module,
        decoder: nn.Module,
        guide: str = "normal",
        *,
        data_dim: int,
        latent_dim: int,
        kind: str | None = None,
        network: str | None = None,
        network_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if guide not in GUIDES:
            raise InputError(f"unknown guide {guide!r}; choose one of: {', '.join(GUIDES)}")
        self.likelihood = likelihood
        self.encoder, self.decoder = encoder, decoder
        self.guide_kind = guide
        self._kind = GUIDES[guide]
        self.data_dim = check_positive_int("data_dim", data_dim)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.kind = kind
        self.network = network
        self.network_options = dict(network_options or {})
        self.param_state: dict = {"params": {}, "constraints": {}}
        # set by init_from_data: x -> (x - x_shift) / x_scale before the encoder, and a
        # fixed offset added to the decoder's output (buffers: they follow .to(device))
        self.register_buffer("x_shift", None)
        self.register_buffer("x_scale", None)
        self.register_buffer("out_offset", None)

    def init_from_data(self, x: torch.Tensor) -> None:
        r"""Standardise the encoder's input and start the decoder at the mean of ``x``.

        A reparameterisation, not a change of the model: the encoder sees
        :math:`(x - ar x) / s` with :math:`s_j = \sqrt{v_j + 0.01\,ar v}` (:math:`v_j`
        the variance of dimension j, :math:`ar v` their mean: a dimension that barely
        varies, such as the blank border of the digits, is not blown up), and the
        decoder's output gets the fixed offset that puts the likelihood's location at
        :math:`ar x` (:meth:`Likelihood.raw_location`; none for a family without one).
        Gradient descent then starts from a decoder that predicts the mean and an
        encoder whose inputs are all of order 1: on ``ppca`` (offsets of ±2 around
        spreads of 0.1 to 2.7) a linear VAE reached within 0.3 nats of the pPCA optimum's
        log p(x) in the epochs that left it 4 nats short without (``docs/convergence.md``).

        Parameters
        ----------
        x : torch.Tensor
            The training data, shape ``(N, d)`` (never the validation or test rows).
        """
        x = x.detach()
        mean, var = x.mean(0), x.var(0, unbiased=False)
        self.x_shift = mean.clone()
        self.x_scale = (var + 0.01 * var.mean()).sqrt().clamp_min(1e-12)
        raw = self.likelihood.raw_location(mean)
        if raw is None:
            self.out_offset = None
            return
        m = self.likelihood.output_multiplier()
        self.out_offset = torch.cat([raw, raw.new_zeros((m - 1) * raw.shape[-1])])

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of ``x``: standardised after :meth:`init_from_data`."""
        return x if self.x_shift is None else (x - self.x_shift) / self.x_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output for ``z``, plus the offset of :meth:`init_from_data`."""
        out = self.decoder(z)
        return out if self.out_offset is None else out + self.out_offset

    def output_network(self) -> nn.Module:
        """:meth:`decode` as a module of its own (``z -> raw output``), e.g. to probe it."""
        return _Decode(self.decoder, self.out_offset)

    @contextlib.contextmanager
    def params(self) -> Iterator[dict]:
        """Activate this model's parameters in Pyro's global parameter store."""
        with pyro.get_param_store().scope(self.param_state) as state:
            yield state

    def _plate(self, x: torch.Tensor, idx: torch.Tensor | None, num_data: int | None):
        if idx is None:
            return pyro.plate(DATA_PLATE, x.shape[0])
        return pyro.plate(DATA_PLATE, num_data, subsample=idx)

    def model(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, num_data: int | None = None
    ) -> None:
        r"""Generative model :math:`p(z)\,p(x \mid z)` for a batch ``x`` of shape ``(B, d)``.

        ``idx`` (indices of the batch in the full data) and ``num_data`` turn on
        minibatch scaling; without them ``x`` is the whole data set.
        """
        pyro.module("decoder", self.decoder)
        scale = self.likelihood.model_scale(self.data_dim, x)
        with self._plate(x, idx, num_data):
            zeros = x.new_zeros(x.shape[:-1] + (self.latent_dim,))
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            out = self.decode(z)
            pyro.sample("x", self.likelihood.observation(out, scale, x), obs=x)

    def guide(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, num_data: int | None = None
    ) -> None:
        r"""Variational family :math:`q(z \mid x)` of the guide kind, from the encoder."""
        pyro.module("encoder", self.encoder)
        self.likelihood.guide_scale(self.data_dim, x)
        tril = self._scale_tril(x) if self._kind.shared_covariance else None
        with self._plate(x, idx, num_data):
            loc, scale = self.encoder(self.encoder_input(x))
            pyro.sample("z", self._kind.q(loc, scale, tril))

    def _scale_tril(self, x: torch.Tensor) -> torch.Tensor:
        """The shared Cholesky factor L of a ``full`` guide (a constrained Pyro parameter)."""
        return pyro.param(SCALE_TRIL_PARAM,
                          lambda: torch.eye(self.latent_dim, dtype=x.dtype, device=x.device),
                          constraint=constraints.lower_cholesky)

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        r""":math:`q(z \mid x)` for a batch ``x`` (call inside :meth:`params`), event shape ``(k,)``."""
        loc, scale = self.encoder(self.encoder_input(x))
        tril = self._scale_tril(x) if self._kind.shared_covariance else None
        return self._kind.q(loc, scale, tril)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and standard deviation of :math:`q(z \mid x)`, each ``(B, k)`` (0 for a point mass)."""
        q = self.posterior(x)
        return q.mean, q.stddev

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: model name, guide kind, latent size, network and its options."""
        return {"model": self.kind, "guide": self.guide_kind, "latent_dim": self.latent_dim,
                "network": self.network, **self.network_options}


class _Decode(nn.Module):
    """A decoder followed by a fixed offset (:meth:`Model.output_network`)."""

    def __init__(self, decoder: nn.Module, offset: torch.Tensor | None) -> None:
        super().__init__()
        self.decoder = decoder
        self.register_buffer("offset", None if offset is None else offset.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return out if self.offset is None else out + self.offset


def build_model(
    name: str,
    likelihood: Likelihood,
    data_dim: int,
    latent_dim: int = 8,
    hidden_dim: int = 256,
    *,
    data_shape: tuple[int, ...] | None = None,
    network: str | None = None,
) -> Model:
    """Build a model by its :data:`MODELS` name (``"vae"``, ``"ae"``, ``"linear"``, ...).

    Parameters
    ----------
    name : str
        Key of :data:`MODELS`: it names the guide kind (and the network, if the
        model fixes one).
    likelihood : Likelihood
    data_dim, latent_dim : int
        Sizes d of x and k of z.
    hidden_dim : int
        Width option of the networks (unless the model fixes it).
    data_shape : tuple of int, optional
        Shape of one example (``(C, H, W)``, ``(H, W)`` or ``(d,)``); ``(data_dim,)``
        if not given.
    network : str, optional
        Key of :data:`~vaelik.models.networks.NETWORKS` (``--network``); default:
        the model's own, else ``"mlp"``.

    Raises
    ------
    InputError
        An unknown model or network, a network the model does not take (the
        linear model is an MLP), or data the network cannot read (``conv`` on
        data without an image shape).

    Examples
    --------
    >>> from vaelik.models import Normal
    >>> model = build_model("vae", Normal(scale="predicted"), 64, 4, 8,
    ...                     data_shape=(1, 8, 8), network="conv")
    >>> model.decoder(torch.zeros(5, 4)).shape  # a location and a raw scale per pixel
    torch.Size([5, 128])
    """
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    spec = MODELS[name]
    check_positive_int("data_dim", data_dim)
    check_positive_int("latent_dim", latent_dim)
    data_shape = tuple(data_shape) if data_shape else (data_dim,)
    if math.prod(data_shape) != data_dim:
        raise InputError(f"data_shape {data_shape} does not have data_dim={data_dim} values; "
                         "pass the shape of one example")
    chosen = network or spec.network or "mlp"
    if spec.network is not None and chosen != spec.network:
        raise InputError(f"model {name!r} is built on network {spec.network!r}, not "
                         f"{chosen!r}; use --network {spec.network} or another --model")
    if chosen not in NETWORKS:
        raise InputError(f"unknown network {chosen!r}; choose one of: {', '.join(NETWORKS)}")
    options = {"hidden_dim": hidden_dim, **spec.options}
    encoder, decoder = NETWORKS[chosen](
        data_shape, latent_dim, likelihood.output_multiplier(), **options
    )
    return Model(likelihood, encoder, decoder, spec.guide, data_dim=data_dim,
                 latent_dim=latent_dim, kind=name, network=chosen, network_options=options)
