"""What the fits mean: tables, figures, ArviZ data and the HTML report.

Reads run directories (``docs/run-directory.md``) with numpy, pandas, json and
ArviZ only; it never imports torch or the training code. ArviZ itself is imported
lazily, on the first call that needs it.
"""

from .arviz_io import (
    build_run_data,
    compare_runs,
    load_run_data,
    save_run_data,
    summarize_scale,
)
from .compare import c6_check, c6_frame, comparison_table, format_mean_sd, heldout_ranking
from .figures import (
    plot_identity,
    plot_per_dim_scale,
    plot_prior_samples,
    plot_reconstructions,
    plot_scale_heatmap,
    plot_sigma_over_epochs,
    plot_sigma_sweep,
    plot_test_metrics,
)
from .identity import fit_line, identity_table, pointwise_frame, theoretical_line
from .report import Report, write_report
from .runs import RunFileError, Runs, load_images, load_per_dim, load_pointwise, load_runs
from .sigma import per_dim_frame, per_dim_summary, sigma_over_epochs, sigma_table

__all__ = [
    "Runs", "RunFileError", "load_runs", "load_pointwise", "load_per_dim", "load_images",
    "sigma_table", "sigma_over_epochs", "per_dim_frame", "per_dim_summary",
    "fit_line", "theoretical_line", "identity_table", "pointwise_frame",
    "comparison_table", "format_mean_sd", "c6_frame", "c6_check", "heldout_ranking",
    "build_run_data", "save_run_data", "load_run_data", "summarize_scale", "compare_runs",
    "plot_sigma_over_epochs", "plot_identity", "plot_test_metrics", "plot_reconstructions",
    "plot_prior_samples", "plot_scale_heatmap", "plot_per_dim_scale", "plot_sigma_sweep",
    "Report", "write_report",
]
