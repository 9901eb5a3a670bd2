"""The CPU thread helper (mcihn.utils.set_threads / default_threads), the --threads flag and the OpenMP wait policy."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from mcihn import utils
from mcihn.cli import apply_threads, build_parser


@pytest.fixture(autouse=True)
def keep_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def test_set_threads_sets_torch(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert utils.set_threads(3) == 3 and torch.get_num_threads() == 3
    assert utils.set_threads(1) == 1 and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="at least 1"):
        utils.set_threads(0)


def test_default_threads(monkeypatch):
    monkeypatch.setattr(utils, "usable_cores", lambda: 8)
    monkeypatch.setattr(utils, "TORCH_DEFAULT_THREADS", 4)  # torch: one per physical core
    assert utils.default_threads("tiny") == 1  # small ops: one thread
    assert utils.default_threads("paper") == 4 and utils.default_threads(None) == 4  # large ops: torch's default
    monkeypatch.setattr(utils, "usable_cores", lambda: 2)  # an affinity mask of 2 cores
    assert utils.default_threads("paper") == 2


def test_environment_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert utils.set_threads(None, preset="tiny") == 2
    assert utils.set_threads(1, preset="paper") == 1  # the flag wins over the environment
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert utils.set_threads(None, preset="tiny") == 1


@pytest.mark.parametrize("argv, preset", [
    (["train", "--out", "x"], "tiny"), (["train", "--out", "x", "--data", "d.pkl"], "auto"),
    (["experiment", "table2", "--out", "x"], "tiny"), (["bench", "--preset", "tiny"], "tiny"),
    (["evaluate", "--checkpoint", "c", "--data", "d"], None), (["robustness", "--checkpoint", "c", "--out", "x"], None),
    (["extract", "--dataset-dir", "d", "--out", "o"], None),
    (["predict", "--checkpoint", "c", "--video", "v", "--text", "t"], None),
])
def test_every_training_or_extracting_command_has_threads(argv, preset, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = []
    monkeypatch.setattr(utils, "default_threads", lambda p=None: seen.append(p) or 1)
    a = build_parser().parse_args(argv + ["--threads", "3"])
    assert apply_threads(a) == 3 and torch.get_num_threads() == 3 and not seen
    a = build_parser().parse_args(argv)
    assert apply_threads(a) == 1 and seen == [preset]  # the default, for the preset the command will run


def test_no_threads_flag_elsewhere():
    a = build_parser().parse_args(["make-synthetic", "--out", "x.pkl"])
    assert apply_threads(a) is None


def test_import_sets_passive_wait_policy():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, mcihn; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # an explicit choice is kept
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
