"""The likelihood's scale parameters train at their own rate (issue 11, "scales that keep up").

The likelihood declares its scale parameters (``Likelihood.scale_params()``);
the optimiser puts them in a param group at ``scale_lr_factor * lr``; a
checkpoint from before the split is refused with one line; with the default
flags a learned σ on ``ppca`` reaches the planted 0.1.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vaelik.config import FIELDS
from vaelik.errors import InputError
from vaelik.inference import TrainConfig
from vaelik.inference.checkpoint import make_checkpoint, restore
from vaelik.inference.optimizers import SCALE_GROUP, param_groups
from vaelik.inference.run import build
from vaelik.inference.svi import Trainer
from vaelik.models import get_likelihood

ROOT = Path(__file__).resolve().parent.parent


def _trainer(**fields) -> tuple[Trainer, TrainConfig]:
    config = TrainConfig(data="ppca", hidden_dim=8, latent_dim=2, batch_size=32,
                         data_options={"n": 200}, **fields)
    data, model = build(config)
    with model.params():
        return Trainer(config, model, data.train), config


@pytest.mark.parametrize(("likelihood", "scale", "declared"), [
    ("normal", "learned", ("scale",)),
    ("laplace", "per_dim", ("scale",)),
    ("normal", "bayesian", ("scale_q_loc", "scale_q_sd")),
    ("normal", "0.5", ()),
    ("normal", "optimal", ()),
    ("normal", "predicted", ()),
])
def test_likelihood_declares_its_scale_params(likelihood, scale, declared):
    assert get_likelihood(likelihood, scale=scale).scale_params() == declared


@pytest.mark.parametrize(("likelihood", "scale", "factor"), [
    ("normal", "learned", None), ("laplace", "per_dim", 7.0), ("normal", "bayesian", 3.0),
    ("normal", 0.5, 5.0),
])
def test_scale_params_get_their_own_group_at_the_stated_rate(likelihood, scale, factor):
    fields = {} if factor is None else {"scale_lr_factor": factor}
    trainer, config = _trainer(likelihood=likelihood, scale=scale, lr=2e-3, **fields)
    factor = FIELDS["scale_lr_factor"].default if factor is None else factor
    declared = [n for n in trainer.names if n in get_likelihood(likelihood, scale=scale).scale_params()]
    groups = {g["group"]: g for g in trainer.optimizer.param_groups}
    assert groups["rest"]["lr"] == pytest.approx(2e-3)
    assert not set(groups["rest"]["names"]) & set(declared)
    if declared:
        assert groups[SCALE_GROUP]["names"] == declared
        assert groups[SCALE_GROUP]["lr"] == pytest.approx(2e-3 * factor)
    else:
        assert SCALE_GROUP not in groups  # a fixed scale: one group, as before the split
    # every parameter is in exactly one group, as the tensor the trainer steps
    stepped = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert sorted(stepped) == sorted(id(p) for p in trainer.params)
    named = [n for g in trainer.optimizer.param_groups for n in g["names"]]
    assert sorted(named) == trainer.names


def test_param_groups_ignores_names_the_model_lacks():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros((), requires_grad=True)
    groups = param_groups(["net", "scale"], [a, b], ("scale", "scale_q_sd"), lr=1e-3, scale_lr=0.1)
    assert [(g["group"], g["names"], g["lr"]) for g in groups] == [
        ("rest", ["net"], 1e-3), (SCALE_GROUP, ["scale"], 0.1)]
    assert len(param_groups(["net"], [a], ("scale",), lr=1e-3, scale_lr=0.1)) == 1


def test_flag_is_declared_with_its_meaning():
    spec = FIELDS["scale_lr_factor"]
    assert spec.flag == "--scale-lr-factor" and "multiple of --lr" in spec.help
    with pytest.raises(InputError, match="scale-lr-factor must be a positive"):
        TrainConfig(scale_lr_factor=0.0).check()


def test_checkpoint_from_before_the_scale_group_is_refused_in_one_line():
    trainer, config = _trainer(likelihood="normal", scale="learned")
    gen = torch.Generator().manual_seed(0)
    old = torch.optim.Adam(trainer.params, lr=config.lr)  # one group over everything, as before
    checkpoint = make_checkpoint(config, trainer.names, trainer.params, old, gen, 1, [])
    with pytest.raises(InputError) as info:
        restore(checkpoint, trainer.names, trainer.params, trainer.optimizer, gen)
    message = str(info.value)
    assert "\n" not in message and "--scale-lr-factor" in message and "--overwrite" in message
    # the trainer's own state goes back in
    checkpoint = make_checkpoint(config, trainer.names, trainer.params, trainer.optimizer, gen, 1, [])
    restore(checkpoint, trainer.names, trainer.params, trainer.optimizer, gen)


def test_a_run_written_before_the_factor_resumes_with_one_group(tmp_path):
    """A stored configuration without scale_lr_factor means factor 1: one group, as it was written."""
    import json

    from vaelik.inference import resume
    from vaelik.inference.checkpoint import save_checkpoint

    config = TrainConfig(data="ppca", data_options={"n": 300}, scale="learned", epochs=2,
                         hidden_dim=8, iwae_samples=5, batch_size=64, scale_lr_factor=1.0)
    data, model = build(config)
    with model.params():
        trainer = Trainer(config, model, data.train)
        assert len(trainer.optimizer.param_groups) == 1  # factor 1: the one group of before
        state = make_checkpoint(config, trainer.names, trainer.params, trainer.optimizer,
                                torch.Generator().manual_seed(0), 1, [])
    record = {k: v for k, v in config.to_dict().items() if k != "scale_lr_factor"}
    state["config"] = json.dumps(record, sort_keys=True)
    (tmp_path / "config.json").write_text(json.dumps(record))
    (tmp_path / "status").write_text("interrupted\n")
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    result = resume(tmp_path, progress=False)
    assert result.config.scale_lr_factor == 1.0 and result.status == "completed"


def test_checkpoint_of_a_fixed_scale_from_before_the_split_still_resumes():
    trainer, config = _trainer(likelihood="normal", scale=0.5)
    gen = torch.Generator().manual_seed(0)
    old = torch.optim.Adam(trainer.params, lr=config.lr)
    restore(make_checkpoint(config, trainer.names, trainer.params, old, gen, 1, []),
            trainer.names, trainer.params, trainer.optimizer, gen)


def test_benchmark_script_runs(capsys):
    spec = importlib.util.spec_from_file_location("scale_lr_bench", ROOT / "benchmarks" / "scale_lr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--only", "laplace-noise"]) == 0
    out = capsys.readouterr().out
    assert "| laplace-noise (b=0.1) | ×1 |" in out and "| optimal |" in out
