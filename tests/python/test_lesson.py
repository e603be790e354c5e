"""examples/lesson.py (./run.sh demo) runs to the end: scikit-learn models saved, loaded with
validation, compared, promoted, and hot-swapped under a serving thread."""

import os
import subprocess
import sys

import modelreg
from conftest import need

ROOT = os.environ.get("MODELREG_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
# The package under test, wherever the child process runs.
ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(modelreg.__file__))))


def test_the_lesson_runs_and_swaps_without_a_failed_request(tmp_path):
    need("sklearn")
    need("modelreg.sklearn")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "lesson.py"), str(tmp_path)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "validation passed" in out
    assert "at zstd level 3" in out
    assert "promoted fraud_detector@" in out
    assert "0 failed" in out and "serving_version 3, swaps 2" in out
    assert (tmp_path / "lesson.db").exists()
