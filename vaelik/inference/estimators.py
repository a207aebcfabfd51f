r"""Monte Carlo estimators of a fitted model, read from Pyro traces of its model and guide.

Nothing here knows the prior, the guide, the networks or the likelihood: every
number comes from running the model's ``guide(x)`` and replaying its
``model(x)`` on the guide's samples. Sites inside the plate named
:data:`~vaelik.models.DATA_PLATE` are **local** (one value per example);
latent sites outside it are **global** (a Bayesian scale σ).

Per-example log importance weights
    The guide runs under a vectorised plate of K particles (outside the data
    plate, at dim ``-(max_plate_nesting + 1)``) and the model is replayed on
    its trace:

    .. math::
        \log w_{kn} = \sum_{\text{local latent } s}
            \big[\log p(z^s_{kn}) - \log q(z^s_{kn} \mid x_n)\big]
            + \sum_{\text{local observed } o} \log p(x^o_n \mid z_{kn}, g),
        \qquad z_{kn} \sim q(z \mid x_n),

    a ``(K, n)`` tensor (:func:`log_weights`), computed in chunks of particles
    and rows so that the widest tensor of a chunk (a decoder output, or a wider
    hidden layer or feature map: :func:`floats_per_particle`) has at most
    ``chunk_floats`` floats; a chunk holds up to :data:`CHUNK_PARTICLES` particles
    of its rows, so the guide (the encoder) runs about once per row and group,
    not once per particle.

Global latents: posterior-predictive weights
    A global latent g is **not** a term of :math:`\log w`: S values
    :math:`g_s \sim q(g)` are drawn from the guide's site distribution, each
    group ``s`` of the K particles is run with ``g = g_s`` (conditioned in
    guide and model, so shared by every particle and row of the group), and

    .. math::
        \hat p(x_n) = \frac1S \sum_{s=1}^S \frac1{K_s} \sum_{k \in s} w_{kn}(g_s)
        \;\approx\; \int p(x_n \mid g)\, q(g)\, \mathrm dg ,

    the posterior predictive density of a test point, with q(g) standing for the
    posterior of g given the training data (not a marginal likelihood under the
    prior of g: :math:`\log p(g) - \log q(g)` is left out). Without a global
    latent the K particles are split into S groups the same way, and
    :func:`iwae_log_px` returns the S group estimates; their log-mean-exp is the
    IWAE bound (Burda et al., 2016)
    :math:`\log \frac1K \sum_k w_{kn} \le \log p(x_n)` in expectation (exactly
    that K-sample estimate when S divides K).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyro
import torch
from pyro import poutine
from pyro.poutine import Trace
from pyro.poutine.util import site_is_subsample

from vaelik.errors import InputError
from vaelik.models import DATA_PLATE, Model

__all__ = [
    "CHUNK_FLOATS",
    "IWAE_DRAWS",
    "Sites",
    "sites",
    "model_sites",
    "off_rng_stream",
    "traces",
    "log_weights",
    "draw_globals",
    "iwae_log_px",
    "observation_mean",
    "observation_site",
    "affine_decoder",
    "group_sizes",
    "floats_per_particle",
    "CHUNK_PARTICLES",
]

#: bound on the floats of the widest tensor of one chunk (K_chunk × rows × floats_per_particle)
CHUNK_FLOATS = 2**23
#: particles a chunk holds of its rows (when its group has that many): rows are chosen so that
#: the encoder, run on a chunk's rows once per chunk, is not re-run for every particle
CHUNK_PARTICLES = 16
#: default number S of groups (draws) of the IWAE particles; ArviZ 1.x PSIS needs >= 25
IWAE_DRAWS = 100
#: name of the vectorised particles plate
PARTICLES = "particles"


def off_rng_stream(device: torch.device):
    """Run a block without advancing the global RNG state (nor that of ``device``)."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _is_local(site: dict) -> bool:
    return any(frame.name == DATA_PLATE for frame in site["cond_indep_stack"])


@dataclass
class Sites:
    """The sample sites of one guide trace and its replayed model trace, by role.

    Attributes
    ----------
    local_latent, global_latent, observed : list of str
        Names in the model's order: latent sites inside / outside the data plate,
        observed sites inside it.
    max_plate_nesting : int
        Deepest plate dim used by model or guide (1 for the data plate alone).
    guide_trace, model_trace : pyro.poutine.Trace
    """

    local_latent: list[str] = field(default_factory=list)
    global_latent: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    max_plate_nesting: int = 0
    guide_trace: Trace | None = None
    model_trace: Trace | None = None

    @property
    def point_mass(self) -> bool:
        """Whether a local latent's guide is a point mass (a Delta: no density, no IWAE)."""
        for name in self.local_latent:
            fn = self.guide_trace.nodes[name]["fn"]
            while hasattr(fn, "base_dist"):
                fn = fn.base_dist
            if isinstance(fn, pyro.distributions.Delta):
                return True
        return False

    def observed_site(self) -> dict:
        """The one local observed site of the model trace (``x``)."""
        if len(self.observed) != 1:
            raise InputError(f"the model has {len(self.observed)} observed sites in plate "
                             f"{DATA_PLATE!r} ({', '.join(self.observed)}); vaelik scores exactly one")
        return self.model_trace.nodes[self.observed[0]]

    def global_posteriors(self) -> dict[str, torch.distributions.Distribution]:
        """The guide's distribution q(g) of each global latent site."""
        return {name: self.guide_trace.nodes[name]["fn"] for name in self.global_latent}


def sites(guide_trace: Trace, model_trace: Trace) -> Sites:
    """Sort the sample sites of a guide trace and its replayed model trace (see :class:`Sites`)."""
    out = Sites(guide_trace=guide_trace, model_trace=model_trace)
    for trace in (guide_trace, model_trace):
        for site in trace.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                dims = [-f.dim for f in site["cond_indep_stack"] if f.dim is not None]
                out.max_plate_nesting = max([out.max_plate_nesting, *dims])
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["is_observed"]:
            if name not in guide_trace.nodes and _is_local(site):
                out.observed.append(name)
            continue
        (out.local_latent if _is_local(site) else out.global_latent).append(name)
    return out


def traces(model: Model, x: torch.Tensor, num_particles: int | None = None,
           condition: dict[str, torch.Tensor] | None = None,
           max_plate_nesting: int = 1) -> tuple[Trace, Trace]:
    """Run the guide on ``x`` (vectorised over ``num_particles`` if given) and replay the model.

    ``condition`` fixes sites (global latents) to values in both guide and
    model. Returns ``(guide_trace, model_trace)``; with particles, local sites
    have batch shape ``(num_particles, n)``.
    """
    guide, model_fn = model.guide, model.model
    if condition:
        guide = poutine.condition(guide, data=condition)
        model_fn = poutine.condition(model_fn, data=condition)
    plate = (pyro.plate(PARTICLES, num_particles, dim=-(max_plate_nesting + 1))
             if num_particles is not None else contextlib.nullcontext())
    with plate:
        guide_trace = poutine.trace(guide).get_trace(x)
    with plate:
        model_trace = poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(x)
    return guide_trace, model_trace


def model_sites(model: Model, x: torch.Tensor) -> Sites:
    """:class:`Sites` of one unvectorised trace on the first row of ``x``, off the RNG stream."""
    with off_rng_stream(x.device), torch.no_grad():
        return sites(*traces(model, x[:1]))


def _weights(guide_trace: Trace, model_trace: Trace, s: Sites) -> torch.Tensor:
    log_w = None
    for name in s.local_latent:  # log p(z) - log q(z | x) per site, then log p(x | z)
        p, q = model_trace.nodes[name], guide_trace.nodes[name]
        term = p["fn"].log_prob(p["value"]) - q["fn"].log_prob(q["value"])
        log_w = term if log_w is None else log_w + term
    for name in s.observed:
        o = model_trace.nodes[name]
        term = o["fn"].log_prob(o["value"])
        log_w = term if log_w is None else log_w + term
    return log_w


@torch.no_grad()
def log_weights(model: Model, x: torch.Tensor, num_particles: int,
                condition: dict[str, torch.Tensor] | None = None,
                pilot: Sites | None = None) -> torch.Tensor:
    r"""Per-example log importance weights :math:`\log w_{kn}`, shape ``(num_particles, n)``.

    One vectorised guide trace and one replayed model trace (no chunking: see
    :func:`iwae_log_px` for the chunked estimate). A model with global latents
    needs them in ``condition`` (e.g. one draw of :func:`draw_globals`).
    """
    s = pilot or model_sites(model, x)
    missing = [g for g in s.global_latent if g not in (condition or {})]
    if missing:
        raise InputError(f"global latent sites {missing} need a value in condition=; "
                         "draw them with draw_globals")
    guide_trace, model_trace = traces(model, x, num_particles, condition, s.max_plate_nesting)
    return _weights(guide_trace, model_trace, s)


@torch.no_grad()
def draw_globals(model: Model, x: torch.Tensor, num_draws: int) -> dict[str, torch.Tensor]:
    """``num_draws`` values of each global latent site from the guide's q(g), shape ``(S, ...)``.

    Empty for a model without global latents. Draws from the global RNG.
    """
    return {name: q.sample((num_draws,)) for name, q in model_sites(model, x).global_posteriors().items()}


@torch.no_grad()
def iwae_log_px(
    model: Model,
    x: torch.Tensor,
    num_samples: int = 1000,
    draws: int = IWAE_DRAWS,
    chunk_floats: int = CHUNK_FLOATS,
    global_draws: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""IWAE estimates of :math:`\log p(x_n)` per group of particles, shape ``(draws, n)``.

    The ``num_samples`` particles are split into ``draws`` groups (sizes differing
    by at most one); row ``s`` is the log-mean-exp of group ``s``'s weights, with
    the global latents at ``global_draws[name][s]`` (drawn from the guide if not
    given). ``logmeanexp`` over the first axis is the posterior-predictive
    estimate of the module docstring. Call inside ``model.params()``. Peak
    memory is about ``chunk_floats`` floats per tensor of a chunk (:func:`floats_per_particle`),
    whatever K and n are.
    """
    draws = max(1, min(draws, num_samples))
    pilot = model_sites(model, x)
    if pilot.point_mass:
        raise InputError("the guide has a point-mass (Delta) site: no importance-sampled "
                         "log p(x); use a guide with a density")
    if pilot.global_latent and global_draws is None:
        global_draws = draw_globals(model, x, draws)
    global_draws = global_draws or {}
    per_draw = list(group_sizes(num_samples, draws))
    n, d = x.shape
    width = floats_per_particle(model, d)
    rows = max(1, min(n, chunk_floats // (width * min(max(per_draw), CHUNK_PARTICLES))))
    out = torch.empty(draws, n, dtype=x.dtype, device=x.device)
    # argument/support validation re-checks every (K_chunk, rows, d) decoder output: two extra
    # full passes per chunk (~15% of the estimate's time); the inputs were checked when loaded
    with pyro.validation_enabled(False):
        for r0 in range(0, n, rows):
            xb = x[r0 : r0 + rows]
            k_chunk = max(1, chunk_floats // (xb.shape[0] * width))
            for s, k_total in enumerate(per_draw):
                condition = {name: value[s] for name, value in global_draws.items()}
                acc = torch.full((xb.shape[0],), -math.inf, device=x.device)
                for k0 in range(0, k_total, k_chunk):
                    log_w = log_weights(model, xb, min(k_chunk, k_total - k0), condition, pilot)
                    acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
                out[s, r0 : r0 + rows] = acc - math.log(k_total)
    return out


def floats_per_particle(model: Model, d: int) -> int:
    """Floats of the widest tensor the decoder makes for one particle of one row.

    The decoder's output, ``m·d`` (``m = likelihood.output_multiplier()``), or its
    own ``floats_per_sample`` where it declares one (a hidden layer, or a conv
    feature map, wider than the output: 6,272 floats for ``--network conv
    --hidden-dim 64`` on 28 × 28 against an output of 784).
    """
    out = model.likelihood.output_multiplier() * d
    return max(1, out, int(getattr(model.decoder, "floats_per_sample", 0)))


def _global_means(pilot: Sites) -> dict[str, torch.Tensor]:
    return {name: q.mean for name, q in pilot.global_posteriors().items()}


@torch.no_grad()
def observation_site(model: Model, x: torch.Tensor,
                     latents: dict[str, torch.Tensor] | None = None) -> dict:
    r"""The model's observed site for data ``x`` (rows ``(n, d)``), off the RNG stream.

    With ``latents`` (e.g. ``{"z": z}`` of shape ``(n, k)``) the model is run
    with those sites fixed and every global latent at its posterior mean
    :math:`\mathbb E_q[g]`; without, at one draw of the guide. Returns the
    trace node: ``site["fn"]`` is :math:`p(x \mid z)`.
    """
    pilot = model_sites(model, x)
    with off_rng_stream(x.device):
        if latents is None:
            _, model_trace = traces(model, x)
        else:
            cond = {**_global_means(pilot), **latents}
            model_trace = poutine.trace(poutine.condition(model.model, data=cond)).get_trace(x)
    return model_trace.nodes[pilot.observed_site()["name"]]


@torch.no_grad()
def observation_mean(model: Model, latents: dict[str, torch.Tensor],
                     x: torch.Tensor) -> torch.Tensor:
    r"""Mean of :math:`p(x \mid z)` at given local latents, shape ``(n, d)``.

    The model is replayed with ``latents`` fixed (each of batch size n) and the
    global latents at their posterior means; ``x`` supplies the observed site's
    value (cycled to n rows if shorter): it sets the shapes and matters only to
    a family whose parameters depend on the data (an ``optimal`` scale), never
    to the mean of a location family.
    """
    n = next(iter(latents.values())).shape[0]
    if x.shape[0] != n:
        x = x[torch.arange(n, device=x.device) % x.shape[0]]
    return observation_site(model, x, latents)["fn"].mean


@torch.no_grad()
def affine_decoder(decoder: torch.nn.Module, latent_dim: int, device: torch.device,
                   rtol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(W, b)`` of an affine decoder :math:`f(z) = Wz + b`, or None if it is not affine.

    Read from the decoder's outputs, in float64 on a copy: :math:`b = f(0)`,
    :math:`W_{:,i} = f(e_i) - b`; the decoder is affine when two more probes
    agree with :math:`Wz + b` to ``rtol``. Shapes ``(m d, k)`` and ``(m d,)``.
    """
    import copy

    f = copy.deepcopy(decoder).double().to(device)
    eye = torch.eye(latent_dim, dtype=torch.float64, device=device)
    b = f(torch.zeros(1, latent_dim, dtype=torch.float64, device=device))[0]
    w = (f(eye) - b).T
    probes = torch.stack([torch.linspace(-2.0, 1.5, latent_dim, dtype=torch.float64),
                          torch.full((latent_dim,), -0.7, dtype=torch.float64)]).to(device)
    expected = probes @ w.T + b
    got = f(probes)
    if not torch.allclose(got, expected, rtol=rtol, atol=rtol * float(expected.abs().max() + 1)):
        return None
    return w, b


def group_sizes(num_samples: int, draws: int) -> Iterator[int]:
    """Sizes of the ``draws`` groups of ``num_samples`` particles (differing by at most one)."""
    for i in range(draws):
        yield num_samples // draws + (1 if i < num_samples % draws else 0)
