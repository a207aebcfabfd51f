"""The analysis layer must load (and write a report) without torch."""

import subprocess
import sys

#: a hang guard only (tests/waiting.py's HANG_GUARD_S; this folder also runs on its own, under
#: Python 3.12 without the tests/ folder on the path: .ci/analysis-py312.sh)
HANG_GUARD_S = 1800.0


def test_import_does_not_load_torch():
    code = (
        "import sys, vaelik.analysis, vaelik.analysis.report;"
        "bad = [m for m in ('torch', 'pyro', 'vaelik.inference', 'vaelik.models') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stdout + done.stderr
