"""vaelik: what the choice of observation likelihood does to an autoencoder, measured with Pyro."""

__version__ = "0.1.0"
