"""MCIHN: a hybrid network based on multi-path cross-modal interaction (Zhang et al., MMAsia '25).

The package, one folder per layer (imports only go down this list)::

    modalities.py, utils.py      modality names; seeding, devices, threads, atomic writes, the output-folder lock
    metrics.py, paper.py         MMSA's metrics; the paper's tables, rows and published numbers
    model/        the paper, one file per section: config.py, aae.py (Sec. 3.3), cgmm.py + mmd.py (3.4),
                  ffm.py (3.5), mcihn.py (Fig. 1(a), Algorithm 1), phases.py, attention.py, text_encoder.py,
                  linear_path.py (an addition: a linear regression beside the network)
    baselines/    the seven of Table 2, trained by the same trainer: tfn.py, lmf.py, mult.py, late.py,
                  selfmm.py, emt.py, cmhfm.py (common.py: what they share)
    data/         mmsa.py (MMSA pickles, validation), pickles.py (safe unpickling), normalize.py, synthetic.py,
                  planted.py, real.py (real CSV / TSV sets)
    training/     registry.py (every model by name), trainer.py (the epoch loop), steps.py, checkpoint.py,
                  runner.py (one seed end to end, many seeds, resume, evaluate), starts.py (both starts of the
                  linear path, validation keeps one)
    extraction/   raw clips -> features (media.py, features.py: CLIP, BERT, wav2vec2; dataset.py), predict.py,
                  fixtures.py
    experiments/  tables.py (Tables 2 and 3 re-run), suite.py, mmsa_models.py, tune.py, robustness.py,
                  reference.py (the mean predictor and a ridge regression: the points any model must beat)
    notebook/     what the notebooks import: session.py (settings, run cache), analysis.py, plots.py
    cli/          ``python -m mcihn ...``: one module per group of commands
    bench.py      benchmarks

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
