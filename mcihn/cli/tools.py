"""``bench`` (training or extraction throughput) and ``make-synthetic`` (the synthetic data as a pickle)."""
from __future__ import annotations

from .options import DATASET_CHOICES, NON_NEGATIVE, POSITIVE_INT, add_threads_arg


# ----------------------------------------------------------------------------- bench
def add_bench(sub):
    p = sub.add_parser("bench", help="training throughput, peak memory and model-FLOP utilisation")
    p.add_argument("--preset", default="paper", choices=["paper", "tiny"], help="model sizes to time (default paper)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="batch size (default 32)")
    p.add_argument("--steps", type=POSITIVE_INT, default=10, help="timed training steps (after warm-up)")
    add_threads_arg(p)
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (compilation timed apart)")
    p.add_argument("--mmd-samples", default="pooled", choices=["pooled", "tokens"], help="MMD samples: utterance vectors or all latent vectors")
    p.add_argument("--out", help="also write the figures as JSON")
    p.add_argument("--extract", action="store_true",
                   help="benchmark feature extraction instead (clips/s; --preset paper = full-size random encoders)")
    p.add_argument("--clips", type=POSITIVE_INT, default=24, help="with --extract: generated clips (4 s, 320x240, 25 fps)")


def cmd_bench(a) -> int:
    from ..bench import run_bench, run_extract_bench
    from ..utils import check_writable

    if a.out:
        check_writable(a.out, "--out", folder=False)
    if a.extract:
        res = run_extract_bench(size=a.preset, n_clips=a.clips, device=a.device, batch_size=min(a.batch_size, 8))
        if a.out:
            from ..utils import atomic_write_json
            atomic_write_json(a.out, res)
        return 0
    res = run_bench(preset=a.preset, device=a.device, batch_size=a.batch_size, steps=a.steps,
                    amp=a.amp, threads=a.threads, mmd_samples=a.mmd_samples, compile=a.compile)
    if a.out:
        from ..utils import atomic_write_json
        atomic_write_json(a.out, res)
    return 0


# ----------------------------------------------------------------------------- make-synthetic
def add_make_synthetic(sub):
    p = sub.add_parser("make-synthetic", help="write the synthetic dataset as an MMSA-format pickle")
    p.add_argument("--out", required=True, help="output pickle")
    p.add_argument("--kind", default="mosi", choices=DATASET_CHOICES, help="which dataset's shape, label range and split sizes")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data (0 is what train uses without --data)")
    p.add_argument("--noise", type=NON_NEGATIVE, default=1.5, help="feature noise (>= 0)")
    p.add_argument("--paper-dims", action="store_true", help="the paper's sizes: text 36x768, audio 128x512, vision 10x512")
    p.add_argument("--mmsa-dims", action="store_true",
                   help="the sizes of MMSA's pickle of --kind (MOSEI: text 50x768, audio 500x74, vision 375x35; ~5.8 GB)")


def cmd_make_synthetic(a) -> int:
    from ..data import PAPER_DIMS, write_synthetic
    from ..utils import check_writable

    check_writable(a.out, "--out", folder=False)
    if a.paper_dims and a.mmsa_dims:
        raise ValueError("--paper-dims and --mmsa-dims: choose one")
    dims = PAPER_DIMS if a.paper_dims else "mmsa" if a.mmsa_dims else None
    path = write_synthetic(a.out, kind=a.kind, seed=a.seed, dims=dims, noise=a.noise)
    print(f"wrote SYNTHETIC {a.kind.upper()}-shaped data to {path}")
    return 0
