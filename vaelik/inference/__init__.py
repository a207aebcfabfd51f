"""How models are fitted and scored: data, the SVI loop, a fit's run lifecycle, evaluation.

Sweeps over many configurations are :mod:`vaelik.sweep`, a layer above this one.
"""

from vaelik.inference.config import ELBO_NAMES, OPTIMIZERS, TrainConfig
from vaelik.inference.data import BUILTIN_DATA, Dataset, load_data, read_idx
from vaelik.inference.elbo import make_elbo
from vaelik.inference.evaluate import (
    active_units,
    evaluate_model,
    iwae_log_px,
    mutual_information,
    ppca_check,
)
from vaelik.inference.run import (
    METRIC_COLUMNS,
    FitResult,
    build,
    evaluate_run,
    fit,
    load_fitted,
    resume,
)
from vaelik.inference.svi import Trainer, train_epochs
from vaelik.inference.terms import Terms, elbo_terms, split_metrics

__all__ = [
    "TrainConfig",
    "ELBO_NAMES",
    "OPTIMIZERS",
    "Dataset",
    "BUILTIN_DATA",
    "load_data",
    "read_idx",
    "make_elbo",
    "fit",
    "resume",
    "build",
    "load_fitted",
    "evaluate_run",
    "FitResult",
    "Trainer",
    "train_epochs",
    "METRIC_COLUMNS",
    "evaluate_model",
    "iwae_log_px",
    "mutual_information",
    "active_units",
    "ppca_check",
    "Terms",
    "elbo_terms",
    "split_metrics",
]
