"""Shared fixtures of the core tests: a clean Pyro state for every test."""

from __future__ import annotations

import os

# Tests that kill or interrupt a run after a given epoch need a checkpoint after every epoch
# (runs default to one every CHECKPOINT_SECONDS); set before vaelik is imported, and inherited
# by the subprocesses the tests start.
os.environ.setdefault("VAELIK_CHECKPOINT_SECONDS", "0")

import pyro  # noqa: E402
import pytest  # noqa: E402


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
