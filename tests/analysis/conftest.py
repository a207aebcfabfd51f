"""Fixtures for the analysis tests: synthetic run directories with planted answers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from analysis_fixtures import build_suite  # noqa: E402


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    """(root, planted) for the full synthetic sweep, built once per session."""
    root = tmp_path_factory.mktemp("runs")
    planted = build_suite(root)
    return root, planted
