"""Settings for the whole test session: tests/ and the notebooks that nbval runs from notebooks/.

The notebooks run in Jupyter kernels, separate processes that inherit this process's environment.
Set here, once, before anything starts a kernel:

* ``MCIHN_QUICK=1`` (unless already set): notebooks run at QUICK size. ``MCIHN_QUICK=0 python -m pytest``
  runs them at full size (give them a GPU and a longer ``MCIHN_NB_CELL_TIMEOUT``).
* ``MCIHN_CACHE_DIR``: one temporary cache of trained runs for the session, removed at the end. The
  papermill tests (tests/test_notebooks.py) run first and train; nbval's kernels then read the same runs
  back, so nothing is trained twice. An explicit ``MCIHN_CACHE_DIR`` is kept (and not removed).
* ``PYTHONPATH`` starts with this checkout, so a kernel imports the ``mcihn`` under test even when another
  copy is installed.
"""
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    os.environ.setdefault("MCIHN_QUICK", "1")
    if not os.environ.get("MCIHN_CACHE_DIR"):
        cache = tempfile.mkdtemp(prefix="mcihn-test-cache-")
        os.environ["MCIHN_CACHE_DIR"] = cache
        config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
