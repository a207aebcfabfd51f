"""A fit that stops like a killed process right after a given epoch's checkpoint (resume tests)."""

from __future__ import annotations

import pytest


def interrupt_after(patch: pytest.MonkeyPatch, epoch: int) -> None:
    """Patch ``save_checkpoint`` so that the fit raises ``KeyboardInterrupt`` once ``epoch`` is saved.

    ``patch`` is the ``monkeypatch`` fixture or one of its ``context()`` objects (then the
    patch ends with the ``with`` block, and a resume in the same test runs unpatched).
    """
    import vaelik.inference.run as run_module

    real = run_module.save_checkpoint

    def save_then_die(path, state):
        real(path, state)
        if state["epoch"] == epoch:
            raise KeyboardInterrupt

    patch.setattr(run_module, "save_checkpoint", save_then_die)
