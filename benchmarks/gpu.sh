#!/usr/bin/env bash
# The GPU checks of issue 14, prepared to run in one go on a CUDA machine, in under 8 minutes:
#
#   1. MOSI-size synthetic data with the paper's feature sizes (make-synthetic --paper-dims), then
#      train --preset paper for 5 seeds on it: the wall time of the training (data generation excluded)
#   2. python -m mcihn bench --device cuda --amp (bf16): samples/s, peak GPU memory, MFU against a bf16
#      matmul measured in the same run
#   3. pytest -m gpu (tests/test_gpu.py: same seed same metrics, bf16 AMP trains, fused attention)
#   then bench fp32 (paper and tiny presets) and bench --extract --preset paper (full-size random encoders)
#
# Usage:  bash benchmarks/gpu.sh [OUT_DIR]        (PYTHON=... to choose the interpreter)
# Every step has its own time limit; a failed step is reported and the others still run; the exit
# status is 1 if any step failed. Without CUDA it prints why and exits 0, having run nothing.
set -u
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "benchmarks/gpu.sh: no CUDA device ($PYTHON: torch.cuda.is_available() is False, or torch is missing);" \
         "nothing run. Run it on a machine with an NVIDIA GPU."
    exit 0
fi
OUT=${1:-$(mktemp -d -t mcihn_gpu.XXXXXX)}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # the CPU only feeds the GPU here
FAILED=()
T_START=$(date +%s)

step() {  # step NAME SECONDS COMMAND...: run with a time limit, report how it went
    local name=$1 limit=$2; shift 2
    echo
    echo "=== $name  (limit ${limit} s; $(( $(date +%s) - T_START )) s elapsed)"
    local t0=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    local dt="$(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 )))"
    if [ $rc -eq 0 ]; then echo "--- $name: ok, ${dt} s"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "--- $name: TIMED OUT after ${limit} s"; FAILED+=("$name (timeout)")
    else echo "--- $name: FAILED (exit $rc) after ${dt} s"; FAILED+=("$name (exit $rc)"); fi
    return $rc
}

"$PYTHON" - <<'EOF'
import torch
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {p.name}, {p.total_memory / 2**30:.0f} GiB, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
EOF

# Most important first (the targets of issue 21), so that a run cut short still answers them.
# 1. 5 seeds of the paper preset on MOSI-size data with the paper's sizes (data generation not timed)
step "make-synthetic --paper-dims" 60 "$PYTHON" -m mcihn make-synthetic --paper-dims --out "$OUT/mosi_paper_dims.pkl"
step "train paper, 5 seeds" 200 "$PYTHON" -m mcihn train --data "$OUT/mosi_paper_dims.pkl" --preset paper --device cuda \
    --quiet --out "$OUT/train_paper"
"$PYTHON" - "$OUT/train_paper" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for s in sorted(out.glob("seed_*")):
    h = json.loads((s / "history.json").read_text()) if (s / "history.json").exists() else []
    r = json.loads((s / "result.json").read_text()) if (s / "result.json").exists() else {}
    print(f"  {s.name}: {len(h)} epochs, {sum(e['time_s'] for e in h):.1f} s in epochs"
          + (f", train_time_s {r['train_time_s']}, test MAE {r['test']['MAE']:.4f}" if r else " (unfinished)"))
PYEOF

# 2. training throughput (~20-40 s each: flop count, warm-up, 30 timed steps, two reference matmuls)
step "bench paper bf16" 80 "$PYTHON" -m mcihn bench --device cuda --preset paper --steps 30 --amp --out "$OUT/bench_paper_bf16.json"

# 3. the GPU tests (only tests/test_gpu.py is collected: the other test files need the dev extras)
step "pytest -m gpu" 100 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider -o addopts="-ra" tests/test_gpu.py

step "bench paper fp32" 80 "$PYTHON" -m mcihn bench --device cuda --preset paper --steps 30 --out "$OUT/bench_paper_fp32.json"
step "bench tiny fp32" 50 "$PYTHON" -m mcihn bench --device cuda --preset tiny --steps 30 --out "$OUT/bench_tiny_fp32.json"

# 4. feature extraction with full-size random-weight encoders (writing the models to disk is not timed)
step "bench --extract paper" 120 "$PYTHON" -m mcihn bench --extract --preset paper --device cuda --out "$OUT/bench_extract.json"

echo
echo "=== done in $(( $(date +%s) - T_START )) s; JSON under $OUT"
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "all steps ok"
