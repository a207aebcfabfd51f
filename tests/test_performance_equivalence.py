"""The fast default training path computes what Pyro's own ELBOs compute.

``--elbo jit-meanfield`` (the default, :class:`vaelik.inference.elbo.MeanField_ELBO`
recorded with ``torch.jit.trace``) must give, at the same RNG state, the same
loss and gradients as ``TraceMeanField_ELBO`` (bit for bit) and, in
expectation, as ``Trace_ELBO``; fits must not change when the default changes.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from torch.testing import assert_close

from vaelik.inference import TrainConfig, fit
from vaelik.inference.elbo import MeanField_ELBO, make_elbo
from vaelik.inference.svi import Trainer
from vaelik.models import build_model, get_likelihood

D, B, N = 16, 32, 96

CASES = [
    ("vae", "normal", "learned"),
    ("vae", "normal", "per_dim"),
    ("vae", "normal", "predicted"),
    ("vae", "normal", "optimal"),
    ("vae", "normal", "bayesian"),
    ("vae", "laplace", "learned"),
    ("vae", "bernoulli", None),
    ("vae", "cbernoulli", None),
    ("ae", "normal", 0.1),
    ("linear", "normal", "learned"),
]


def _model(kind, likelihood, scale):
    kwargs = {} if scale is None else {"scale": scale}
    torch.manual_seed(0)
    return build_model(kind, get_likelihood(likelihood, **kwargs), D, 4, 8)


def _loss_and_grads(model, elbo, x, idx, seed):
    with model.params():
        torch.manual_seed(seed)
        loss = elbo.differentiable_loss(model.model, model.guide, x[idx], idx, num_data=N)
        store = pyro.get_param_store()
        names = sorted(store.keys())
        params = [store.get_param(n).unconstrained() for n in names]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), dict(zip(names, grads))


@pytest.mark.parametrize(("kind", "likelihood", "scale"), CASES)
def test_default_elbo_matches_trace_mean_field_bit_for_bit(kind, likelihood, scale):
    x = torch.rand(N, D, generator=torch.Generator().manual_seed(1))
    idx = torch.arange(B)
    model = _model(kind, likelihood, scale)
    default = make_elbo(TrainConfig().elbo)
    reference = pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1)
    with model.params(), torch.random.fork_rng():  # create params, record the JIT loss
        default.differentiable_loss(model.model, model.guide, x[idx], idx, num_data=N)
    for seed in (0, 1):  # the second call replays the recording
        got_loss, got = _loss_and_grads(model, default, x, idx, seed)
        ref_loss, ref = _loss_and_grads(model, reference, x, idx, seed)
        assert_close(got_loss, ref_loss, rtol=1e-6, atol=1e-4)
        assert sorted(got) == sorted(ref)
        for name in ref:
            assert_close(got[name], ref[name], rtol=0, atol=0, msg=f"gradient of {name}")


@pytest.mark.parametrize("jit", [False, True])
def test_mean_field_elbo_matches_trace_elbo_in_expectation(jit):
    # Trace_ELBO estimates the KL by sampling; with the same z the difference is the
    # KL estimate's noise, which averages out: compare means over many particles.
    x = torch.rand(N, D, generator=torch.Generator().manual_seed(2))
    idx = torch.arange(B)
    model = _model("vae", "normal", "learned")
    ours = MeanField_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1, jit=jit)
    theirs = pyro.infer.Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1)
    with model.params(), torch.random.fork_rng():
        ours.differentiable_loss(model.model, model.guide, x[idx], idx, num_data=N)
    got_loss, got = _loss_and_grads(model, ours, x, idx, 0)
    ref_loss, ref = _loss_and_grads(model, theirs, x, idx, 0)
    assert_close(got_loss, ref_loss, rtol=2e-3, atol=0.0)
    for name in ("scale", "decoder$$$head.bias"):
        assert_close(got[name], ref[name], rtol=0.05, atol=0.05 * float(ref[name].abs().max()))


def test_fit_with_default_elbo_equals_fit_with_meanfield():
    kwargs = {"data": "ppca", "data_options": {"n": 300}, "epochs": 2, "batch_size": 64}
    fast = fit(TrainConfig(elbo="jit-meanfield", **kwargs), progress=False, evaluate=False)
    pyro_mf = fit(TrainConfig(elbo="meanfield", **kwargs), progress=False, evaluate=False)
    cols = ["epoch", "split", "elbo", "recon", "kl", "mse", "scale"]
    assert fast.metrics[cols].equals(pyro_mf.metrics[cols])


def test_jit_elbos_record_once_per_fit():
    config = TrainConfig(data="ppca", data_options={"n": 300}, batch_size=64, elbo="jit-trace")
    from vaelik.inference import build

    data, model = build(config)
    with model.params():
        trainer = Trainer(config, model, data.train)
        for _ in range(3):
            assert trainer.run(torch.randperm(data.train.shape[0]), 0, 3) is None
        # Pyro keys its compiled function on id(model): the bound method is made once
        assert len(trainer.elbo._loss_and_surrogate_loss.compiled) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_default_step_has_no_host_sync():
    from vaelik.inference import build

    config = TrainConfig(data="ppca", data_options={"n": 640}, batch_size=64, device="cuda")
    data, model = build(config)
    model.to("cuda")
    x = data.train.cuda()
    with model.params():
        trainer = Trainer(config, model, x)
        perm = torch.randperm(x.shape[0]).cuda()
        assert trainer.run(perm, 0, 2) is None  # warm-up (allocator, Adam state)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any .item(), bool(), nonzero() raises
        try:
            for step in range(2, 6):  # the step body; run() reads its flag once per 25 steps
                idx = perm[step * 64 : (step + 1) * 64]
                loss = trainer.loss(idx)
                trainer.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                trainer.optimizer.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
