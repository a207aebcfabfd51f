"""What is fitted: observation likelihoods, networks, and Pyro model/guide pairs."""

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
from vaelik.models.networks import Decoder, Encoder
from vaelik.models.vae import AE, MODELS, VAE, LinearVAE, build_model

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
    "Encoder",
    "Decoder",
    "VAE",
    "AE",
    "LinearVAE",
    "MODELS",
    "build_model",
]
