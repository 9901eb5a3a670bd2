"""Training benchmark: throughput, peak memory and model-FLOP utilisation (MFU).

One *training step* is the whole of Algorithm 1 on one batch: reconstruction,
discriminator, generator and main phases, forward and backward. Inputs have the
paper's sizes (Sec. 4.3): vision 10x512, text 36x768, audio 128x512; batch 32.

* FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one
  real step (matrix multiplications and convolutions, forward and backward; the
  elementwise work is not counted, as usual for MFU).
* The reference is a large matrix multiplication timed in the same process, same
  device, same dtype: MFU = (model FLOPs / step time) / (reference FLOP/s). It says
  how much of what this machine can actually do in matmuls the model gets. On CUDA both
  an fp32 and a bf16 matmul are timed, and the MFU is given against each (``mfu_fp32``,
  ``mfu_bf16``; ``mfu`` is the one of the dtype the step runs in).
* Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (and ``max_memory_reserved``) over
  the timed steps; on CPU the process's peak resident set size (includes Python and torch).
* ``compile=True``: ``torch.compile`` on each phase's loss (see
  :func:`mcihn.training.runner.compile_phases`); the first steps (compilation) are timed apart.
"""
from __future__ import annotations

import platform
import resource
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model.config import MCIHNConfig
from .data import PAPER_DIMS
from .training.trainer import Trainer
from .utils import resolve_device, set_seed


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_batch(dims: dict, batch_size: int, device) -> dict:
    """A batch with the given (T, D) per modality and random valid lengths >= T/2."""
    g = torch.Generator().manual_seed(0)
    batch = {"label": (torch.rand(batch_size, generator=g) * 6 - 3)}
    for m, (T, D) in dims.items():
        batch[m] = torch.randn(batch_size, T, D, generator=g)
        lengths = torch.randint(max(1, T // 2), T + 1, (batch_size,), generator=g)
        batch[m + "_mask"] = torch.arange(T)[None, :] < lengths[:, None]
        batch[m] = batch[m] * batch[m + "_mask"][..., None]
    return {k: v.to(device) for k, v in batch.items()}


def matmul_flops_per_s(device, dtype=torch.float32, n: int = 2048, seconds: float = 1.0) -> float:
    """Achieved FLOP/s of an n x n x n matmul (2 n^3 FLOPs each) on this device."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        if reps % 4 == 0:
            _sync(device)
            if time.perf_counter() - t0 > seconds:
                break
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def run_bench(preset: str = "paper", device="auto", batch_size: int = 32, steps: int = 10, warmup: int = 3,
              amp: bool = False, threads: int | None = None, dims: dict | None = None, mmd_samples: str = "pooled",
              compile: bool = False, log=print) -> dict:
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (timed training steps), got {steps}")
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device) if isinstance(device, str) else device
    dims = dims or PAPER_DIMS
    set_seed(0, deterministic=False)
    cfg = MCIHNConfig.from_preset(preset, batch_size=batch_size, mmd_samples=mmd_samples)
    trainer = Trainer(cfg, dims, device=device, amp=amp)
    batch = random_batch(dims, batch_size, device)
    trainer.model.train()

    with FlopCounterMode(display=False) as counter:  # one real step, every phase of the model
        trainer.train_batch(batch)
    flops = counter.get_total_flops()
    compile_s = None
    if compile:
        from .training.runner import compile_phases
        compile_phases(trainer)
        _sync(device)
        t0 = time.perf_counter()
        trainer.train_batch(batch)  # compiles
        _sync(device)
        compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        trainer.train_batch(batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_batch(batch)
    _sync(device)
    step_s = (time.perf_counter() - t0) / steps
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20  # before the reference matmuls allocate
        reserved_mb = torch.cuda.max_memory_reserved(device) / 2**20
        where = torch.cuda.get_device_name(device)
        refs = {"fp32": matmul_flops_per_s(device, torch.float32), "bf16": matmul_flops_per_s(device, torch.bfloat16)}
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
        refs = {"fp32": matmul_flops_per_s(device, torch.float32)}
    ref = refs["bf16" if trainer.amp else "fp32"]
    res = {
        "device": str(device), "device_name": where, "preset": preset, "batch_size": batch_size,
        "dims": {m: list(v) for m, v in dims.items()}, "amp": trainer.amp, "steps": steps, "mmd_samples": mmd_samples,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "step_ms": step_s * 1e3, "samples_per_s": batch_size / step_s,
        "model_gflop_per_step": flops / 1e9, "model_gflop_per_s": flops / step_s / 1e9,
        "matmul_gflop_per_s": ref / 1e9, "mfu": flops / step_s / ref,
        **{f"matmul_{k}_gflop_per_s": v / 1e9 for k, v in refs.items()},
        **{f"mfu_{k}": flops / step_s / v for k, v in refs.items()},
        "peak_memory_mb": peak_mb, "torch_threads": torch.get_num_threads(), "compile": bool(compile),
        "compile_s": compile_s, "torch": torch.__version__, "python": sys.version.split()[0],
    }
    if device.type == "cuda":
        res["peak_memory_reserved_mb"] = reserved_mb
    log(f"MCIHN training benchmark ({preset} preset, batch {batch_size}, schedule {trainer.cfg.schedule}: phases "
        f"{', '.join(p.key for p in trainer.phases)} of Algorithm 1, MMD on {mmd_samples} samples)")
    log(f"  device          {res['device']} ({where}){'  bf16 autocast' if trainer.amp else ''}")
    log(f"  inputs          " + ", ".join(f"{m} {T}x{D}" for m, (T, D) in dims.items()))
    log(f"  parameters      {res['parameters'] / 1e6:.2f} M")
    log(f"  step time       {res['step_ms']:.1f} ms   ->  {res['samples_per_s']:.1f} samples/s")
    log(f"  model FLOPs     {res['model_gflop_per_step']:.2f} GFLOP/step = {res['model_gflop_per_s']:.1f} GFLOP/s")
    for k, v in refs.items():
        log(f"  matmul {k:4s}     {v / 1e9:.1f} GFLOP/s (measured now, same device)"
            + ("   <- step dtype" if len(refs) > 1 and v == ref else ""))
    log(f"  MFU             {100 * res['mfu']:.1f} %" + (
        "  (" + ", ".join(f"{100 * res['mfu_' + k]:.1f} % of {k}" for k in refs) + ")" if len(refs) > 1 else ""))
    if device.type == "cuda":
        log(f"  peak memory     {peak_mb:.0f} MB CUDA allocated, {reserved_mb:.0f} MB reserved (timed steps)")
    else:
        log(f"  peak memory     {peak_mb:.0f} MB (process RSS)")
    if compile_s is not None:
        log(f"  torch.compile   first step {compile_s:.1f} s (compilation), not in the step time")
    return res


def run_extract_bench(size: str = "tiny", n_clips: int = 24, seconds: float = 4.0, device="auto",
                      batch_size: int = 8, log=print) -> dict:
    """Feature-extraction throughput (clips/s) on generated clips with random-weight encoders.

    ``size="tiny"``: the toy CLIP / BERT / wav2vec2 of :mod:`mcihn.extraction.fixtures`; ``size="paper"``: full-size
    random-weight models of the paper's architectures (ViT-B/32, bert-base, wav2vec2-large-XLSR), whose
    compute equals the real ones'. Clips are ``seconds`` long at 25 fps, 320x240, with audio (MOSI's are
    ~4 s on average). Timing covers decoding + encoding + writing, not model loading.
    """
    import tempfile
    from pathlib import Path

    from .extraction.dataset import extract_dataset
    from .extraction.features import ExtractionConfig
    from .extraction.fixtures import make_clip_folder, make_tiny_models

    device = resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_tiny_models(tmp / "models", size=size)
        make_clip_folder(tmp / "ds", n_clips=n_clips, seconds=seconds, fps=25, size=(320, 240))
        s = extract_dataset(tmp / "ds", tmp / "out.pkl", ExtractionConfig(**models, batch_size=batch_size),
                            device=device, progress=False, log=lambda *a: None)
    res = {"size": size, "device": str(device), "clips": n_clips, "clip_seconds": seconds, "batch_size": batch_size,
           "clips_per_s": s["clips_per_s"], "seconds": s["seconds"], "load_seconds": s["load_seconds"],
           "torch_threads": torch.get_num_threads(),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
           else f"{platform.machine()}, {torch.get_num_threads()} threads"}
    log(f"extraction, {size} encoders on {res['device']} ({res['device_name']}): {n_clips} clips of {seconds:.0f} s "
        f"in {s['seconds']:.1f} s = {s['clips_per_s']:.2f} clips/s (model loading {s['load_seconds']:.1f} s, "
        f"not counted)")
    return res
