"""Training: Algorithm 1 for any registered model, checkpoints, and multi-seed runs.

    registry.py     every trainable model by name (mcihn, tfn, lmf, mult, late)
    trainer.py      the per-batch phases of a model, the epoch loop, early stopping
    checkpoint.py   the checkpoint format and its safe loading
    runner.py       one seed end to end (normalise, train, restore best, test once), many seeds, evaluate
"""
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint_file
from .registry import MODEL_KINDS, build_model, make_config
from .runner import DEFAULT_SEEDS, evaluate_checkpoint, load_model, run_experiment, run_seed
from .trainer import NonFiniteLossError, Trainer

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint_file", "MODEL_KINDS", "build_model", "make_config", "DEFAULT_SEEDS",
           "evaluate_checkpoint", "load_model", "run_experiment", "run_seed", "NonFiniteLossError", "Trainer"]
