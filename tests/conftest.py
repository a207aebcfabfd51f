"""Shared fixtures of the core tests: a clean Pyro state for every test."""

from __future__ import annotations

import pyro
import pytest


@pytest.fixture(autouse=True)
def clean_pyro():
    """Start every test with an empty global parameter store and a fixed seed.

    Models keep their own parameters (``Model.params()``); tests that build bare
    likelihoods use the global store, so it is cleared on both sides.
    """
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
