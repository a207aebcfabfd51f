"""The bundled digits are read from scikit-learn's file without importing scikit-learn.

Importing ``sklearn`` costs about 2 s per process (each sweep worker loads the
digits once); the pixel values must be exactly those of ``load_digits()``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def test_digits_equal_load_digits():
    from sklearn.datasets import load_digits

    from vaelik.inference.data.builtin import digits

    pixels = digits()
    assert pixels.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(pixels, load_digits().images.astype(np.int64)[:, None])


def test_loading_the_digits_does_not_import_sklearn():
    code = ("import sys; from vaelik.inference import load_data; load_data('digits'); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
