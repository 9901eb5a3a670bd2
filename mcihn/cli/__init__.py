"""Command line: ``python -m mcihn {train, evaluate, extract, predict, experiment, robustness, bench, make-synthetic}``.

    python -m mcihn train --out runs/demo                     # embedded SYNTHETIC MOSI-shaped data, tiny preset
    python -m mcihn train --data MOSI/unaligned_50.pkl --out runs/mosi   # the real thing (auto preset: sizes from the data)
    python -m mcihn train --model tfn --out runs/tfn          # a baseline: tfn, lmf, mult, late
    python -m mcihn evaluate --checkpoint runs/mosi/seed_1111/best.pt --data MOSI/unaligned_50.pkl
    python -m mcihn extract --dataset-dir MOSI_raw --out mosi_clip.pkl       # raw clips -> MMSA pickle
    python -m mcihn predict --checkpoint runs/mosi/seed_1111/best.pt --video clip.mp4 --text "..."
    python -m mcihn experiment table2 --out runs/t2           # every Table 2 model over 5 seeds
    python -m mcihn robustness --checkpoint runs/t2/tfn/seed_1111/best.pt --out runs/t2/robust_tfn
    python -m mcihn bench --preset paper

One module per group of commands, each with its options beside the code it runs::

    options.py      option types, choices read from the registries, options several commands share
    train.py        train, evaluate
    experiment.py   experiment (table2, table3, suite)
    tune.py         tune
    robustness.py   robustness
    extract.py      extract, predict
    tools.py        bench, make-synthetic

A command is a pair (add its parser, run it) in :data:`COMMANDS`; :func:`main` runs one and turns its
errors, Ctrl-C and SIGTERM into one line and an exit status.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import sys
import warnings
from pathlib import Path

from . import experiment, extract, robustness, tools, train, tune
from .options import apply_threads

#: Every command: name -> (adds its parser, runs it), in the order ``--help`` lists them.
COMMANDS = {
    "train": (train.add_train, train.cmd_train),
    "extract": (extract.add_extract, extract.cmd_extract),
    "predict": (extract.add_predict, extract.cmd_predict),
    "experiment": (experiment.add_experiment, experiment.cmd_experiment),
    "robustness": (robustness.add_robustness, robustness.cmd_robustness),
    "tune": (tune.add_tune, tune.cmd_tune),
    "evaluate": (train.add_evaluate, train.cmd_evaluate),
    "bench": (tools.add_bench, tools.cmd_bench),
    "make-synthetic": (tools.add_make_synthetic, tools.cmd_make_synthetic),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mcihn", description="MCIHN multimodal sentiment analysis")
    sub = ap.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    from ..data import DataFormatError
    from ..training.trainer import NonFiniteLossError
    with warnings.catch_warnings(), _sigterm_as_interrupt():
        warnings.showwarning = _print_warning
        try:
            apply_threads(a)
            return COMMANDS[a.command][1](a)
        except NonFiniteLossError as e:
            print(f"training stopped: {e}", file=sys.stderr)
            return 3
        except OSError as e:
            if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                print(f"error: no space left on device while writing {e.filename or 'a file'}; {_on_disk_full(a)}",
                      file=sys.stderr)
            else:
                print(f"error: {e}", file=sys.stderr)
            return 2
        except (DataFormatError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except Terminated:
            print(f"\nterminated (SIGTERM): {_on_interrupt(a)}", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print(f"\ninterrupted: {_on_interrupt(a)}", file=sys.stderr)
            return 130


# ----------------------------------------------------------------------------- interruptions and full disks, in one line
class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout``, Slurm and ``docker stop`` send), raised in the main thread as a Ctrl-C is."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a command runs, SIGTERM raises :class:`Terminated` (once: a second one during the clean-up is ignored)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _on_interrupt(a) -> str:
    """What a Ctrl-C or SIGTERM leaves behind, and how to go on (one line)."""
    if a.command == "experiment" and a.table == "suite":
        return (f"finished runs are kept under {Path(a.out) / 'runs'} (one record each); run the same command with "
                "--resume to continue: unfinished runs start again")
    if a.command in ("train", "experiment"):
        return (f"finished epochs are saved under {a.out} (seed_*/last.pt, or seed_*/start_*/last.pt); run the same command with --resume "
                "to continue")
    if a.command == "tune":
        return (f"finished trials are kept in the study and listed in {Path(a.out) / 'trials.csv'} (best.json: the "
                "best so far); run the same command again to continue: the interrupted trial is run again")
    if a.command == "extract":
        cache = a.cache_dir or f"{a.out}.cache"
        return f"finished clips are cached in {cache}; run the same command again to continue"
    return "nothing was written"


def _on_disk_full(a) -> str:
    """How to go on after a write failed for want of space (one line)."""
    if a.command == "experiment" and a.table == "suite":
        return "free some space, then run the same command with --resume: the finished runs' records are kept"
    if a.command in ("train", "experiment"):
        return "free some space, then run the same command with --resume: the finished epochs are kept"
    if a.command == "tune":
        return "free some space, then run the same command again: the finished trials are kept in the study"
    if a.command == "extract":
        return "free some space, then run the same command again: the finished clips are cached"
    return "free some space and run the command again; no half-written file was left"


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line ("warning: FILE: split 'test', field 'id': ..."), without Python's source line."""
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
