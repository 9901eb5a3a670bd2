"""Training: Algorithm 1 for any registered model, checkpoints, and multi-seed runs.

    registry.py     every trainable model by name (mcihn, tfn, lmf, mult, late, selfmm, emt, cmhfm)
    trainer.py      the epoch loop: the per-batch phases of a model, validation, early stopping
    steps.py        what a step needs: batches, optimisers, the learning-rate curve, the non-finite check
    checkpoint.py   the checkpoint format, its safe loading, what a run saves and a resume restores
    runner.py       one seed end to end (normalise, resume or train, restore best, test once), many seeds,
                    evaluate
    starts.py       linear_init="auto": a seed trained from both starts of the linear path, validation keeps one
"""
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint_file
from .registry import MODEL_KINDS, build_model, make_config
from .runner import DEFAULT_SEEDS, evaluate_checkpoint, load_model, run_experiment, run_seed
from .trainer import NonFiniteLossError, Trainer

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint_file", "MODEL_KINDS", "build_model", "make_config", "DEFAULT_SEEDS",
           "evaluate_checkpoint", "load_model", "run_experiment", "run_seed", "NonFiniteLossError", "Trainer"]
