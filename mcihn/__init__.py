"""MCIHN: a hybrid network based on multi-path cross-modal interaction (Zhang et al., MMAsia '25).

The package, one folder per layer (imports only go down this list)::

    modalities.py, utils.py, metrics.py, paper.py   names, I/O helpers, MMSA's metrics, the paper's tables
    model/        the paper, one file per section: config, aae (3.3), cgmm + mmd (3.4), ffm (3.5), mcihn
    baselines/    TFN, LMF, MulT, Self-MM, EMT, CMHFM, late fusion (Table 2), trained by the same trainer
    data/         MMSA pickles (safe loading, validation), normalisation, synthetic and planted data, real CSV / TSV sets
    training/     Algorithm 1 (trainer), checkpoints, multi-seed runs, the model registry
    extraction/   raw clips -> features (CLIP, BERT, wav2vec2), single-clip prediction
    experiments/  Tables 2 and 3 re-run, the development suite, MMSA's own models, tuning, robustness
    notebook/     what the notebooks import: settings and run cache, analysis, plots
    cli.py, bench.py                                  ``python -m mcihn ...``, benchmarks

The short way in::

    from mcihn import MCIHN, MCIHNConfig, Trainer, load_mmsa, evaluate, run_experiment
"""
__version__ = "0.1.0"

import os

# OpenMP threads that wait for work sleep instead of spinning (libgomp's default spins for a while,
# which, next to another busy process, can make a training run many times slower). Read once, when
# torch first starts OpenMP, so it has to be set before torch is imported; an explicit setting wins.
# ``python -m mcihn`` and ``import mcihn`` set it; code that imports torch first should export it itself.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .data import load_mmsa, synthetic_data  # noqa: E402
from .metrics import evaluate  # noqa: E402
from .model import MCIHN, MCIHNConfig, MCIHNOutput, main_loss  # noqa: E402
from .training import Trainer, evaluate_checkpoint, run_experiment, run_seed  # noqa: E402

__all__ = ["MCIHN", "MCIHNConfig", "MCIHNOutput", "main_loss", "Trainer", "load_mmsa", "synthetic_data", "evaluate",
           "evaluate_checkpoint", "run_experiment", "run_seed", "__version__"]
