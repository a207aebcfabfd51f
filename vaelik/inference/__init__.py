"""How models are fitted and scored: data, the SVI loop, evaluation, run directories."""

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
from vaelik.inference.svi import METRIC_COLUMNS, FitResult, build, fit, resume
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
    "FitResult",
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
