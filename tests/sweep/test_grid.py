"""Sweep grids: expansion and run names, the dry run, bad grid files (exit 2, one line)."""

from __future__ import annotations

import pytest
from sweep_fixtures import BRIEF_GRID
from sweep_fixtures import write_grid as _write

from vaelik.cli import main
from vaelik.sweep import GRID_KEYS, Grid, expand, grid_from_dict, grid_to_toml, load_grid

# -- expansion and names ------------------------------------------------------------------


def test_brief_grid_expands_to_eight_named_runs(tmp_path):
    expansion = expand(load_grid(_write(tmp_path, BRIEF_GRID)))
    assert len(expansion) == 8
    assert {r.name for r in expansion.runs} == {
        f"{lik}-{scale}-s{seed}" for lik in ("normal", "laplace")
        for scale in ("learned", "0.1") for seed in (0, 1)
    }
    run = next(r for r in expansion.runs if r.name == "laplace-0.1-s1")
    assert run.config["scale"] == 0.1 and run.config["epochs"] == 20 and run.config["seed"] == 1
    assert run.train_config().check().name == "laplace-0.1-s1"


def test_family_without_scale_ignores_the_scale_axis(tmp_path):
    text = BRIEF_GRID.replace('["normal", "laplace"]', '["normal", "bernoulli", "cbernoulli"]')
    expansion = expand(load_grid(_write(tmp_path, text)))
    names = [r.name for r in expansion.runs]
    assert len(names) == 4 + 2 + 2  # normal 2 scales x 2 seeds; each scale-less family 2 seeds
    assert "bernoulli-s0" in names and "cbernoulli-s1" in names
    assert all(r.config["scale"] is None for r in expansion.runs if "bernoulli" in r.name)
    assert any("no scale" in n and "4 duplicate" in n for n in expansion.notes)


def test_dry_run_prints_grid_size_and_note(tmp_path, capsys):
    text = BRIEF_GRID.replace('["normal", "laplace"]', '["normal", "bernoulli"]')
    assert main(["sweep", str(_write(tmp_path, text)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "normal-learned-s0" in out and "bernoulli-s1" in out
    assert "6 configurations" in out and "scale axis is ignored" in out


def test_names_are_stable_and_independent_of_key_order(tmp_path):
    reordered = ('epochs = 20\ndata = "digits"\n[grid]\nseed = [0, 1]\nscale = ["learned", 0.1]\n'
                 'likelihood = ["normal", "laplace"]\n')
    a = expand(load_grid(_write(tmp_path, BRIEF_GRID, "a.toml")))
    b = expand(load_grid(_write(tmp_path, reordered, "b.toml")))
    assert sorted(r.name for r in a.runs) == sorted(r.name for r in b.runs)
    assert [r.name for r in a.runs] == [r.name for r in expand(load_grid(tmp_path / "a.toml")).runs]


def test_extra_configurations_and_varying_keys_in_names(tmp_path):
    text = BRIEF_GRID + ('[[extra]]\nlikelihood = "normal"\nscale = "learned"\nmodel = "linear"\n'
                         'latent_dim = 4\nseed = 0\n')
    names = [r.name for r in expand(load_grid(_write(tmp_path, text))).runs]
    assert len(names) == 9
    # model and latent_dim vary only through the extra: only its name shows them
    assert "normal-learned-s0" in names and "normal-learned-linear-z4-s0" in names
    grid_only = [r.name for r in expand(load_grid(_write(tmp_path, BRIEF_GRID, "g.toml"))).runs]
    assert set(grid_only) <= set(names)  # adding an extra renames nothing


def test_names_are_path_safe_and_unique():
    grid = Grid(base={"epochs": 1},
                axes={"data": ["../my data/x.npz", "/other/x.npz", "y z.npy"], "seed": [0]})
    runs = expand(grid).runs
    names = [r.name for r in runs]
    assert len(set(names)) == 3
    for name in names:
        assert name and not name.startswith(".") and ".." not in name and "/" not in name
        assert all(c.isalnum() or c in "._-" for c in name) and len(name) <= 80
    # the two x.npz files give the same readable stem: a hash suffix keeps them apart
    assert sum(n.startswith("x-s0-") for n in names) == 2


def test_grid_to_toml_round_trips():
    grid = Grid(base={"data": "digits", "epochs": 3, "data_options": {"sigma": 0.1}},
                axes={"scale": [1.0, "learned"], "seed": [0, 1]},
                extra=[{"likelihood": "bernoulli", "seed": 0}])
    import tomllib

    again = grid_from_dict(tomllib.loads(grid_to_toml(grid)))
    assert [r.name for r in expand(again).runs] == [r.name for r in expand(grid).runs]


# -- bad grid files: exit 2, one line ------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (None, "not found"),
    ("data = \n", "not valid TOML"),
    (BRIEF_GRID + "colour = 3\n", "unknown key 'colour'"),
    ('data = "digits"\n[grid]\nlatent_size = [2, 4]\n', "unknown key 'latent_size'"),
    ('data = "digits"\n', "nothing to run"),
    ('data = "digits"\n[grid]\nseed = []\n', "empty list"),
])
def test_bad_grid_file_is_one_line_and_exit_2(tmp_path, capsys, text, expected):
    path = tmp_path / "grid.toml"
    if text is not None:
        path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    if "unknown key" in expected:
        assert all(k in err for k in GRID_KEYS)
    assert not (tmp_path / "out").exists()
