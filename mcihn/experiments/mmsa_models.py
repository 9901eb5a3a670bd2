"""MMSA's own TFN, LMF and MulT (MMSA 2.2.1, github.com/thuiar/MMSA) on any data set of this package.

MMSA is optional: it is imported inside the functions, never at import time, so this module (and the package)
imports without it. :func:`mmsa_available` says whether it can run and, if not, what to install::

    pip install --no-deps mmsa==2.2.1 easydict nvidia-ml-py

(``--no-deps`` so that pip does not replace torch / numpy / transformers; ``easydict`` is imported by MMSA's
config, ``nvidia-ml-py`` provides the ``pynvml`` module ``MMSA.utils.functions`` imports at import time.)

What :func:`run_mmsa_model` runs
--------------------------------
MMSA's own code path of ``MMSA_run`` / ``MMSA.run._run`` for one seed, unchanged: the config of MMSA's
``config/config_regression.json`` (``get_config_regression(model, config_dataset)``: by default MOSI's
hyper-parameters, as ``benchmarks/mmsa_crosscheck.py`` uses), ``setup_seed(seed)``, ``MMDataLoader`` on a
pickle (``custom_feature``), ``AMIO`` (``MMSA.models.singleTask.TFN / LMF / MULT``), ``ATIO().getTrain(args)``
(the trainers ``MMSA.trains.singleTask.*``: their optimiser, loss, schedule, early stopping on the validation
L1), ``do_train``, the best checkpoint reloaded, ``do_test`` on the test split. Not as ``MMSA_run``: no
``torch.cuda.set_device`` (``device`` is given), ``num_workers=0`` (the same batches in the same order),
no one-second sleep, tqdm bars off (``progress=False``), and for MulT a shim for torch >= 2.7, which dropped
``ReduceLROnPlateau(verbose=...)`` (:func:`_torch_compat`; the schedule is torch's, unchanged).
Like ``MMSA_run``, ``setup_seed`` seeds the global torch / numpy / ``random`` generators.

The data
--------
``data`` (a :class:`mcihn.data.MultimodalData`) is written as an MMSA pickle (the keys ``MMDataset`` reads:
``id``, ``raw_text``, ``text``, ``audio``, ``vision``, ``audio_lengths``, ``vision_lengths``,
``regression_labels``, and for SIMS ``regression_labels_T/A/V``) at
``work_dir / "mmsa_<dataset>_<letters>[_z]_<fingerprint>.pkl"``, where the fingerprint is a hash of
everything written (ids, labels, features and lengths of the modalities used, ``zscore``). The file is written
once (atomically) and reused by every later call with the same data, modalities and ``zscore``, whatever the
model or seed: pass the same ``work_dir`` to share it. Nothing else is cached; delete the folder to clean up.

Sizes. MMSA's config carries MOSI's ``feature_dims`` (768, 5, 20) and ``seq_lens`` (50, 500, 375). Both are
set here from the written pickle before anything is built; MMSA's ``MMDataLoader`` in ``custom_feature``
mode does the same by itself (``MMDataset`` sets ``feature_dims[0..2]`` from the arrays' last axis, and
``MMDataLoader`` replaces ``seq_lens`` by the train split's ``get_seq_len()``: (T_t, 1, 1) for TFN / LMF,
whose ``need_normalized`` averages audio and vision over time first). Any (T, D) therefore works;
``input_sizes`` in the result gives what the model was built with.

Absent modalities (fewer than three in ``modalities``, e.g. "ta" or "t"; a modality the data has but
``modalities`` leaves out is treated as absent too). MMSA's TFN and LMF need all three inputs, so each absent
one is given as one zero feature of one step: ``(N, 1, 1)`` zeros, lengths 1. Its ``SubNet`` sees the time
mean of that, a constant 0; ``BatchNorm1d`` maps a constant input to its bias (batch variance 0 -> the
normalised value is 0; the running variance decays towards 0 but (0 - running_mean ~ 0) stays ~0 in eval),
which starts at 0 and is trained, so in eval the absent subnetwork outputs one learned vector ``c``, the same
for every clip. (In training, ``SubNet``'s input dropout 0.3 acts on that bias once it has moved from 0, so
the vector carries dropout noise there, as any dropout does.) In TFN the outer product
``[1; h_a] x [1; h_v] x [1; h_t]`` with, say, ``h_v = c`` is ``(dim_v + 1)`` copies of the bimodal tensor
``[1; h_a] x [1; h_t]``, the k-th scaled by ``[1; c]_k``: a linear function of the bimodal tensor, so the
post-fusion network sees exactly the information of a bimodal TFN of the present modalities (with redundant
first-layer weights); with text only, copies of ``[1; h_t]`` (text subnetwork -> MLP). In LMF each absent
factor ``[1; c] W^(r)`` is one number per rank, folded into the rank weights: a bimodal (or text-only,
then linear in ``[1; h_t]``) low-rank fusion. MulT needs at least ``conv1d_kernel_size`` steps per modality
(its convolutions have no padding), so it refuses absent modalities (``ValueError``).

Batch sizes. MMSA fails on a last batch of one clip: in training ``BatchNorm1d`` of TFN / LMF refuses a batch
of one, and ``do_test(..., return_sample_results=True)`` iterates ``preds.squeeze()``, a 0-d array for one
clip. A train split (TFN / LMF) or test split of ``N = k * batch_size + 1`` clips is refused with a
``ValueError`` before anything runs (rather than dropping a clip silently).

Padding (``pad``). This package keeps a clip's real steps first and pads after them (``pad="end"``). MMSA's
TFN and LMF read text with ``TextSubNet``: an LSTM run over all ``T_t`` steps, padding included, whose *last*
hidden state is the text vector (no lengths are used; MulT likewise keeps the last step of each sequence). With
the padding after the words, that state has run through the zero steps after the sentence (35 of 50 on average
for the MOSI transcripts here). ``pad="front"`` writes every sequence with its zeros first and its real steps
last, so that the last state is the one after the last word; the lengths are unchanged (TFN and LMF average
audio and vision over all steps, where the order does not matter). Measured on the real MOSI transcripts (text
only, seed 1111, MMSA's MOSI config): MMSA's TFN, test MAE 1.481 with ``pad="end"`` (the mean predictor is at
1.464) and 0.898 with ``pad="front"``; the suite gives MMSA ``pad="front"`` (``SUITE_PAD``).

``zscore=True``: MMSA is given a copy normalised with the train split's statistics over real steps as this
package's own pipeline normalises (:func:`mcihn.data.normalize.fit_normalizer`, default rule: z-scored per
feature, a real set's text only centred; padding kept 0), as ``benchmarks/mmsa_crosscheck.py --zscore`` did.
A diagnostic: MMSA feeds raw features, and the suite's MMSA rows are given them raw.

Metrics. ``test`` in the result is :func:`mcihn.metrics.evaluate` on MMSA's own test predictions;
``mmsa_test`` is MMSA's ``MetricsTop`` (plus its test "Loss"), and ``metrics_match`` says whether the two
agree (MOSI / MOSEI: exactly; SIMS: MMSA 2.2.1 rounds its SIMS metrics to 4 digits, ``evaluate`` does not, so
they are compared with ``evaluate(..., round_digits=4)``).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import logging
import math
import os
import pickle
import re
import time
import uuid
from pathlib import Path

import numpy as np

from ..data.mmsa import SPLITS, MultimodalData
from ..modalities import LETTER, MODALITIES, parse_modalities

#: The models run here: MMSA model name -> its module name under MMSA.models / MMSA.trains.singleTask.
MODELS = {"tfn": "TFN", "lmf": "LMF", "mult": "MULT"}
#: MMSA's config keys reported as ``hyper_parameters`` (those the model's config has).
HP_KEYS = ("hidden_dims", "text_out", "post_fusion_dim", "dropouts", "rank", "batch_size", "learning_rate",
           "factor_lr", "weight_decay", "early_stop", "KeyEval", "need_normalized", "dst_feature_dim_nheads",
           "nlevels", "conv1d_kernel_size_l", "attn_mask", "update_epochs", "grad_clip", "patience", "use_bert")
INSTALL = "pip install --no-deps mmsa==2.2.1 easydict nvidia-ml-py"
_PIP_NAME = {"MMSA": "--no-deps mmsa==2.2.1 easydict nvidia-ml-py", "easydict": "easydict", "pynvml": "nvidia-ml-py"}
_PICKLE_FORMAT = 1  # bump when the written layout changes (it is part of the fingerprint)
#: Where a sequence's zeros go in the written pickle: after the real steps (this package's layout) or before.
PADS = ("end", "front")
#: The layout the development suite gives MMSA's models (module docstring, "Padding").
SUITE_PAD = "front"


# ----------------------------------------------------------------------------- availability
def mmsa_available() -> str | None:
    """None when MMSA and what it imports at import time can be imported, else a one-line reason with the
    command that installs what is missing."""
    try:
        # MMSA's own import-time needs first: with MMSA already imported, ``import MMSA`` alone would not notice.
        importlib.import_module("easydict")
        importlib.import_module("pynvml")
        for name in ("MMSA", "MMSA.config", "MMSA.data_loader", "MMSA.models", "MMSA.trains", "MMSA.utils"):
            importlib.import_module(name)
    except ImportError as e:
        top = (getattr(e, "name", None) or "").split(".")[0]
        what = f"pip install {_PIP_NAME[top]}" if top in _PIP_NAME else INSTALL
        return f"MMSA cannot be imported ({type(e).__name__}: {e}); install it with: {what}"
    except Exception as e:  # noqa: BLE001  (MMSA's imports run code: any failure means "cannot run")
        return f"MMSA fails on import ({type(e).__name__}: {e}); reinstall it with: {INSTALL}"
    return None


# ----------------------------------------------------------------------------- data -> MMSA pickle
def zscore_data(data: MultimodalData, modalities=MODALITIES) -> MultimodalData:
    """``data`` with ``modalities`` (those it has) normalised by the train split's real steps as this
    package's models see them (:func:`mcihn.data.normalize.fit_normalizer`, default rule: z-scored, a real
    set's text only centred); padding stays 0, everything else unchanged."""
    import dataclasses

    from ..data.normalize import fit_normalizer

    present = tuple(m for m in parse_modalities(modalities) if m in data.dims)
    norm = fit_normalizer(data, present)
    return dataclasses.replace(data, splits={s: norm.transform(sd) for s, sd in data.splits.items()})


def _mods(data: MultimodalData, modalities) -> tuple[str, ...]:
    mods = parse_modalities(modalities)
    missing = [m for m in mods if m not in data.dims]
    if missing:
        raise ValueError(f"modalities {''.join(LETTER[m] for m in mods)!r}: the data ({data.source}) has no "
                         f"{missing} features (it has {sorted(data.dims)})")
    return mods


def pad_front(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, T, D) with each clip's ``lengths[i]`` real steps first -> the same steps last, zeros first."""
    out = np.zeros_like(x)
    T = x.shape[1]
    for i, n in enumerate(np.asarray(lengths, np.int64)):
        if n > 0:
            out[i, T - n:] = x[i, :n]
    return out


def mmsa_pickle_dict(data: MultimodalData, modalities="tav", pad: str = "end") -> dict:
    """The MMSA pickle of ``data`` as a dict: the keys MMSA's ``MMDataset`` reads, for all three modalities;
    each modality not in ``modalities`` is one zero feature of one step, ``(N, 1, 1)``, lengths 1. ``pad``:
    "end" (real steps first, as this package) or "front" (zeros first; module docstring)."""
    if pad not in PADS:
        raise ValueError(f"pad must be one of {PADS}, not {pad!r}")
    mods = _mods(data, modalities)
    out = {"meta": {"source": str(data.source), "dataset": data.dataset, "synthetic": bool(data.synthetic),
                    "modalities": "".join(LETTER[m] for m in mods),
                    "absent": [m for m in MODALITIES if m not in mods],
                    "pad": pad, "writer": "mcihn.experiments.mmsa_models.mmsa_pickle_dict"}}
    for s in SPLITS:
        sd = data[s]
        n = len(sd)
        d = {"id": list(sd.ids), "raw_text": list(sd.raw_text) if sd.raw_text is not None else [""] * n,
             "regression_labels": np.asarray(sd.labels, np.float32)}
        for m in MODALITIES:
            if m in mods:
                x, lengths = sd.features[m], sd.lengths[m]
                if pad == "front":
                    x = pad_front(x, lengths)
            else:
                x, lengths = np.zeros((n, 1, 1), np.float32), np.ones(n, np.int64)
            d[m] = np.ascontiguousarray(x, dtype=np.float32)
            if m != "text":  # MMSA reads no text lengths for these models (use_bert is False)
                d[f"{m}_lengths"] = np.asarray(lengths, np.int64)
        if data.dataset == "sims":  # MMSA's loader reads them for SIMS; TFN / LMF / MulT train on "M" only
            for k in "TAV":
                d[f"regression_labels_{k}"] = np.asarray(sd.unimodal_labels.get(k, sd.labels), np.float32)
        out[s] = d
    return out


def data_fingerprint(data: MultimodalData, modalities="tav", zscore: bool = False, pad: str = "end") -> str:
    """A 20-hex-digit hash of what :func:`write_mmsa_pickle` writes for these arguments."""
    mods = _mods(data, modalities)
    h = hashlib.blake2b(digest_size=10)

    def add(*parts):
        for p in parts:
            if isinstance(p, np.ndarray):
                a = np.ascontiguousarray(p)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
            else:
                h.update(repr(p).encode())
            h.update(b"\x00")

    add(_PICKLE_FORMAT, data.dataset, mods, bool(zscore), *(("pad", pad) if pad != "end" else ()),
        *(("rule", "auto") if zscore else ()))  # zscore_data's rule (a real set's text only centred)
    for s in SPLITS:
        sd = data[s]
        add(s, "\x1f".join(sd.ids), "\x1f".join(sd.raw_text or []), np.asarray(sd.labels, np.float32))
        for k in sorted(sd.unimodal_labels) if data.dataset == "sims" else ():
            add(k, np.asarray(sd.unimodal_labels[k], np.float32))
        for m in mods:
            add(m, np.asarray(sd.features[m], np.float32), np.asarray(sd.lengths[m], np.int64))
    return h.hexdigest()


def write_mmsa_pickle(data: MultimodalData, work_dir, modalities="tav", zscore: bool = False,
                      pad: str = "end") -> Path:
    """Write (once) the MMSA pickle of ``data`` for ``modalities`` (``zscore``: z-scored first; ``pad``: where
    the zeros go) into ``work_dir``; returns its path, ``mmsa_<dataset>_<letters>[_z][_front]_<fingerprint>.pkl``.
    An existing file of that name (same data, modalities, zscore, pad) is reused as it is."""
    from ..utils import atomic_write_bytes

    mods = _mods(data, modalities)
    letters = "".join(LETTER[m] for m in mods)
    path = Path(work_dir) / f"mmsa_{data.dataset}_{letters}{'_z' if zscore else ''}" \
                            f"{'_front' if pad == 'front' else ''}_{data_fingerprint(data, mods, zscore, pad)}.pkl"
    if not path.exists():
        obj = mmsa_pickle_dict(zscore_data(data, mods) if zscore else data, mods, pad)
        if zscore:
            obj["meta"]["zscored"] = "train-split statistics over real steps (mcihn Normalizer)"
        atomic_write_bytes(path, pickle.dumps(obj, protocol=4))
    return path


# ----------------------------------------------------------------------------- running MMSA
class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _mmsa_log():
    """Collect the messages of MMSA's logger ("MMSA", INFO) while the block runs; restores it after."""
    logger = logging.getLogger("MMSA")
    old_level, collect = logger.level, _Collect()
    logger.setLevel(logging.INFO)
    logger.addHandler(collect)
    try:
        yield collect.lines
    finally:
        logger.removeHandler(collect)
        logger.setLevel(old_level)


@contextlib.contextmanager
def _quiet_tqdm(trainer_module, progress: bool):
    """MMSA's trainers wrap every loader in tqdm; without ``progress`` the bars are off (display only)."""
    if progress:
        yield
        return
    import functools

    old = trainer_module.tqdm
    trainer_module.tqdm = functools.partial(old, disable=True)
    try:
        yield
    finally:
        trainer_module.tqdm = old


def _torch_compat() -> None:
    """MMSA 2.2.1's MulT trainer builds ``ReduceLROnPlateau(..., verbose=True)``; torch >= 2.7 removed the
    ``verbose`` argument (it only printed lr changes). The trainer's module gets a subclass that drops it:
    the schedule itself is torch's, unchanged."""
    import inspect

    from torch.optim import lr_scheduler

    # (not ``import ... as``: the package's __init__ rebinds the name MULT to the trainer class)
    mult_trainer = importlib.import_module("MMSA.trains.singleTask.MULT")
    if "verbose" in inspect.signature(lr_scheduler.ReduceLROnPlateau.__init__).parameters:
        return

    class ReduceLROnPlateau(lr_scheduler.ReduceLROnPlateau):
        def __init__(self, *args, verbose=None, **kwargs):
            super().__init__(*args, **kwargs)

    mult_trainer.ReduceLROnPlateau = ReduceLROnPlateau


def _check_batches(model: str, data: MultimodalData, batch_size: int) -> None:
    splits = ("train", "test") if model in ("tfn", "lmf") else ("test",)
    for s in splits:
        n = len(data[s])
        if n % batch_size == 1:
            why = ("MMSA's BatchNorm1d refuses a training batch of one clip" if s == "train" else
                   "MMSA's do_test(return_sample_results=True) fails on a batch of one clip (preds.squeeze() is 0-d)")
            raise ValueError(f"MMSA {model}: split {s!r} has {n} clips = k x batch_size {batch_size} + 1: its last "
                             f"batch holds one clip and {why}; use a split size that leaves another remainder")


def _metrics_agree(ours: dict, mmsa: dict) -> bool:
    for k, v in ours.items():
        w = mmsa.get(k)
        if w is None:
            return False
        if math.isnan(v) or math.isnan(w):
            if not (math.isnan(v) and math.isnan(w)):
                return False
        elif abs(v - w) >= 1e-9:
            return False
    return True


def run_mmsa_model(model: str, data: MultimodalData, seed: int, work_dir, modalities: str = "tav",
                   zscore: bool = False, overrides: dict | None = None, *, config_dataset: str = "mosi",
                   device: str = "cpu", progress: bool = False, pad: str = "end") -> dict:
    """Train and test MMSA's own ``model`` ("tfn", "lmf" or "mult") on ``data`` for one seed (module docstring).

    ``work_dir``: where the MMSA pickle is written (and reused) and the checkpoint is kept while training
    (``work_dir/ckpt/``, deleted afterwards, also on error). ``modalities``: letters such as "tav", "ta", "t";
    absent ones are given as (N, 1, 1) zeros. ``zscore``: a z-scored copy (diagnostic). ``pad``: "end" or
    "front", where each sequence's zeros go (module docstring). ``overrides``:
    updates MMSA's config after it is read (e.g. ``{"early_stop": 1}``). ``config_dataset``: whose defaults
    of ``config_regression.json`` ("mosi", "mosei", "sims"); the metrics follow ``data.dataset`` either way.
    Threads are the caller's (``torch.set_num_threads``). Raises ``RuntimeError`` when MMSA is not available.

    Returns a dict:

    * ``test``: :func:`mcihn.metrics.evaluate` on MMSA's test predictions; ``mmsa_test``: MMSA's
      ``MetricsTop`` of them (plus "Loss"); ``metrics_match``: whether they agree;
    * ``valid_mae``: the best validation loss (MMSA's mean per-batch L1 at the best epoch, 4 digits);
      ``valid_loss``: per epoch; ``best_epoch``, ``epochs_run`` (1-based; MMSA stops ``early_stop`` epochs after
      the best);
    * ``params`` (trainable), ``hyper_parameters`` (MMSA's config, after ``overrides``), ``input_sizes``
      (``feature_dims`` and ``seq_lens`` the model was built with, text / audio / vision);
    * ``train_time_s`` (``do_train``), ``wall_s`` / ``cpu_s`` (seeding to the end of the test);
    * ``model``, ``seed``, ``dataset``, ``modalities``, ``absent``, ``zscore``, ``config_dataset``,
      ``mmsa_version``, ``pickle`` (path of the pickle MMSA read), ``mmsa_log`` (MMSA's log lines).
    """
    model = str(model).lower()
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, not {model!r}")
    mods = _mods(data, modalities)
    absent = [m for m in MODALITIES if m not in mods]
    if model == "mult" and absent:
        raise ValueError(f"MMSA's MulT needs all three modalities (its convolutions have no padding, so a "
                         f"one-step stand-in is too short); absent here: {absent}")
    reason = mmsa_available()
    if reason is not None:
        raise RuntimeError(reason)

    import torch
    from MMSA.config import get_config_regression
    from MMSA.data_loader import MMDataLoader
    from MMSA.models import AMIO
    from MMSA.trains import ATIO
    from MMSA.utils import count_parameters, setup_seed

    from ..metrics import evaluate

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _torch_compat()
    args = get_config_regression(model, config_dataset)  # MMSA's config_regression.json defaults
    if overrides:
        args.update(copy.deepcopy(dict(overrides)))
    hp = {k: (list(args[k]) if isinstance(args[k], (list, tuple)) else args[k]) for k in HP_KEYS if k in args}
    if model == "mult":
        short = {m: (data.dims[m][0], int(args[f"conv1d_kernel_size_{k}"]))
                 for m, k in zip(MODALITIES, "lav") if data.dims[m][0] < int(args[f"conv1d_kernel_size_{k}"])}
        if short:
            raise ValueError(f"MMSA's MulT: sequences shorter than its convolution kernels (T, kernel): {short}")
    _check_batches(model, data, int(args["batch_size"]))
    pkl = write_mmsa_pickle(data, work_dir, mods, zscore, pad)
    sizes = {m: (data.dims[m] if m in mods else (1, 1)) for m in MODALITIES}
    ckpt_dir = work_dir / "ckpt"
    ckpt_dir.mkdir(exist_ok=True)
    ckpt = ckpt_dir / f"mmsa_{model}_{seed}_{pkl.stem.rsplit('_', 1)[-1][:8]}_{os.getpid()}_{uuid.uuid4().hex[:8]}.pth"
    args.update(model_save_path=ckpt, device=torch.device(device), train_mode="regression",
                custom_feature=str(pkl), feature_T="", feature_A="", feature_V="", cur_seed=1,
                dataset_name=data.dataset,
                feature_dims=[int(sizes[m][1]) for m in MODALITIES],  # MOSI's in the config; MMDataset resets
                seq_lens=[int(sizes[m][0]) for m in MODALITIES])      # them from the pickle too
    trainer_module = importlib.import_module(f"MMSA.trains.singleTask.{MODELS[model]}")
    try:
        with _mmsa_log() as lines, _quiet_tqdm(trainer_module, progress):
            # --- MMSA.run._run, one seed (without the GPU calls and the sleep) ---
            setup_seed(seed)
            c0, w0 = time.process_time(), time.time()
            dataloader = MMDataLoader(args, 0)
            net = AMIO(args).to(args["device"])
            n_params = count_parameters(net)
            trainer = ATIO().getTrain(args)
            t_train = time.time()
            trainer.do_train(net, dataloader)
            train_time = time.time() - t_train
            net.load_state_dict(torch.load(args["model_save_path"]))
            net.to(args["device"])
            res = trainer.do_test(net, dataloader["test"], mode="TEST", return_sample_results=True)
            wall, cpu = time.time() - w0, time.process_time() - c0
            lines = list(lines)
    finally:
        ckpt.unlink(missing_ok=True)
    # --- what MMSA logged per epoch ---
    epochs = sum(1 for s in lines if s.startswith("TRAIN-"))
    val_loss = [float(re.search(r"Loss: ([-\d.naif]+)", s).group(1)) for s in lines if s.startswith("VAL-")]
    best_epoch = epochs - int(args["early_stop"])  # do_train stops exactly early_stop epochs after the best
    pred = np.asarray(res["SResults"], np.float32).ravel()
    true = np.asarray(res["Labels"], np.float32).ravel()
    ours = evaluate(pred, true, data.dataset)  # our metric function on MMSA's own test predictions
    mmsa = {k: float(v) for k, v in res.items() if k not in ("Ids", "SResults", "Features", "Labels")}
    check = evaluate(pred, true, data.dataset, round_digits=4) if data.dataset == "sims" else ours
    try:
        from importlib.metadata import version
        mmsa_version = version("MMSA")
    except Exception:  # noqa: BLE001
        mmsa_version = "?"
    return {"test": ours, "mmsa_test": mmsa, "metrics_match": _metrics_agree(check, mmsa),
            "valid_mae": min(val_loss) if val_loss else None, "valid_loss": val_loss,
            "best_epoch": best_epoch, "epochs_run": epochs, "params": int(n_params), "hyper_parameters": hp,
            "input_sizes": {"feature_dims": [int(v) for v in args["feature_dims"]],
                            "seq_lens": [int(v) for v in args["seq_lens"]]},
            "train_time_s": round(train_time, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "model": model, "seed": int(seed), "dataset": data.dataset, "modalities": "".join(LETTER[m] for m in mods),
            "absent": absent, "zscore": bool(zscore), "pad": pad, "config_dataset": config_dataset,
            "mmsa_version": mmsa_version, "pickle": str(pkl), "mmsa_log": lines}
