r"""Model/guide pairs: structure, the ELBO they define, and minibatch scaling.

The minibatch estimator is
:math:`\hat L_B = \tfrac{N}{B}\sum_{n\in B}\ell_n + g`, where :math:`\ell_n` are
per-example terms (inside the subsampled plate) and :math:`g` the global ones
(a Bayesian scale's :math:`\log q(\sigma) - \log p(\sigma)`). Averaged over a
partition of the data into batches it must equal the full-batch
:math:`\sum_n \ell_n + g`: exactly for a deterministic (Delta-guide) model, in
expectation for a VAE.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from vaelik.inference import make_elbo
from vaelik.models import GUIDES, MODELS, NETWORKS, Model, build_model, get_likelihood

N, D, K = 96, 10, 3


@pytest.fixture
def x():
    return torch.rand(N, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def make(kind, scale="learned", family="normal", hidden=16, **lik_kwargs):
    """A float64 model whose parameters exist (one guide + model trace)."""
    torch.manual_seed(1)
    lik = get_likelihood(family, scale=scale, init_scale=0.4, **lik_kwargs)
    model = build_model(kind, lik, D, K, hidden).double()
    x0 = torch.rand(4, D, dtype=torch.float64)
    with model.params(), torch.random.fork_rng():
        tr = poutine.trace(model.guide).get_trace(x0)
        poutine.trace(poutine.replay(model.model, trace=tr)).get_trace(x0)
    return model


def partition(n, batch, seed=0):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [perm[i : i + batch] for i in range(0, n, batch)]


# ----------------------------------------------------------------------------------------
# Structure


@pytest.mark.parametrize("kind, guide", [("vae", "normal"), ("ae", "delta"), ("linear", "full"),
                                         ("linear-diag", "normal")])
def test_build_model_kinds(kind, guide, x):
    model = make(kind)
    assert type(model) is Model and model.describe()["model"] == kind
    assert model.guide_kind == guide == MODELS[kind].guide
    with model.params():
        tr = poutine.trace(model.guide).get_trace(x)
        loc, scale = model.encode(x)
    z = tr.nodes["z"]
    assert z["value"].shape == (N, K) and z["fn"].event_shape == (K,)
    if guide == "full":  # one covariance L L^T for every x, L = I at the start
        assert isinstance(z["fn"], dist.MultivariateNormal)
        eye = torch.eye(K, dtype=torch.float64)
        assert_close(z["fn"].covariance_matrix, eye.expand(N, K, K))
        assert_close(scale, torch.ones_like(scale))
        assert_close(z["fn"].mean, loc)
        assert "guide_scale_tril" in tr.nodes and tr.nodes["guide_scale_tril"]["type"] == "param"
    elif kind == "ae":
        assert isinstance(z["fn"].base_dist, dist.Delta)
        assert_close(z["value"], loc)  # z is the encoder mean, no noise
        assert_close(scale, torch.zeros_like(scale))
        assert float(z["fn"].log_prob(z["value"]).abs().sum()) == 0
    else:
        assert isinstance(z["fn"].base_dist, dist.Normal)
        assert_close(z["fn"].base_dist.scale, scale)
        assert bool((scale > 0).all())


def test_registries_give_the_choices_and_the_error_text():
    assert set(MODELS) == {"vae", "ae", "linear", "linear-diag"}
    assert set(GUIDES) == {"normal", "delta", "full"}
    assert "mlp" in NETWORKS and all(spec.network in (None, *NETWORKS) for spec in MODELS.values())
    lik = get_likelihood("normal", scale=0.3)
    with pytest.raises(ValueError, match="unknown model 'cnn'; choose one of: vae, ae, linear, linear-diag"):
        build_model("cnn", lik, D, K)
    enc, dec = NETWORKS["mlp"]((D,), K, 1, hidden_dim=4)
    with pytest.raises(ValueError, match="unknown guide 'flow'; choose one of: normal, delta, full"):
        Model(lik, enc, dec, "flow", data_dim=D, latent_dim=K)
    with pytest.raises(ValueError, match="data_shape .* does not have data_dim=10"):
        build_model("vae", lik, D, K, data_shape=(3, 3))
    with pytest.raises(ValueError, match="hidden_dim must be an integer >= 0"):
        build_model("vae", lik, D, K, hidden_dim=-1)


def test_composed_model_equals_the_named_one(x):
    """Model(lik, *mlp.build(...), "delta") is the "ae" of MODELS: same weights, same loss."""
    lik = get_likelihood("normal", scale=0.3)
    torch.manual_seed(5)
    named = build_model("ae", lik, D, K, 16).double()
    torch.manual_seed(5)
    enc, dec = NETWORKS["mlp"]((D,), K, lik.output_multiplier(), hidden_dim=16)
    composed = Model(lik, enc, dec, "delta", data_dim=D, latent_dim=K).double()
    elbo = pyro.infer.Trace_ELBO()
    with named.params():
        a = elbo.differentiable_loss(named.model, named.guide, x)
    with composed.params():
        b = elbo.differentiable_loss(composed.model, composed.guide, x)
    assert_close(a, b, rtol=0, atol=0)


def test_linear_model_has_no_hidden_layer():
    model = make("linear", hidden=256)  # hidden_dim is ignored
    assert model.network_options["hidden_dim"] == 0 == model.describe()["hidden_dim"]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(2 * K, D), (D, K)]
    # the decoder is affine: f(a z1 + (1-a) z2) = a f(z1) + (1-a) f(z2)
    z1, z2 = torch.randn(5, K, dtype=torch.float64), torch.randn(5, K, dtype=torch.float64)
    f = model.decoder
    assert_close(f(0.3 * z1 + 0.7 * z2), 0.3 * f(z1) + 0.7 * f(z2))
    # while the VAE's is not
    g = make("vae").decoder
    assert not torch.allclose(g(0.3 * z1 + 0.7 * z2), 0.3 * g(z1) + 0.7 * g(z2))


def test_predicted_scale_doubles_decoder_output():
    z = torch.zeros(3, 1, K, dtype=torch.float64)  # the decoder contract: (..., k) -> (..., m d)
    assert make("vae", scale="predicted").decoder(z).shape == (3, 1, 2 * D)
    assert make("vae", scale="learned").decoder(z).shape == (3, 1, D)


def test_models_keep_separate_parameters(x):
    a, b = make("vae"), make("vae")
    with a.params():
        pyro.get_param_store()["scale"] = torch.tensor(0.7, dtype=torch.float64)
    with b.params():
        assert float(pyro.param("scale").detach()) == pytest.approx(0.4)
    with a.params():
        assert float(pyro.param("scale").detach()) == pytest.approx(0.7)


def test_ae_loss_is_map_objective(x):
    """AE: -ELBO = -Σ_n [log p(x_n | μ(x_n)) + log N(μ(x_n); 0, I)], deterministic."""
    model = make("ae", scale=0.3)
    with model.params():
        loss = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)
        mu, _ = model.encode(x)
        x_hat = model.decoder(mu)
    recon = dist.Normal(x_hat, 0.3).log_prob(x).sum()
    log_pz = dist.Normal(0.0, 1.0).log_prob(mu).sum()
    assert_close(loss, -(recon + log_pz))


def test_vae_meanfield_loss_is_recon_minus_analytic_kl(x):
    model = make("vae", scale=0.3)
    with model.params():
        pyro.set_rng_seed(3)
        loss = make_elbo("meanfield").differentiable_loss(model.model, model.guide, x)
        pyro.set_rng_seed(3)
        loc, sd = model.encode(x)
        z = dist.Normal(loc, sd).rsample()  # the same draw the guide makes
        recon = dist.Normal(model.decoder(z), 0.3).log_prob(x).sum()
    kl = (0.5 * (sd**2 + loc**2 - 1) - sd.log()).sum()
    assert_close(loss, -(recon - kl))


# ----------------------------------------------------------------------------------------
# Minibatch scaling


def minibatch_average(model, elbo, x, batch, seed):
    losses = [
        elbo.differentiable_loss(model.model, model.guide, x[idx], idx, num_data=x.shape[0])
        for idx in partition(x.shape[0], batch, seed)
    ]
    return torch.stack(losses).mean()


@pytest.mark.parametrize("batch", [8, 32])
def test_minibatch_average_equals_full_batch_exactly_for_ae(x, batch):
    """Deterministic guide: the partition average is the full-batch loss, gradients too."""
    model = make("ae", scale="learned")
    elbo = pyro.infer.Trace_ELBO()
    with model.params():
        full = elbo.differentiable_loss(model.model, model.guide, x)
        full_grad = torch.autograd.grad(full, pyro.param("scale").unconstrained())[0]
        mini = minibatch_average(model, elbo, x, batch, seed=batch)
        mini_grad = torch.autograd.grad(mini, pyro.param("scale").unconstrained())[0]
        one = elbo.differentiable_loss(model.model, model.guide, x[:batch], torch.arange(batch),
                                       num_data=N)
        unscaled = elbo.differentiable_loss(model.model, model.guide, x[:batch])
    assert_close(mini, full, rtol=1e-10, atol=0)
    # the learned scale's gradient is the full-data one, not B/N or N/B of it
    assert_close(mini_grad, full_grad, rtol=1e-10, atol=0)
    # one batch is scaled by N/B
    assert_close(one, unscaled * N / batch, rtol=1e-10, atol=0)


@pytest.mark.parametrize("scale", ["learned", "bayesian"])
def test_minibatch_elbo_matches_full_batch_within_mc_error(x, scale):
    """VAE: E[partition average] = E[full-batch loss], compared by a two-sample z-test."""
    model = make("vae", scale=scale)
    elbo = make_elbo("trace")
    reps = 100
    with model.params(), torch.no_grad():
        pyro.set_rng_seed(10)
        full = torch.stack([elbo.differentiable_loss(model.model, model.guide, x)
                            for _ in range(reps)])
        mini = torch.stack([minibatch_average(model, elbo, x, 24, seed=r) for r in range(reps)])
    se = math.sqrt(full.var() / reps + mini.var() / reps)
    assert abs(float(mini.mean() - full.mean())) < 4 * se
    # the test has power: a missing N/B factor would shift the mean by dozens of SEs
    assert abs(float(full.mean())) * (1 - 24 / N) > 20 * se


def test_bayesian_scale_terms_count_once_per_batch(x):
    """With L(M) = g + (M/B)·Σ_batch ℓ_n for plate size M, g = 2 L(N) - L(2N) = log q(σ) - log p(σ)."""
    model = make("vae", scale="bayesian", prior_median=0.3, prior_log_sd=1.5)
    elbo = make_elbo("trace")
    idx = torch.arange(8, 24)
    with model.params(), torch.no_grad():
        store = pyro.get_param_store()
        store["scale_q_loc"] = torch.tensor(math.log(0.2), dtype=torch.float64)
        store["scale_q_sd"] = torch.tensor(0.05, dtype=torch.float64)

        def loss(num_data):
            pyro.set_rng_seed(7)
            return elbo.differentiable_loss(model.model, model.guide, x[idx], idx, num_data=num_data)

        g = 2 * loss(N) - loss(2 * N)
        pyro.set_rng_seed(7)
        sigma = poutine.trace(model.guide).get_trace(x[idx], idx, N).nodes["scale"]["value"]
    # closed forms of the two LogNormal log-densities at the drawn σ
    log_q = -math.log(sigma * 0.05 * math.sqrt(2 * math.pi)) - (math.log(sigma) - math.log(0.2)) ** 2 / (2 * 0.05**2)
    log_p = -math.log(sigma * 1.5 * math.sqrt(2 * math.pi)) - (math.log(sigma) - math.log(0.3)) ** 2 / (2 * 1.5**2)
    assert abs(log_q - log_p) > 1  # a term large enough to notice if it were scaled
    assert_close(g, torch.tensor(log_q - log_p, dtype=torch.float64), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------
# JIT


# torch.jit.trace itself warns that it is deprecated; the jit-* ELBOs use it on purpose
@pytest.mark.filterwarnings("ignore:.*torch.jit.trace.*:DeprecationWarning")
@pytest.mark.parametrize("plain, jit", [("trace", "jit-trace"), ("meanfield", "jit-meanfield")])
def test_jit_elbo_equals_plain_elbo(x, plain, jit):
    model = make("vae", scale="learned")
    x32 = x[:32]
    idx = torch.arange(32)
    jit_elbo, plain_elbo = make_elbo(jit), make_elbo(plain)
    # Pyro's JitTrace_ELBO caches its compiled loss under id(model): keep one bound method
    # (``model.model`` makes a new object, with a new id, on every access)
    m, g = model.model, model.guide
    with model.params():
        jit_elbo.differentiable_loss(m, g, x32, idx, num_data=N)  # compile (draws from the RNG)
        values = []
        for seed in (0, 1, 2):
            pyro.set_rng_seed(seed)
            a = plain_elbo.differentiable_loss(m, g, x32, idx, num_data=N)
            pyro.set_rng_seed(seed)
            b = jit_elbo.differentiable_loss(m, g, x32, idx, num_data=N)
            assert_close(b, a, rtol=1e-10, atol=1e-8)
            values.append(float(a.detach()))
    assert len(set(values)) == 3  # different draws give different values: the RNG was used
