"""Exceptions that carry a message meant for the user."""


class VaelikError(Exception):
    """Base class of errors vaelik reports to the user as one line."""


class InputError(VaelikError, ValueError):
    """Bad user input: data, configuration, file or argument.

    The CLI prints ``error: <message>`` on one line and exits with code 2.
    """


class DivergenceError(VaelikError, FloatingPointError):
    """A fit produced a non-finite ELBO."""
