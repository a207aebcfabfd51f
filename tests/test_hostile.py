"""Cases of the hostile re-run of issue 13 (docs/hostile-rerun.md) that found a bug.

Each test failed before its fix: bad input that exited 1 ("internal error"), printed
more than one line, or named the wrong thing.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vaelik.errors import InputError
from vaelik.inference.data.arrays import scale_array
from vaelik.inference.data.files import read_data_file


@pytest.mark.parametrize("member", ["x.npy", "readme.txt"])
def test_npz_member_that_is_not_npy_is_input_error(tmp_path: Path, member: str) -> None:
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, b"hello world")
    with pytest.raises(InputError, match="is not a .npy array"):
        read_data_file(str(path), None, [])


def test_empty_npy_is_not_called_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "empty.npy"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"the \.npy file is damaged") as info:
        read_data_file(str(path), None, [])
    assert ".npz" not in str(info.value)


def test_float16_data_scale_without_a_warning() -> None:
    x = np.full((4, 3), 6e4, dtype=np.float16)  # near float16's maximum, well inside float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values, _, levels = scale_array(x, "f16")
    assert values.dtype == np.float32 and levels is None
    np.testing.assert_allclose(values, 6e4, rtol=1e-3)


def test_grid_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    from vaelik.sweep import load_grid

    fifo = tmp_path / "grid.toml"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    with pytest.raises(InputError, match="not a regular file"):
        load_grid(fifo)


@pytest.mark.parametrize("inside", [False, True])
def test_sweep_folder_in_a_run_directory_is_refused_before_writing(tmp_path: Path,
                                                                    inside: bool) -> None:
    from vaelik.sweep import run_sweep

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "status").write_text("completed\n")
    before = sorted(p.name for p in run.iterdir())
    grid = tmp_path / "g.toml"
    grid.write_text('data = "ppca"\nepochs = 1\n[grid]\nseed = [0]\n')
    out = run / "sw" if inside else run
    with pytest.raises(InputError, match="run directory"):
        run_sweep(grid, out, jobs=1)
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("error", [
    MemoryError("Unable to allocate 29.8 GiB for an array with shape (1000000000, 4)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory"),
])
def test_out_of_memory_is_exit_2_with_one_line(monkeypatch, capsys, error: Exception) -> None:
    from vaelik import cli

    def boom(args):
        raise error

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["evaluate"].set_defaults(func=boom)
    assert cli.main(["evaluate", "somewhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaelik: error: out of memory")


def test_other_runtime_error_is_still_an_internal_error(monkeypatch, capsys) -> None:
    from vaelik import cli

    def boom(args):
        raise RuntimeError("something else")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["evaluate"].set_defaults(func=boom)
    monkeypatch.delenv("VAELIK_DEBUG", raising=False)
    assert cli.main(["evaluate", "somewhere"]) == 1
    assert "internal error: RuntimeError: something else" in capsys.readouterr().err


def test_huge_integers_are_one_input_error():
    """n = 10**30 failed inside numpy (exit 1); lr = 10**400 raised OverflowError in check()."""
    import pytest as _pytest

    from vaelik.config import TrainConfig
    from vaelik.errors import InputError
    from vaelik.inference import load_data

    with _pytest.raises(InputError, match="data option n of 'ppca' must be an integer from 2 to"):
        load_data("ppca", options={"n": 10**30})
    with _pytest.raises(InputError, match="lr must be a positive finite number"):
        TrainConfig(lr=10**400).check()


def test_evaluate_refuses_a_run_without_a_status_and_shortens_a_long_one(tmp_path, capsys):
    """A run with no status file was evaluated (exit 0); a status of bytes was quoted whole."""
    from vaelik.cli import main
    from vaelik.config import TrainConfig
    from vaelik.inference import fit

    run = tmp_path / "run"
    fit(TrainConfig(data="ppca", data_options={"n": 200}, epochs=1, hidden_dim=8, latent_dim=2,
                    iwae_samples=2), run, progress=False)
    (run / "status").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no status file" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    (run / "status").write_text("x" * 4000 + "\n")
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x" * 78 not in err and "x" * 77 + "..." in err
