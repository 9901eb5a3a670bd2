"""bench.run_bench on the CPU, at toy sizes: the figures it reports (the CUDA ones are in benchmarks/gpu.sh)."""
from __future__ import annotations

import pytest
import torch

from mcihn.bench import run_bench

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_run_bench_reports_throughput_memory_and_mfu():
    dims = {"text": (6, 8), "audio": (7, 5), "vision": (5, 6)}
    lines = []
    res = run_bench(preset="tiny", device="cpu", batch_size=4, steps=2, warmup=1, dims=dims, log=lines.append)
    assert res["samples_per_s"] > 0 and res["model_gflop_per_step"] > 0 and res["peak_memory_mb"] > 0
    assert res["mfu"] == res["mfu_fp32"] and "mfu_bf16" not in res  # on the CPU: the fp32 reference only
    assert res["torch_threads"] == torch.get_num_threads() == 1 and res["compile"] is False
    assert any("MFU" in line for line in lines) and any("peak memory" in line for line in lines)
