"""Shared fixtures for the model / MMD / training / CLI tests.

Sizes are deliberately awkward and all different (B=3; text 5x7, audio 9x3,
vision 4x11; L=6, d=12, heads=3) so that a swapped axis or a hard-coded size
fails loudly instead of broadcasting silently.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from mcihn.model.config import MCIHNConfig
from mcihn.modalities import MODALITIES

#: modality -> (T_m, D_m), all different.
AWKWARD_DIMS = {"text": (5, 7), "audio": (9, 3), "vision": (4, 11)}
#: Valid lengths of each modality for the B=3 batch: every row differs and one sequence has length 1.
AWKWARD_LENGTHS = {"text": [5, 1, 3], "audio": [9, 4, 2], "vision": [2, 4, 1]}
AWKWARD_MODEL = dict(latent_len=6, latent_dim=12, heads=3, disc_hidden=10)

#: Small synthetic data for the training tests: 64 / 24 / 24 clips, tiny feature sizes.
SMALL_SPLITS = {"train": 64, "valid": 24, "test": 24}
SMALL_DIMS = {"text": (6, 8), "audio": (7, 5), "vision": (5, 6)}
#: A small model for training runs (two batches of 32 per epoch).
SMALL_MODEL = dict(latent_len=4, latent_dim=16, heads=2, disc_hidden=16, batch_size=32, epochs=2)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long test, skipped unless MCIHN_SLOW=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MCIHN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set MCIHN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def torch_single_thread():
    """The models in these tests are tiny: one intra-op thread is faster, and it avoids OpenMP
    spin-wait oversubscription (seen as a 100x slow-down) when another process loads the CPUs."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_batch(dims=None, lengths=None, B=None, modalities=MODALITIES, seed=0, pad_value=0.0) -> dict:
    """A random batch in the model's format: m (B,T,D) float, m_mask (B,T) bool, label (B,).

    Padding positions hold ``pad_value`` (the data loader writes 0 there).
    """
    dims = dims or AWKWARD_DIMS
    g = torch.Generator().manual_seed(seed)
    if lengths is None:
        lengths = AWKWARD_LENGTHS if B is None else {
            m: torch.randint(1, dims[m][0] + 1, (B,), generator=g).tolist() for m in modalities}
    B = len(next(iter(lengths.values())))
    batch = {}
    for m in modalities:
        T, D = dims[m]
        mask = torch.arange(T)[None, :] < torch.tensor(lengths[m])[:, None]  # (B, T)
        x = torch.randn(B, T, D, generator=g)
        batch[m] = torch.where(mask[..., None], x, torch.full_like(x, pad_value))
        batch[m + "_mask"] = mask
    batch["label"] = torch.empty(B).uniform_(-3, 3, generator=g)
    return batch


@pytest.fixture
def awkward_dims() -> dict:
    return dict(AWKWARD_DIMS)


@pytest.fixture
def awkward_cfg():
    """Factory: ``awkward_cfg(**overrides)`` -> tiny config with L=6, d=12, heads=3."""
    def make(**overrides) -> MCIHNConfig:
        return MCIHNConfig.tiny(**{**AWKWARD_MODEL, **overrides})
    return make


@pytest.fixture
def batch() -> dict:
    """B=3 with varied masks; the text of sample 1 and the vision of sample 2 have length 1."""
    return make_batch(seed=0)


@pytest.fixture
def batch_factory():
    return make_batch


@pytest.fixture(scope="session")
def small_data():
    """Small SYNTHETIC MOSI-shaped data (64/24/24 clips). Shared: tests must not modify it."""
    from mcihn.data import synthetic_data
    return synthetic_data("mosi", splits=dict(SMALL_SPLITS), dims=dict(SMALL_DIMS), seed=3)


@pytest.fixture
def small_cfg():
    """Factory: ``small_cfg(**overrides)`` -> tiny training config (2 epochs, L=4, d=16)."""
    def make(**overrides) -> MCIHNConfig:
        return MCIHNConfig.tiny(**{**SMALL_MODEL, **overrides})
    return make


@pytest.fixture
def quiet():
    """Keyword arguments that silence run_seed / run_experiment / Trainer.fit."""
    return dict(progress=False, log=lambda *a, **k: None)


@pytest.fixture(scope="module")
def learn_data():
    """SYNTHETIC MOSI-shaped data, small but with enough signal to learn from (400 / 60 / 60 clips)."""
    from mcihn.data import synthetic_data
    return synthetic_data("mosi", splits={"train": 400, "valid": 60, "test": 60},
                          dims={"text": (8, 12), "audio": (10, 6), "vision": (6, 10)}, seed=5)


def train_each(configs: dict, data, tmp_path_factory) -> dict:
    """kind -> (run folder, run_seed result) for each config of ``configs`` (seed 1111, one torch thread)."""
    from mcihn.training.runner import run_seed

    runs, old = {}, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for kind, cfg in configs.items():
            out = tmp_path_factory.mktemp(kind)
            runs[kind] = (out, run_seed(data, cfg, 1111, out_dir=out, device="cpu", progress=False,
                                        log=lambda *a, **k: None))
    finally:
        torch.set_num_threads(old)
    return runs


# ----------------------------------------------------------------------------- notebooks executed with papermill
# Shared by tests/test_notebooks.py (assertions on what each notebook recorded) and tests/test_book.py (the book
# built from the same executed notebooks): each notebook runs at most once per session.
NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = int(os.environ.get("MCIHN_NB_CELL_TIMEOUT", "300"))


def _extra_parameters(stem: str, tmp: Path) -> dict:
    """Per-notebook parameters beyond RECORD / OUT."""
    if stem.startswith("05_"):
        # Read the data from a pickle, as with real features (-p DATA path). The file holds exactly the QUICK
        # synthetic set, so the runs cached by the other notebooks are reused.
        from mcihn.notebook.session import DATA_SEED, QUICK_SPLITS
        from mcihn.data import write_synthetic
        return {"DATA": write_synthetic(tmp / "synthetic_quick.pkl", kind="mosi", splits=dict(QUICK_SPLITS),
                                        seed=DATA_SEED)}
    return {}


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """stem -> {"record", "nb", "seconds", "parameters"}: each notebook runs at most once per session."""
    import papermill as pm

    done: dict = {}

    def run(stem: str) -> dict:
        if stem in done:
            return done[stem]
        path = NB_DIR / f"{stem}.ipynb"
        if not path.exists():
            pytest.skip(f"{path.name} is not in this checkout")
        tmp = tmp_path_factory.mktemp(stem)
        declared = pm.inspect_notebook(str(path))
        params = {"RECORD": str(tmp / "record.json")} if "RECORD" in declared else {}
        if "OUT" in declared:  # an output file: keep it out of the repository
            default = str(declared["OUT"]["default"]).strip("\"'")
            params["OUT"] = str(tmp / ("out" + Path(default).suffix))
        params.update(_extra_parameters(stem, tmp))
        t0 = time.time()
        try:
            nb = pm.execute_notebook(str(path), str(tmp / path.name), parameters=params, cwd=str(NB_DIR),
                                     kernel_name="python3", progress_bar=False, execution_timeout=CELL_TIMEOUT,
                                     start_timeout=120)
        except pm.PapermillExecutionError as e:
            done[stem] = e
            raise
        record_path = Path(params.get("RECORD", tmp / "none"))
        done[stem] = {"record": json.loads(record_path.read_text()) if record_path.exists() else None,
                      "nb": nb, "seconds": time.time() - t0, "parameters": params}
        print(f"{path.name}: {done[stem]['seconds']:.1f} s")
        return done[stem]

    def get(stem: str) -> dict:
        res = run(stem)
        if isinstance(res, Exception):
            pytest.fail(f"{stem} failed to execute (see test_notebook_runs)")
        return res

    return get
