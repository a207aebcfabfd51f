"""The training configuration (declared in :mod:`vaelik.config`) and what fitting records beside it.

:class:`~vaelik.config.TrainConfig` lives in the torch-free :mod:`vaelik.config`
so that the analysis layer can read its declaration; it is re-exported here
with the registries' names.
"""

from __future__ import annotations

import platform

from vaelik.config import TrainConfig
from vaelik.inference.elbo import ELBOS
from vaelik.inference.optimizers import OPTIMIZERS

__all__ = ["ELBOS", "ELBO_NAMES", "OPTIMIZERS", "TrainConfig", "versions"]

#: the ``--elbo`` names (the keys of :data:`~vaelik.inference.elbo.ELBOS`)
ELBO_NAMES = tuple(ELBOS)


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that change the numbers."""
    import numpy
    import pyro
    import torch

    import vaelik

    return {
        "vaelik": vaelik.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro-ppl": pyro.__version__,
        "numpy": numpy.__version__,
    }
