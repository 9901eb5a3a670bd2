"""What the commands' options share: value types checked by argparse, the choices read from their
registries, the options of the commands that train over seeds, and ``--threads``."""
from __future__ import annotations

import argparse
import math

from ..data.mmsa import LABEL_RANGE
from ..modalities import parse_modalities
from ..model.config import PRESETS
from ..training.registry import MODEL_KINDS

# ----------------------------------------------------------------------------- choices, read from their registries
#: ``--dataset``: the datasets of ``mcihn.data.mmsa.LABEL_RANGE``.
DATASET_CHOICES = tuple(LABEL_RANGE)
#: ``--preset``: the presets of ``mcihn.model.config.PRESETS``.
PRESET_CHOICES = tuple(PRESETS)
#: ``--model`` takes ``mcihn.training.registry.MODEL_KINDS``; its baselines, for help texts.
BASELINES = ", ".join(k for k in MODEL_KINDS if k != "mcihn")


# ----------------------------------------------------------------------------- option values, checked by argparse
def int_from(lo: int):
    """argparse type: an integer >= lo (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value
    parse.__name__ = f"integer >= {lo}"
    return parse


def float_in(lo: float, hi: float = math.inf, lo_open: bool = False):
    """argparse type: a finite number in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
            bounds = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


def modalities_arg(text: str) -> str:
    """argparse type of --modalities: a non-empty subset of t, a, v, each letter once."""
    try:
        parse_modalities(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("modalities: ")) from None
    return text


modalities_arg.__name__ = "modalities"


class Seeds(argparse.Action):
    """--seeds: each seed once (a seed given twice would train the same run twice and report a spread of 0)."""

    def __call__(self, parser, namespace, values, option_string=None):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            parser.error(f"argument {option_string}: seed(s) {', '.join(map(str, twice))} given more than once; "
                         "each seed trains one run")
        setattr(namespace, self.dest, values)


POSITIVE_INT, COUNT = int_from(1), int_from(0)
POSITIVE, NON_NEGATIVE, RATE = float_in(0, lo_open=True), float_in(0), float_in(0, 1)


# ----------------------------------------------------------------------------- options several commands share
def add_run_args(p, resume: str, out: str) -> None:
    """The options every command that trains over seeds shares (train, experiment)."""
    p.add_argument("--seeds", type=int, nargs="+", action=Seeds, help="default: 1111 1112 1113 1114 1115 (as MMSA)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA only)")
    p.add_argument("--resume", action="store_true", help=resume)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_arg(p)
    p.add_argument("--out", required=True, help=out)


def add_threads_arg(p) -> None:
    """``--threads N`` of every command that trains or extracts (applied by :func:`apply_threads`)."""
    p.add_argument("--threads", type=POSITIVE_INT, metavar="N",
                   help="torch CPU threads (default: OMP_NUM_THREADS if set, else 1 for the tiny preset and "
                        "one per physical core otherwise; see mcihn.utils.default_threads)")


def _threads_preset(a) -> str | None:
    """The preset a command will run, as far as the command line says (None: large models or unknown)."""
    if a.command in ("train", "experiment", "tune"):
        return a.preset or ("auto" if a.data else "tiny")
    if a.command == "bench":
        return a.preset
    return None


def apply_threads(a) -> int | None:
    """Set torch's CPU threads for command ``a`` (``--threads`` or the default); None if it has no such flag."""
    if not hasattr(a, "threads"):
        return None
    from ..utils import set_threads
    a.threads_asked = a.threads  # None when --threads was not given
    a.threads = set_threads(a.threads, preset=_threads_preset(a))
    return a.threads
