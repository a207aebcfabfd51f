"""The convolutional encoder/decoder (``--network conv``): shapes, layout, gradients, runs.

The conv decoder must hand every likelihood exactly what the MLP hands it: a
``(..., m·d)`` output whose first ``d`` values are the first parameter image and
whose next ``d`` the second (a predicted raw scale), each flattened in the data's
order ``(C, H, W)`` row-major. The encoder must read a flat row in that same order.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pyro.poutine as poutine
import pytest
import torch
from interrupting import interrupt_after
from torch.testing import assert_close

from vaelik.cli import main
from vaelik.config import TrainConfig
from vaelik.errors import InputError
from vaelik.models import (
    NETWORKS,
    SCALE_MODES,
    LocationScaleLikelihood,
    build_model,
    get_likelihood,
    likelihood_class,
    likelihood_names,
)
from vaelik.models.networks import conv

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
B, K = 3, 4


def _likelihoods():
    """Every registered family with every scale it accepts (a number: fixed)."""
    cases = []
    for name in likelihood_names():
        if issubclass(likelihood_class(name), LocationScaleLikelihood):
            for scale in (0.3, *SCALE_MODES):
                try:
                    get_likelihood(name, scale=scale)
                except InputError:  # a family may not offer every mode
                    continue
                cases.append((name, scale))
        else:
            cases.append((name, None))
    return cases


LIKELIHOODS = _likelihoods()


def _likelihood(name, scale):
    return get_likelihood(name) if scale is None else get_likelihood(name, scale=scale)


def _traces(model, x):
    with model.params():
        guide = poutine.trace(model.guide).get_trace(x)
        return guide, poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)


def test_registered_and_sizes():
    assert NETWORKS["conv"] is conv.build
    assert conv.image_shape((8, 8)) == (1, 8, 8)  # a 2-tuple (H, W) is one channel
    assert [conv.num_blocks(h, w) for _, h, w in SHAPES] == [2, 2, 3]
    assert conv.num_blocks(8, 12) == 2


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name, scale", LIKELIHOODS, ids=str)
def test_output_fits_every_likelihood(shape, name, scale):
    """Decoder output ``(..., m·d)``; the observation site has event shape ``(d,)``."""
    d = math.prod(shape)
    lik = _likelihood(name, scale)
    torch.manual_seed(0)
    model = build_model("vae", lik, d, K, 4, data_shape=shape, network="conv")
    m = lik.output_multiplier()
    assert model.decoder(torch.zeros(2, B, K)).shape == (2, B, m * d)
    loc, sd = model.encoder(torch.rand(B, d))
    assert loc.shape == sd.shape == (B, K) and bool((sd > 0).all())
    x = torch.rand(B, d).clamp(0.01, 0.99)
    if name == "bernoulli":
        x = x.round()
    guide, trace = _traces(model, x)
    site = trace.nodes["x"]
    assert site["fn"].event_shape == (d,) and site["fn"].batch_shape == (B,)
    assert math.isfinite(float((trace.log_prob_sum() - guide.log_prob_sum()).detach()))


def test_a_predicted_scale_is_the_second_image():
    """``predicted``: the likelihood reads loc from the first d outputs, the raw scale after."""
    shape, d = (1, 8, 8), 64
    lik = get_likelihood("normal", scale="predicted", min_scale=1e-3)
    model = build_model("vae", lik, d, K, 4, data_shape=shape, network="conv")
    out = model.decoder(torch.randn(B, K))
    fn = lik.observation(out, None, torch.rand(B, d)).base_dist
    assert_close(fn.loc, out[:, :d])
    assert_close(fn.scale, 1e-3 + torch.nn.functional.softplus(out[:, d:]))


def _replace_output(module, image):
    """A forward hook making ``module`` return ``image`` (its last layer 'set' to it)."""
    return module.register_forward_hook(lambda mod, args, out: image.expand_as(out).clone())


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 12), (3, 32, 32)], ids=str)
def test_decoder_output_is_in_the_data_order(shape):
    """The last layer producing known images gives them flattened as the data are."""
    d = math.prod(shape)
    enc, dec = conv.build(shape, K, 2, hidden_dim=4)
    images = torch.rand(1, 2 * shape[0], *shape[1:])  # location image, raw-scale image
    if shape == (1, 8, 8):  # a real digit, from the data set's own flat row
        from sklearn.datasets import load_digits

        row = torch.from_numpy(load_digits().data[7]).float() / 16
        images[0, 0] = row.reshape(8, 8)
    _replace_output(dec.body[-1], images)
    out = dec(torch.randn(5, K))
    flat = images.reshape(2, -1)  # (C, H, W) row-major, as the data
    assert_close(out[:, :d], flat[0].expand(5, d))
    assert_close(out[:, d:], flat[1].expand(5, d))
    if shape == (1, 8, 8):
        assert_close(out[0, :d], row)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 12)], ids=str)
def test_encoder_reads_rows_in_the_data_order(shape):
    """The first convolution sees the row as an image of ``shape``: pixel (c, h, w) at c·HW + hW + w."""
    c, h, w = shape
    enc, _ = conv.build(shape, K, 1, hidden_dim=4)
    seen = []
    enc.body[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x = torch.arange(2 * c * h * w, dtype=torch.float32).reshape(2, -1)
    enc(x)
    image = seen[0]
    assert image.shape == (2, c, h, w)
    for ci in range(c):
        for hi in range(h):
            for wi in range(w):
                assert image[1, ci, hi, wi] == x[1, ci * h * w + hi * w + wi]


def test_gradients_reach_every_parameter():
    from vaelik.inference import make_elbo

    torch.manual_seed(0)
    lik = get_likelihood("normal", scale="predicted")
    model = build_model("vae", lik, 3 * 32 * 32, K, 8, data_shape=(3, 32, 32), network="conv")
    x = torch.rand(6, 3 * 32 * 32)
    with model.params():
        loss = make_elbo("trace").differentiable_loss(model.model, model.guide, x)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_bad_inputs_are_one_line():
    lik = get_likelihood("normal", scale="learned")
    for shape, text in [((64,), "no image shape"), ((1, 30, 30), "multiples of 4"),
                        ((2, 4, 4), "at least 8")]:
        with pytest.raises(InputError, match=text):
            build_model("vae", lik, math.prod(shape), K, 4, data_shape=shape, network="conv")
    with pytest.raises(InputError, match="hidden-dim >= 1"):
        build_model("vae", lik, 64, K, 0, data_shape=(8, 8), network="conv")
    with pytest.raises(InputError, match="model 'linear' is built on network 'mlp'"):
        build_model("linear", lik, 64, K, data_shape=(8, 8), network="conv")
    with pytest.raises(InputError, match="unknown network 'resnet'"):
        build_model("vae", lik, 64, K, data_shape=(8, 8), network="resnet")


def test_config_default_and_old_records():
    assert TrainConfig().network == "mlp"
    old = {k: v for k, v in TrainConfig(network="conv").to_dict().items() if k != "network"}
    assert TrainConfig.from_stored(old).network == "mlp"  # written before the option existed
    with pytest.raises(InputError, match="unknown network 'cnn'; choose one of: mlp, conv"):
        TrainConfig(network="cnn").check()


# ------------------------------------------------------------------------------------------
# Through the command line and the run lifecycle

TINY = ["--data", "digits", "--network", "conv", "--hidden-dim", "8", "--latent-dim", "3",
        "--batch-size", "256", "--iwae-samples", "8", "--quiet"]


def test_train_conv_on_digits_writes_a_run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["network"] == "conv"
    assert (run / "status").read_text().strip() == "completed"
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].max() == 2 and metrics["elbo"].notna().all()


def test_conv_on_data_without_an_image_shape_is_one_line(tmp_path, capfd):
    out = tmp_path / "run"
    code = main(["train", "--data", "ppca", "--network", "conv", "--epochs", "1", "--quiet",
                 "--out", str(out)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "network conv needs images" in err[0] and "--network mlp" in err[0]
    assert not out.exists()


def _metrics(run):
    return pd.read_csv(run / "metrics.csv").drop(columns=["seconds"])


def _evaluation(run):
    e = json.loads((run / "eval.json").read_text())
    return {k: v for k, v in e.items() if not k.startswith("seconds")}


@pytest.mark.slow
def test_resume_of_a_conv_run_is_bit_for_bit(tmp_path, monkeypatch):
    """Interrupted right after epoch 1's checkpoint, resumed: the uninterrupted run, exactly."""
    from vaelik.inference import fit, resume
    from vaelik.rundir import read_status

    config = dict(data="digits", network="conv", hidden_dim=8, latent_dim=3, batch_size=256,
                  epochs=3, iwae_samples=5, scale="learned", seed=2, name="run")
    reference, run = tmp_path / "a" / "run", tmp_path / "b" / "run"
    fit(TrainConfig(**config), reference, progress=False)
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            fit(TrainConfig(**config), run, progress=False)
    assert read_status(run) == "interrupted"
    resume(run, progress=False)
    assert read_status(run) == "completed"
    pd.testing.assert_frame_equal(_metrics(run), _metrics(reference), check_exact=True)
    assert _evaluation(run) == _evaluation(reference)
    a = torch.load(reference / "checkpoint.pt", weights_only=True)["params"]
    b = torch.load(run / "checkpoint.pt", weights_only=True)["params"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "encoder$$$body.0.weight" in a  # the conv layers are in the checkpoint


# ------------------------------------------------------------------------------------------
# The benchmark's hand-written conv VAE is the same architecture


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=str)
def test_benchmark_hand_conv_vae_is_the_same_network(shape):
    """With vaelik's weights copied in, the hand-written networks give the same outputs."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "conv_vae.py"
    spec = importlib.util.spec_from_file_location("conv_vae_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    d = math.prod(shape)
    x = bench.make_images(shape, n=6)
    hand = bench.HandConvVAE(x, shape, 6, lr=1e-3, scale_lr=1e-2, init_scale=0.3,
                             min_scale=1e-3)
    enc, dec = conv.build(shape, bench.CONV_LATENT, 1, hidden_dim=bench.CONV_HIDDEN)
    for mine, theirs in ((enc, hand.enc), (dec, hand.dec)):
        pairs = list(zip(mine.parameters(), theirs.parameters(), strict=True))
        with torch.no_grad():
            for a, b in pairs:
                assert a.shape == b.shape
                b.copy_(a)
    loc, scale = enc(x)
    h = hand.enc(x.reshape(-1, *shape))
    assert_close(loc, h[:, : bench.CONV_LATENT])
    assert_close(scale, torch.nn.functional.softplus(h[:, bench.CONV_LATENT :]) + 1e-5)
    z = torch.randn(6, bench.CONV_LATENT)
    assert_close(dec(z), hand.dec(z))
    assert dec(z).shape == (6, d)
