"""The configuration declared once (vaelik/config.py): flags, grid keys, checks, registries."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vaelik.cli import _config_from_args, build_parser, main
from vaelik.config import FIELDS, GRID_KEYS, RUN_NAME_PREFIXES, TrainConfig
from vaelik.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
INT_FIELDS = ("latent_dim", "hidden_dim", "epochs", "batch_size", "seed", "iwae_samples")
NUMBER_FIELDS = ("lr", "min_scale", "test_fraction", "init_scale")


def _train_actions() -> dict[str, object]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices["train"]._actions}


def _help(name: str) -> str:
    return _train_actions()[name].help


# -- every field is declared completely --------------------------------------------------


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_field_has_help_a_flag_a_grid_key_and_a_check_or_a_reason(name):
    spec = FIELDS[name]
    assert spec.help.strip(), f"{name} has no help"
    actions = _train_actions()
    if spec.no_flag:
        assert name not in actions
    else:
        assert name in actions and spec.flag in actions[name].option_strings
        assert actions[name].help
    assert (name in GRID_KEYS) != bool(spec.no_grid), f"{name}: a grid key or a reason, not both"
    checked = spec.check is not None or (spec.choices is not None and not spec.open_choices)
    assert checked or spec.checked_by, f"{name}: no check and no word on where it is checked"


def test_only_the_name_is_not_a_grid_key_and_every_field_has_a_flag():
    assert [n for n in FIELDS if n not in GRID_KEYS] == ["name"]
    assert not [n for n, s in FIELDS.items() if s.no_flag]


def test_flag_defaults_are_the_dataclass_defaults():
    config = _config_from_args(build_parser().parse_args(["train"]))
    assert config == TrainConfig()


def test_run_name_prefixes_and_report_columns_come_from_the_declaration():
    from vaelik.analysis.runs import CONFIG_COLUMNS, _config_row

    assert RUN_NAME_PREFIXES["latent_dim"] == "z" and RUN_NAME_PREFIXES["seed"] == "s"
    assert "likelihood" not in RUN_NAME_PREFIXES  # shown as its value only
    assert set(CONFIG_COLUMNS) == {"likelihood", "scale", "scale_mode", "model", "latent_dim",
                                   "seed", "data"}
    row = _config_row({**TrainConfig(likelihood_options={"df": 4}).to_dict(), "scale": 0.1},
                      Path("r"))
    assert row["likelihood_options"] == "df=4" and row["scale"] == "0.1"
    assert row["scale_mode"] == "fixed" and row["elbo_estimator"] == "jit-meanfield"
    old = _config_row({"likelihood": "normal", "seed": 0}, Path("old"))  # written before
    assert old["likelihood_options"] is None and old["model"] == "unknown"


# -- registries: their keys are the choices -----------------------------------------------


def _registries():
    from vaelik.inference.data import BUILTIN_DATA
    from vaelik.inference.elbo import ELBOS
    from vaelik.inference.optimizers import OPTIMIZERS
    from vaelik.models import MODELS, SCALE_MODES, likelihood_names

    return {"elbo": list(ELBOS), "optimizer": list(OPTIMIZERS), "model": list(MODELS),
            "likelihood": likelihood_names(), "data": list(BUILTIN_DATA),
            "scale": list(SCALE_MODES)}


@pytest.mark.parametrize("name", ["elbo", "optimizer", "model", "likelihood", "data", "scale"])
def test_registry_keys_are_the_choices_in_help_and_check(name):
    keys = _registries()[name]
    spec = FIELDS[name]
    assert spec.choices.names() == keys
    assert ", ".join(keys) in _help(name)
    if not spec.open_choices:
        with pytest.raises(InputError) as e:
            TrainConfig(**{name: "no-such-thing"}).check()
        # a likelihood may also be named as module:Class; its message says so
        assert str(e.value).startswith(
            f"unknown {name} 'no-such-thing'; choose one of: {', '.join(keys)}")


def test_make_elbo_and_make_optimizer_use_their_registries():
    import torch

    from vaelik.inference.elbo import ELBOS, make_elbo
    from vaelik.inference.optimizers import OPTIMIZERS, make_optimizer

    assert type(make_elbo("trace")).__name__ == "Trace_ELBO"
    with pytest.raises(InputError, match=f"choose one of: {', '.join(ELBOS)}$"):
        make_elbo("iwae")
    param = torch.zeros(2, requires_grad=True)
    assert isinstance(make_optimizer("adam", [param], lr=0.1), torch.optim.Adam)
    with pytest.raises(InputError, match=f"choose one of: {', '.join(OPTIMIZERS)}$"):
        make_optimizer("sgd", [param], lr=0.1)


# -- checks: one line naming the field, the value and what is accepted --------------------


def _message(**values) -> str:
    with pytest.raises(InputError) as e:
        TrainConfig(**values).check()
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("bad", [True, 2.0, "3", -1])
def test_integer_fields_refuse_bools_floats_strings_and_negatives(name, bad):
    message = _message(**{name: bad})
    assert message.startswith(FIELDS[name].label + " must be an integer ")
    assert message.endswith(f"got {bad!r}")


@pytest.mark.parametrize("bad", [2**32, 2**40, -1])
def test_seed_must_fit_what_numpy_and_torch_accept(bad):
    assert _message(seed=bad) == f"seed must be an integer from 0 to {2**32 - 1}, got {bad}"
    assert TrainConfig(seed=2**32 - 1).check().seed == 2**32 - 1


@pytest.mark.parametrize("name", NUMBER_FIELDS)
@pytest.mark.parametrize("bad", [True, "0.01", -0.5, float("nan")])
def test_number_fields_refuse_bools_strings_and_bad_numbers(name, bad):
    message = _message(**{name: bad})
    assert message.startswith(FIELDS[name].label + " must be ") and repr(bad) in message


def test_lr_as_a_string_is_refused_with_one_line():
    assert _message(lr="0.01") == "lr must be a positive number, got '0.01'"


def test_other_checks():
    assert _message(device="tpu") == "device must be 'cpu' or 'cuda[:N]', got 'tpu'"
    assert "lik-opt" in _message(likelihood_options=[("df", 4)])
    assert _message(likelihood_options={"min_scale": 0.1}).endswith("use --min-scale instead")
    assert TrainConfig(likelihood="Normal").check().likelihood == "normal"


# -- likelihood options ---------------------------------------------------------------------


def test_lik_opt_reaches_the_likelihood(monkeypatch):
    from vaelik.models import get_likelihood
    from vaelik.models.likelihoods.base import REGISTRY

    # the example registers a Student-t family; keep it out of the other tests' registry
    before = dict(REGISTRY)
    path = ROOT / "examples" / "student_t.py"
    spec = importlib.util.spec_from_file_location("student_t_example", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    args = build_parser().parse_args(["train", "--likelihood", "student-t", "--lik-opt", "df=4",
                                      "--scale", "learned"])
    config = _config_from_args(args).check()
    assert config.likelihood_options == {"df": 4}
    assert config.likelihood_kwargs()["df"] == 4
    assert get_likelihood(config.likelihood, **config.likelihood_kwargs()).df == 4.0
    REGISTRY.clear()
    REGISTRY.update(before)


def test_old_config_json_without_likelihood_options_still_loads():
    record = TrainConfig().to_dict()
    del record["likelihood_options"]
    config = TrainConfig.from_dict(json.loads(json.dumps({**record, "versions": {}})))
    assert config.likelihood_options == {} and config.likelihood_kwargs() == {"min_scale": 1e-3}


def test_likelihood_options_are_a_grid_key_named_in_run_names():
    from vaelik.sweep.grid import expand, grid_from_dict

    expansion = expand(grid_from_dict({"likelihood": "laplace",
                                       "grid": {"likelihood_options": [{"b0": 1}, {"b0": 2}]}}))
    assert [r.name for r in expansion.runs] == ["b01-s0", "b02-s0"]
    assert expansion.runs[1].train_config().likelihood_options == {"b0": 2}


def test_resume_refuses_lik_opt(capsys):
    assert main(["train", "--resume", "somewhere", "--lik-opt", "df=4", "--data-opt",
                 "n=10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "drop --lik-opt, --data-opt" in err[0]


def test_scale_bound_messages_name_the_flags_that_were_set():
    # the user set only --min-scale: the message must not blame init_scale's default
    huge = _message(min_scale=1e308)
    assert huge.startswith("--min-scale 1e+308 must be below 1") and "init_scale (" not in huge
    both = _message(min_scale=0.5, init_scale=0.1)
    assert both.startswith("--init-scale 0.1 must be larger than --min-scale 0.5")
    # a fixed scale has no initial value: a large floor is no error there
    TrainConfig(min_scale=2.0, scale=0.1).check()
    TrainConfig(min_scale=2.0, init_scale=3.0).check()


def test_iwae_samples_has_an_upper_bound():
    """K = 10**12 was accepted and the final evaluation never finished (hostile re-run)."""
    from vaelik.config import IWAE_SAMPLES_BELOW

    TrainConfig(iwae_samples=IWAE_SAMPLES_BELOW - 1).check()
    with pytest.raises(InputError, match="iwae-samples must be an integer from 1 to 1000000"):
        TrainConfig(iwae_samples=10**12).check()
