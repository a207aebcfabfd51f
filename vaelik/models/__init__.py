"""What is fitted: observation likelihoods, networks, and the Pyro model/guide pair."""

from vaelik.models.likelihoods import (
    SCALE_MODES,
    Bernoulli,
    ContinuousBernoulli,
    Laplace,
    Likelihood,
    LocationScaleLikelihood,
    Normal,
    bce_loss,
    get_likelihood,
    likelihood_class,
    likelihood_names,
    mae_loss,
    mse_loss,
)
from vaelik.models.networks import NETWORKS, Decoder, Encoder
from vaelik.models.vae import DATA_PLATE, GUIDES, MODELS, GuideKind, Model, ModelSpec, build_model

__all__ = [
    "SCALE_MODES",
    "Likelihood",
    "LocationScaleLikelihood",
    "Normal",
    "Laplace",
    "Bernoulli",
    "ContinuousBernoulli",
    "get_likelihood",
    "likelihood_class",
    "likelihood_names",
    "mse_loss",
    "mae_loss",
    "bce_loss",
    "NETWORKS",
    "Encoder",
    "Decoder",
    "Model",
    "ModelSpec",
    "GuideKind",
    "MODELS",
    "GUIDES",
    "DATA_PLATE",
    "build_model",
]
