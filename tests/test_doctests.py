"""Docstring examples are tests: every ``>>>`` example in the package runs and must print what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import vaelik

MODULES = sorted(m.name for m in pkgutil.walk_packages(vaelik.__path__, "vaelik."))


def test_every_module_is_listed():
    assert "vaelik.models.likelihoods.normal" in MODULES and "vaelik.rundir.io" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, capsys):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True)
    out = capsys.readouterr().out
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}:\n{out}"
