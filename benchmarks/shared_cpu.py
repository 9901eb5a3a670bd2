"""Training time on a shared CPU: mcihn's thread default and OpenMP wait policy against torch's defaults.

    python benchmarks/shared_cpu.py                      # train --seeds 1111 --epochs 3 (tiny preset)
    python benchmarks/shared_cpu.py --epochs 2 --busy matmul --extra --preset paper

Times ``python -m mcihn train`` (one seed, a few epochs, embedded synthetic data) four ways, in one run:

    before  torch's default threads (one per core), libgomp's default wait policy (spin, then sleep)
    after   mcihn's default (``mcihn.utils.default_threads``) and OMP_WAIT_POLICY=PASSIVE

each alone and next to ONE busy process (a pure-Python loop, or a one-thread NumPy matmul loop),
and prints a table with the thread counts and the ratios. "before" imports torch before mcihn, so
libgomp starts before mcihn's ``os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")`` can act:
exactly the state of the code before that line existed. Timing is the wall time of the command
(start-up and the synthetic data included) and the mean epoch time from its history.json.

It is a script, not a test. On a machine that other people use, "alone" means "with whatever else
runs": the load average is printed next to every figure; compare the ratios of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUSY = {
    "python": "while True: pass",
    "matmul": "import numpy as np\na = np.random.rand(1024, 1024)\nwhile True: a @ a",
}
# "before": torch (and so libgomp) loaded before mcihn sets the wait policy, then the CLI as `python -m mcihn`
BEFORE = "import torch, runpy, sys; sys.argv[0] = 'mcihn'; runpy.run_module('mcihn', run_name='__main__')"


def torch_default_threads() -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def run_train(setting: str, args, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    train = ["train", "--seeds", "1111", "--epochs", str(args.epochs), "--quiet", "--out", str(out)]
    if args.preset:
        train += ["--preset", args.preset]
    if setting == "before":
        cmd = [sys.executable, "-c", BEFORE, *train, "--threads", str(args.torch_threads)]
    else:
        cmd = [sys.executable, "-m", "mcihn", *train]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    threads = next((line.split(":")[1].split()[0] for line in p.stdout.splitlines()
                    if line.startswith("torch CPU threads:")), "?")
    history = json.loads((out / "seed_1111" / "history.json").read_text())
    return {"wall_s": wall, "epoch_s": statistics.mean(r["time_s"] for r in history), "threads": threads,
            "load_before": load}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--preset", choices=["tiny", "paper"], help="default: train's (tiny on the synthetic data)")
    ap.add_argument("--busy", default="python", choices=sorted(BUSY), help="what the one other process runs")
    ap.add_argument("--out", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    args.torch_threads = torch_default_threads()
    print(f"{os.cpu_count()} CPUs, torch's default {args.torch_threads} threads; load average now "
          f"{os.getloadavg()[0]:.2f}; train --seeds 1111 --epochs {args.epochs}"
          f"{' --preset ' + args.preset if args.preset else ''}; busy process: {args.busy}")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("alone", "busy"):
            busy = None
            if load == "busy":
                benv = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
                busy = subprocess.Popen([sys.executable, "-c", BUSY[args.busy]], env=benv)
                time.sleep(1.0)
            try:
                for setting in ("before", "after"):
                    r = run_train(setting, args, Path(tmp) / f"{setting}_{load}")
                    res[(setting, load)] = r
                    print(f"  {setting:6s} {load:5s} threads {r['threads']:>2s}  wall {r['wall_s']:6.1f} s  "
                          f"epoch {r['epoch_s']:6.2f} s  (load average before {r['load_before']:.2f})", flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()

    print("\n| setting | threads | wait policy | alone: s/epoch | + 1 busy process: s/epoch | busy / alone |")
    print("|---|---|---|---|---|---|")
    for setting, policy in (("before", "libgomp default"), ("after", "PASSIVE")):
        a, b = res[(setting, "alone")], res[(setting, "busy")]
        print(f"| {setting} | {a['threads']} | {policy} | {a['epoch_s']:.2f} (wall {a['wall_s']:.0f} s) | "
              f"{b['epoch_s']:.2f} (wall {b['wall_s']:.0f} s) | {b['epoch_s'] / a['epoch_s']:.1f}x |")
    for load in ("alone", "busy"):
        ratio = res[("before", load)]["epoch_s"] / res[("after", load)]["epoch_s"]
        print(f"before / after, {load}: {ratio:.2f}x per epoch")
    if args.out:
        Path(args.out).write_text(json.dumps({f"{s}_{l}": r for (s, l), r in res.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
