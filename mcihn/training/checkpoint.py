"""Checkpoints: what a run saves, and how it is read back safely.

A checkpoint is a dict of plain types and tensors only, so ``torch.load(weights_only=True)`` reads it
without running code::

    format       "mcihn-checkpoint-v1"
    model_kind   registry name ("mcihn", "tfn", ...), config (dict), dims ({m: [T_m, D_m]})
    model        state_dict; epoch
    ...          what the runner adds: normalizer, dataset, data_source, extraction, seed
    (last.pt only) optimizers {phase key: state}, history, best_val, best_epoch, bad_epochs, rng

``best.pt`` holds the best validation epoch's weights; ``last.pt`` everything needed to resume.
Both are made here from a trainer (:func:`make_checkpoint`, with the random state of
:func:`capture_rng`), written after every epoch (:func:`save_epoch`), and read back into a trainer
(:func:`restore_training_state`, :func:`restore_rng`). A file that asks for anything else (a ``__reduce__`` payload naming ``os.system``, a pickled class) is
refused, and the message names the global it asked for.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
import zipfile

import torch

CHECKPOINT_FORMAT = "mcihn-checkpoint-v1"
#: Keys every checkpoint has (the runner's ``extra_state`` adds ``normalizer`` to every one it writes).
REQUIRED_KEYS = ("config", "dims", "model", "normalizer")


class UnsafeCheckpointError(ValueError):
    """The file asks for code (a global outside torch's weights-only allow-list); it was not loaded."""


def load_checkpoint_file(path) -> dict:
    """torch.load with weights_only=True (no code runs), and a one-line error naming the file for other files."""
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": noise before our own message
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise ValueError(f"{path}: not a readable MCIHN checkpoint (UnpicklingError: {_first_line(e)})") from None
        bad = _refused_global(path, str(e))
        if bad is None:  # torch says "weights only load failed" for junk bytes too
            m = re.search(r"WeightsUnpickler error: (.+)", str(e).replace("\n\n", " ", 1))
            reason = m.group(1).strip().splitlines()[0] if m else "unreadable pickle"
            raise ValueError(f"{path}: not a readable MCIHN checkpoint (not a torch file, truncated or corrupt: "
                             f"{reason[:200]})") from None
        raise UnsafeCheckpointError(f"{path}: refused as unsafe and not loaded: it asks for the global '{bad}', "
                                    "which could run code; an MCIHN checkpoint holds only tensors and plain "
                                    "values") from None
    except Exception as e:  # not a torch file, truncated zip, ...
        raise ValueError(f"{path}: not a readable MCIHN checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an MCIHN checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return ck


def check_checkpoint_keys(ck: dict, path, keys=REQUIRED_KEYS) -> None:
    """Refuse a (hand-edited, truncated) checkpoint without one of ``keys``, naming the file and the key."""
    missing = [k for k in keys if k not in ck]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(repr(k) for k in missing)} "
                         f"(it has {sorted(map(str, ck))}); was it edited by hand?")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


def _refused_global(path, message: str) -> str | None:
    """The global a refused file asked for: from torch's message, else the first disallowed one in its pickle."""
    m = re.search(r"GLOBAL ([\w.]+)", message)
    if m:
        return m.group(1)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(name)
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (OSError, StopIteration, zipfile.BadZipFile):
        return None
    from torch import _weights_only_unpickler as wou  # torch's allow-list; private, hence the fallback
    allowed = set(getattr(wou, "_get_allowed_globals", dict)())
    return next((g for g in _pickle_globals(data) if g not in allowed), None)


def _pickle_globals(data: bytes) -> list[str]:
    """"module.name" of every global a pickle names, read from its opcodes (nothing is executed)."""
    found, strings, memo, top = [], [], {}, None
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            name = op.name
            if name in ("GLOBAL", "INST"):
                found.append(arg.replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            if isinstance(arg, str) and "UNICODE" in name:
                top = arg
                strings.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = top
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = top
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                top = memo.get(arg)
                if isinstance(top, str):
                    strings.append(top)
            else:
                top = None
    except Exception:  # a truncated or odd stream: what was found so far
        pass
    return found


#: Keys a ``last.pt`` has on top of :data:`REQUIRED_KEYS` (its training state, for ``--resume``).
RESUME_KEYS = ("optimizers", "history", "best_val", "best_epoch", "bad_epochs", "rng")


def checkpoint_config(ck: dict, path):
    """The checkpoint's model config (its class from ``model_kind``; MCIHN when absent), or a ValueError naming the file."""
    from .registry import config_from_dict

    try:
        return config_from_dict(ck["config"], ck.get("model_kind", "mcihn"))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: bad model in checkpoint: {e}") from None


def checkpoint_dims(ck: dict, path) -> dict[str, tuple[int, int]]:
    """``ck["dims"]`` as modality -> (T, D) positive ints, or a ValueError naming the file and the modality."""
    dims = ck["dims"]
    if not isinstance(dims, dict):
        raise ValueError(f"{path}: checkpoint 'dims' must map modality -> [T, D], got {type(dims).__name__}")
    out = {}
    for m, v in dims.items():
        ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
        if not ok:
            raise ValueError(f"{path}: checkpoint 'dims' of {m!r} must be two integers [T, D] >= 1, got {v!r}")
        out[m] = (v[0], v[1])
    return out


def load_weights(model: torch.nn.Module, state, path) -> None:
    """``model.load_state_dict(state)``; a state that does not fit is a one-line ValueError naming the file."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: checkpoint 'model' must be a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state)  # a model may resize state it sizes from data (Self-MM's banks) while loading
    except RuntimeError as e:
        want = model.state_dict()
        problems = [f"missing {k!r}" for k in want if k not in state]
        problems += [f"unexpected {k!r}" for k in state if k not in want]
        problems += [f"{k!r} has shape {tuple(getattr(state[k], 'shape', ()))}, the model's config needs "
                     f"{tuple(want[k].shape)}" for k in want if k in state and
                     getattr(state[k], "shape", None) != want[k].shape]
        problems = problems or [str(e).splitlines()[0][:200]]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{path}: the weights do not fit the model its config describes: "
                         + "; ".join(problems[:3]) + more + " (was the config or the file edited?)") from None


# ---- what a run saves, and how a trainer gets it back -------------------------------------------------
def make_checkpoint(trainer, extra_state: dict | None = None, full: bool = True) -> dict:
    """The checkpoint of ``trainer`` now: its weights (``best.pt``), with ``full`` everything a resume needs
    (``last.pt``): the optimisers, the history, the early-stopping state and the random state."""
    ck = {"format": CHECKPOINT_FORMAT, "model_kind": trainer.kind, "config": trainer.cfg.to_dict(),
          "dims": {m: list(v) for m, v in trainer.model.dims.items()},
          "model": trainer.model.state_dict(), "epoch": trainer.epoch, **(extra_state or {})}
    if full:
        ck.update({
            "optimizers": {k: o.state_dict() for k, o in trainer.opt.items()},
            "history": trainer.history, "best_val": trainer.best_val, "best_epoch": trainer.best_epoch,
            "bad_epochs": trainer.bad_epochs,
            "rng": capture_rng(trainer.shuffle, trainer.model),
        })
    return ck


def save_epoch(trainer, out_dir, extra_state: dict | None, improved: bool) -> None:
    """After an epoch: ``best.pt`` when validation improved, then ``last.pt`` and ``history.json``, each atomically."""
    from ..utils import atomic_torch_save, atomic_write_json

    if improved:
        atomic_torch_save(make_checkpoint(trainer, extra_state, full=False), out_dir / "best.pt")
    atomic_torch_save(make_checkpoint(trainer, extra_state, full=True), out_dir / "last.pt")
    atomic_write_json(out_dir / "history.json", trainer.history)


def restore_training_state(trainer, ck: dict, source="checkpoint") -> None:
    """Put a ``last.pt`` (everything) or a ``best.pt`` (weights only) back into ``trainer``; ``source`` names it in errors."""
    load_weights(trainer.model, ck["model"], source)
    trainer.epoch = int(ck.get("epoch", 0))
    if "optimizers" in ck:
        for k, o in trainer.opt.items():
            o.load_state_dict(ck["optimizers"][k])
        trainer.history = list(ck["history"])
        trainer.best_val, trainer.best_epoch = float(ck["best_val"]), int(ck["best_epoch"])
        trainer.bad_epochs = int(ck["bad_epochs"])
        restore_rng(ck["rng"], trainer.shuffle, trainer.model, trainer.device)


def capture_rng(shuffle: torch.Generator, model) -> dict:
    """Every random stream a run draws from: torch's global CPU (and CUDA) streams, the trainer's
    shuffling stream and the model's own streams by name (MCIHN's prior samples)."""
    return {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "model": {k: g.get_state() for k, g in model_generators(model).items()}}


def restore_rng(rng: dict, shuffle: torch.Generator, model, device) -> None:
    """Continue the streams :func:`capture_rng` saved."""
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if rng.get("model"):
        restore_model_generators(model, rng["model"], device)


def model_generators(model) -> dict:
    """The model's own random streams by name (``model.generators()``; none for a model without the method)."""
    return model.generators() if hasattr(model, "generators") else {}


def restore_model_generators(model, states: dict, device) -> None:
    """Continue the model's own random streams: MCIHN's prior stream is made on the first batch, so it
    is made here first, on the training device."""
    if "prior" in states and hasattr(model, "prior_generator"):
        model.prior_generator(device)
    for k, g in model_generators(model).items():
        if k in states:
            g.set_state(states[k])
