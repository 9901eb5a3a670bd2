"""Helpers shared by several test files, imported by name (``from _helpers import build, full_out``).

Not a conftest: nothing here is injected anywhere unasked. A fixture imported into a test module is that
module's fixture (pytest collects it from the module's namespace), so a module-scoped one is built once per
module that imports it.

* ``build`` / ``full_out``: an MCIHN with conftest's awkward sizes, and its eval-mode forward pass
  (test_mcihn_model.py, test_aae.py, test_cgmm.py, test_ffm.py).
* ``tiny`` / ``small``: a baseline's tiny config by kind, and a small synthetic data set (96 / 32 / 32 clips)
  (test_baselines_common*.py, test_baseline_*.py; ``small`` also test_data.py).
"""
from __future__ import annotations

import pytest
import torch

from conftest import AWKWARD_DIMS
from mcihn.data import synthetic_data
from mcihn.model.mcihn import MCIHN
from mcihn.training.registry import make_config


def build(cfg, seed=0, dims=AWKWARD_DIMS):
    torch.manual_seed(seed)
    return MCIHN(cfg, dims)


@pytest.fixture
def full_out(awkward_cfg, batch):
    model = build(awkward_cfg(), seed=5)
    model.eval()
    with torch.no_grad():
        return model, model(batch)


def tiny(kind, **kw):
    return make_config(kind, "tiny", **kw)


@pytest.fixture(scope="module")
def small():
    return synthetic_data("mosi", splits={"train": 96, "valid": 32, "test": 32},
                          dims={"text": (6, 8), "audio": (7, 5), "vision": (5, 6)}, seed=3)
