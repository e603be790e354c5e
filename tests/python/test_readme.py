"""The README's Python examples (```python blocks of its "Python API" section) run as written."""

import os
import re
import subprocess
import sys

import modelreg
from conftest import need

ROOT = os.environ.get("MODELREG_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
# The package under test, wherever the child process runs.
ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(modelreg.__file__))))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)


def test_the_readme_python_examples_run(tmp_path):
    need("sklearn")
    need("modelreg.sklearn")
    blocks = python_blocks()
    assert blocks, "no ```python block in the README's Python API section"
    for code in blocks:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, code + "\n" + done.stdout + done.stderr
