"""The run directory: what inference writes and analysis reads (torch-free)."""
