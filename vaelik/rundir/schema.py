"""What a run directory holds: file names, table columns, status values, ``eval.json`` keys.

The one spelling of the run-directory contract (``docs/run-directory.md``).
Inference writes through these names, the analysis layer and the test fixtures
read (and write) through them; no other module spells a file name, a column or
a status value. Torch-free: standard library only.
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[...]
# from evaluated annotations.
from typing import Any, NotRequired, TypedDict

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "EVAL_FILE",
    "EVAL_KEYS",
    "EVALUATION_FILES",
    "IMAGES_FILE",
    "IMAGE_ARRAYS",
    "METRICS_COLUMNS",
    "METRICS_FILE",
    "METRICS_REQUIRED",
    "PER_DIM_COLUMNS",
    "PER_DIM_FILE",
    "PER_DIM_TRAIN_COLUMNS",
    "POINTWISE_COLUMNS",
    "POINTWISE_FILE",
    "POINTWISE_REQUIRED",
    "POSTERIOR_FILE",
    "RUN_FILES",
    "SPLITS",
    "STAGING_DIR",
    "STATUS_FILE",
    "EvalRecord",
    "PpcaRecord",
    "Status",
]

# ---------------------------------------------------------------- file names

#: the fully resolved configuration, package versions and seed
CONFIG_FILE = "config.json"
#: one row per epoch and split, columns :data:`METRICS_COLUMNS`
METRICS_FILE = "metrics.csv"
#: the final test metrics, keys of :class:`EvalRecord`
EVAL_FILE = "eval.json"
#: tensors only (``torch.load(path, weights_only=True)``), written by ``vaelik.inference.checkpoint``
CHECKPOINT_FILE = "checkpoint.pt"
#: one row per test example, columns :data:`POINTWISE_COLUMNS`
POINTWISE_FILE = "pointwise.csv"
#: one row per data dimension, columns :data:`PER_DIM_COLUMNS`
PER_DIM_FILE = "per_dim.csv"
#: arrays :data:`IMAGE_ARRAYS` for image figures (``np.load(..., allow_pickle=False)``)
IMAGES_FILE = "images.npz"
#: ArviZ data (netCDF), see :mod:`vaelik.rundir.posterior`
POSTERIOR_FILE = "posterior.nc"
#: one line, a :class:`Status` value; written first (``running``) and last
STATUS_FILE = "status"

#: files a run writes besides ``config.json``; ``prepare_run_dir(overwrite=True)``
#: removes these (and only these) so that no result of an old run outlives it
RUN_FILES = (STATUS_FILE, EVAL_FILE, CHECKPOINT_FILE, METRICS_FILE, POINTWISE_FILE,
             PER_DIM_FILE, IMAGES_FILE, POSTERIOR_FILE)
#: the files one evaluation writes, replaced all together (:mod:`vaelik.rundir.staging`);
#: ``eval.json`` is swapped in last
EVALUATION_FILES = (POINTWISE_FILE, PER_DIM_FILE, IMAGES_FILE, POSTERIOR_FILE, EVAL_FILE)
#: hidden folder inside a run directory where an evaluation stages its files
STAGING_DIR = ".staging"

# ---------------------------------------------------------------- table columns

#: ``metrics.csv``: ``elbo, recon, kl`` per data point in nats; ``mse, mae, bce`` per
#: element; ``scale`` the global scale or the RMS of per-dimension scales (empty
#: without a scale); ``seconds`` the epoch's training wall time
METRICS_COLUMNS = ("epoch", "split", "elbo", "recon", "kl", "mse", "mae", "bce", "scale", "seconds")
#: columns a reader cannot do without (the others are filled with NaN when absent)
METRICS_REQUIRED = ("epoch", "split")
#: values of the ``split`` column: ``val`` is the validation split carved from the
#: training data (absent with ``val_fraction = 0``)
SPLITS = ("train", "val", "test")
#: ``pointwise.csv``: one row per test example, nats per example; ``loss_sum`` is
#: the family's equivalent loss summed over the d dimensions, ``sse, sae, bce_sum``
#: the three losses summed over the d dimensions, for every family
POINTWISE_COLUMNS = ("index", "elbo", "recon", "kl", "log_px", "loss_sum", "sse", "sae", "bce_sum")
#: columns a reader of ``pointwise.csv`` cannot do without
POINTWISE_REQUIRED = ("recon", "loss_sum")
#: ``per_dim.csv``: one row per data dimension
PER_DIM_COLUMNS = ("dim", "scale", "mse", "mae")
#: written since per_dim.csv compares scales with the training split's errors (C3); absent in older runs
PER_DIM_TRAIN_COLUMNS = ("mse_train", "mae_train")
#: arrays of ``images.npz``: ``originals`` (n, d), ``reconstructions`` (n, d),
#: ``prior_samples`` (m, d), ``image_shape`` (3,) ``(C, H, W)``, (2,) ``(H, W)`` in runs
#: written before images kept their channels, or (0,) when the data are not images
IMAGE_ARRAYS = ("originals", "reconstructions", "prior_samples", "image_shape")

#: eval.json ``mutual_info`` is estimated on (at most) this many test points, so it is at
#: most log min(n_test, MI_MAX_POINTS) nats
MI_MAX_POINTS = 2000


# ---------------------------------------------------------------- status


class Status:
    r"""The values of the one-line ``status`` file, and tests on them.

    A run writes ``running`` when it starts and, last of all, ``completed``,
    ``interrupted`` (Ctrl-C; resumable) or ``failed: <reason>``. A run is
    complete only when its status reads ``completed``.

    Examples
    --------
    >>> Status.failed("loss was NaN at epoch 3")
    'failed: loss was NaN at epoch 3'
    >>> Status.is_completed("completed\n"), Status.is_completed(None)
    (True, False)
    >>> Status.word("failed: loss was NaN")
    'failed'
    """

    COMPLETED = "completed"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    #: not written by any run: what a reader shows for a folder without a status file
    MISSING = "missing"
    #: not written by any run: what a reader shows for a run whose files it cannot read
    UNREADABLE = "unreadable"

    @staticmethod
    def failed(reason: str) -> str:
        """The status of a failed run: ``failed: <reason>`` on one line."""
        return f"{Status.FAILED}: {' '.join(str(reason).split())}"

    @staticmethod
    def unreadable(reason: str) -> str:
        """What a reader shows for a run it cannot read: ``unreadable: <reason>`` on one line."""
        return f"{Status.UNREADABLE}: {' '.join(str(reason).split())}"

    @staticmethod
    def word(text: str | None) -> str:
        """The first word of a status (``failed`` for ``failed: ...``); ``missing`` for None."""
        if text is None or not str(text).strip():
            return Status.MISSING
        return str(text).strip().split(":", 1)[0].strip()

    @staticmethod
    def is_completed(text: str | None) -> bool:
        """True when ``text`` is the status of a completed run."""
        return text is not None and str(text).strip() == Status.COMPLETED

    @staticmethod
    def is_failed(text: str | None) -> bool:
        """True when ``text`` is ``failed`` or ``failed: <reason>``."""
        return Status.word(text) == Status.FAILED


# ---------------------------------------------------------------- eval.json


class PpcaRecord(TypedDict):
    """The ``ppca`` block of ``eval.json`` (linear Normal VAE with a point-estimate σ; C8).

    Attributes
    ----------
    sigma2_learned : float
        The fitted σ² (mean of σ_j² for a per-dimension scale).
    sigma2_ml : float
        Tipping & Bishop's σ²_ML: mean of the d − k smallest eigenvalues of the
        training covariance.
    exact_log_px : float
        Exact log N(x; b, WWᵀ + σ²I) of the fitted linear model, mean over test points, nats.
    ml_log_px : float
        The same for the closed-form ML solution, nats.
    elbo : float
        The test ELBO (copy of ``eval.json`` ``elbo``, one z per point), nats per point.
    elbo_exact : float
        The test ELBO in closed form (no sampling), nats per point; C8 judges this one.
    exact_log_px_train, ml_log_px_train : float
        ``exact_log_px`` and ``ml_log_px`` on the training split (the convergence verdict).
    sigma2_ml_active : float
        σ²_ML of the pPCA solution with ``active_components`` components (the
        latent dimensions the fit uses): mean of the d − active smallest eigenvalues.
    active_components : int
        That number (``eval.json`` ``active_units``).
    ml_log_px_train_active : float
        That solution's log p(x) per training point (the verdict's optimum without a
        validation split).
    exact_log_px_val, ml_log_px_val, elbo_exact_val : float
        ``exact_log_px``, ``ml_log_px`` and ``elbo_exact`` on the validation split
        (the convergence verdict's criterion 5).
    parameter_gap_val_se, posterior_gap_val_se : float
        Standard errors of the means of ``ml - exact`` and ``exact - elbo`` per
        validation row.
    """

    sigma2_learned: float
    sigma2_ml: float
    exact_log_px: float
    ml_log_px: float
    elbo: float
    elbo_exact: NotRequired[float]
    exact_log_px_train: NotRequired[float]
    ml_log_px_train: NotRequired[float]
    sigma2_ml_active: NotRequired[float]
    active_components: NotRequired[int]
    ml_log_px_train_active: NotRequired[float]
    exact_log_px_val: NotRequired[float]
    ml_log_px_val: NotRequired[float]
    elbo_exact_val: NotRequired[float]
    parameter_gap_val_se: NotRequired[float]
    posterior_gap_val_se: NotRequired[float]


class EvalRecord(TypedDict):
    """The keys of ``eval.json``: final test metrics of one run.

    Per-data-point quantities are in nats; losses are per element (as a loss
    function reports them) of the *mean of the observation distribution*. JSON
    has no NaN: a number that could not be computed is ``null``. To add a key,
    declare it here, document it below and in ``docs/run-directory.md``, and
    write it in ``vaelik.inference.evaluate`` (a test checks the three agree).

    Attributes
    ----------
    elbo : float
        Test ELBO per point, ``recon − kl``, nats.
    recon : float
        E_q[log p(x | z)] per point, nats.
    kl : float
        KL(q(z|x) ‖ p(z)) per point, nats; includes the scale's KL divided by
        n_test for a ``bayesian`` scale.
    mse, mae, bce : float
        Per-element losses of the observation mean at z ~ q(z|x).
    mse_at_mean_z : float
        MSE of the observation mean at z = E_q[z].
    log_px : float or None
        Importance-sampled (IWAE) estimate of log p(x), mean over test points,
        nats; null for a Delta guide (``model: ae``).
    log_px_samples : int
        K, the importance samples per point behind ``log_px``; 0 when not estimated.
    bits_per_dim : float or None
        −log_px / (d · ln 2); for a density on dequantised data (``dequantised``
        L) −(log_px − d · log L) / (d · ln 2), a bound on the discrete bits/dim;
        null when ``log_px`` is.
    bits_per_dim_kind : str or None
        What ``bits_per_dim`` is: ``exact`` (a discrete family's log mass on the
        data's levels), ``bound`` (a density on dequantised data: an upper bound
        on the discrete bits/dim), ``density`` (a density on data it was not
        dequantised from: bits of nothing discrete); null when not comparable.
    scored_data : str or None
        The discrete data the number is about: ``levels=L`` or ``binary`` (L = 2);
        null for ``density`` and when not comparable. Runs rank against each
        other only with the same data identity and ``scored_data``.
    dequantised : int or None
        L when the data were uniformly dequantised from L grey levels (the
        likelihood is a density, ``TrainConfig.dequantise`` is ``auto``); null otherwise.
    comparable : bool
        True only if the likelihood is a normalised density on these data and
        ``log_px`` was estimated: only then may ``log_px`` be ranked across families.
    comparable_reason : str
        Why not (empty when comparable).
    likelihood : str
        The family's registry name (``normal``, ``laplace``, ...).
    scale_mode : str
        ``fixed``, ``learned``, ``per_dim``, ``predicted``, ``optimal``,
        ``bayesian`` or ``none``.
    loss_name : str
        The deterministic loss the family corresponds to (``mse``, ``mae``, ``bce``).
    point_estimate : str
        What the losses were computed from (``loc``, ``probs``, ``mean``).
    scale : float or None
        The scale (σ or b): the point estimate for ``fixed``/``learned``/``optimal``,
        the RMS of per-dimension scales for ``per_dim``/``predicted``, the mean of
        q(scale) for ``bayesian``; null without a scale.
    scale_per_dim : list of float or None
        d values for ``per_dim`` (``predicted``: RMS over the test set); null otherwise.
    min_scale : float or None
        The lower bound of learned scales; null without a scale.
    scales_at_bound : int
        How many scales sit within 1 % of ``min_scale``.
    scale_ratio : float or None
        scale^p / loss, the ratio the family states tends to 1 after training
        (Normal σ²/MSE, C2; Laplace b/MAE, C4; its label is ``family["ratio_label"]``);
        null for a family that states none, or without a scale.
    scale_ratio_train : float or None
        The same ratio on the training split (one more pass at the end), where the
        scale is fitted and the claims C2/C4 judge it; only for a learned global
        scale of a family that states a target, else null.
    family : dict
        The likelihood's stated facts (:class:`vaelik.rundir.family.FamilyFacts`),
        with its reconstruction line and ratio evaluated at this run's scale.
    active_units : int
        Latent dimensions with Var_x(E_q[z_i]) > 0.01.
    latent_dim, data_dim, n_test : int
        Sizes: k, d and the number of test points.
    mutual_info : float or None
        Sampled I_q(x; z) of the aggregate posterior over at most
        :data:`MI_MAX_POINTS` test points, nats (at most log min(n_test, MI_MAX_POINTS));
        null for a Delta guide.
    entropy_estimate : float or None
        −log_px: this run's test cross-entropy, an upper bound on H(x) per
        point, nats (an *estimate* of H(x), not its value); null when ``log_px`` is.
    entropy_method : str
        How ``entropy_estimate`` was made, in words.
    c7_bound_own_entropy : float or None
        entropy_estimate − d/2 · log(2πe · MSE), nats: the C7 lower bound on
        I(x; z) with *this run's own* cross-entropy standing in for H(x) (the
        report's C7 table uses one H(x) estimate shared by a test split
        instead); null when either term is missing.
    best_epoch : int or None
        The epoch whose parameters were evaluated: the best validation ELBO
        (the last epoch without a validation split); null when evaluated
        without a training history.
    epochs_run : int or None
        Epochs trained (at most ``epochs`` of the configuration); null as above.
    stopped_early : bool or None
        True when early stopping ended the run before ``epochs`` (``patience``
        epochs without a better validation ELBO); null as above.
    converged : bool
        The convergence verdict (``vaelik.inference.convergence``): true when
        ``convergence_reasons`` is empty.
    convergence_reasons : list of str
        Why the run did not converge, one line each (what was measured, the
        threshold, what to change): the ELBO still rising, the scale ratio off on
        the training split, scales at the floor, no active units.
    convergence_notes : list of str
        Facts that do not make the run unconverged (scales at the floor on
        constant dimensions, no active units at a fixed scale, ...).
    seconds_eval : float
        Wall time of the evaluation, seconds.
    seconds_train : float
        Wall time of training (sum over epochs of ``metrics.csv`` ``seconds``);
        absent when evaluated without a run directory.
    ppca : PpcaRecord
        Only for ``model: linear`` with a Normal point-estimate σ (C8).
    """

    elbo: float
    recon: float
    kl: float
    mse: float
    mae: float
    bce: float
    mse_at_mean_z: float
    log_px: float | None
    log_px_samples: int
    bits_per_dim: float | None
    bits_per_dim_kind: str | None
    scored_data: str | None
    dequantised: int | None
    comparable: bool
    comparable_reason: str
    likelihood: str
    scale_mode: str
    loss_name: str
    point_estimate: str
    scale: float | None
    scale_per_dim: list[float] | None
    min_scale: float | None
    scales_at_bound: int
    scale_ratio: float | None
    scale_ratio_train: float | None
    family: dict[str, Any]
    active_units: int
    latent_dim: int
    data_dim: int
    n_test: int
    mutual_info: float | None
    entropy_estimate: float | None
    entropy_method: str
    c7_bound_own_entropy: float | None
    best_epoch: int | None
    epochs_run: int | None
    stopped_early: bool | None
    converged: bool
    convergence_reasons: list[str]
    convergence_notes: list[str]
    seconds_eval: float
    seconds_train: NotRequired[float]
    ppca: NotRequired[PpcaRecord]


#: every key of ``eval.json``, in the order written
EVAL_KEYS = tuple(EvalRecord.__annotations__)
