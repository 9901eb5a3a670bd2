"""Bad inputs, one table: every case runs the command line and gets a clear, one-line answer.

Each case builds its input in a temporary folder and says what the command must do: its exit code, what the
message must name (the file, and the split / field / sample or the option where there is one), and which paths
must not exist afterwards. For every case the test also checks that no traceback is printed and that no
temporary file of a write is left anywhere in the case's folder or in the shared run.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SMALL_DIMS
from mcihn.cli import main
from mcihn.data import make_synthetic, write_synthetic

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SPLITS = {"train": 40, "valid": 16, "test": 16}
def train(*args, epochs: int = 1, seeds=(1,)) -> list:
    """``python -m mcihn train`` of the tiny preset, quiet, plus ``args``."""
    return ["train", "--preset", "tiny", "--epochs", str(epochs), "--seeds", *map(str, seeds), "--quiet", *args]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A small MOSI-shaped pickle and one trained checkpoint of it (1 seed, 1 epoch)."""
    d = tmp_path_factory.mktemp("shared")
    write_synthetic(d / "data.pkl", splits=SPLITS, dims=SMALL_DIMS, seed=1)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(train("--data", str(d / "data.pkl"), "--out", str(d / "run"))) == 0
    finally:
        torch.set_num_threads(old)
    return d


@dataclass
class Expect:
    argv: list
    rc: int = 2
    err: tuple = ()              # substrings of stderr (the file, split, field, option ...)
    out: tuple = ()              # substrings of stdout
    not_err: tuple = ()          # substrings stderr must not hold
    absent: tuple = ()           # paths that must not exist afterwards
    subprocess: bool = False     # run `python -m mcihn` (a real process: real warnings and exit code)
    one_line: bool = True        # stderr is a single line (argparse's usage line aside)
    check: object = None         # check(tmp) -> None, more assertions on what was written


def _pickle_with(tmp: Path, name: str, edit, splits=SPLITS) -> Path:
    """A synthetic MOSI-shaped pickle with ``edit(obj)`` applied."""
    obj = make_synthetic(splits=dict(splits), dims=dict(SMALL_DIMS), seed=1)
    edit(obj)
    path = tmp / name
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def _results_have_undefined_corr(out: Path, n_seeds: int):
    def check(tmp):
        text = (out / "results.json").read_text()
        assert "NaN" not in text
        res = json.loads(text)
        assert res["mean"]["Corr"] is None and res["std"]["Corr"] is None
        assert [r["test"]["Corr"] for r in res["per_seed"]] == [None] * n_seeds
        assert isinstance(res["mean"]["MAE"], float)
    return check


# ----------------------------------------------------------------------------- the cases
def undefined_metric(tmp, shared, mp):
    """1. Corr of a 1-sample test split is undefined: 'n/a' in the table, null in results.json, exit 0."""
    data = _pickle_with(tmp, "one.pkl", lambda o: None, splits={**SPLITS, "test": 1})
    out = tmp / "run"
    return Expect(train("--data", str(data), "--out", str(out)), rc=0, out=("n/a", "results.json"),
                  one_line=False, check=_results_have_undefined_corr(out, 1))


def undefined_metric_tfn_two_seeds(tmp, shared, mp):
    """1. TFN, 2 test samples with one label (constant truth), mean ± std over two seeds with NaN."""
    def one_label(o):
        o["test"]["regression_labels"][:] = 0.4
    data = _pickle_with(tmp, "two.pkl", one_label, splits={**SPLITS, "test": 2})
    out = tmp / "run"
    return Expect(train("--model", "tfn", "--data", str(data), "--out", str(out), seeds=(1, 2)), rc=0, out=("n/a",),
                  one_line=False,
                  check=_results_have_undefined_corr(out, 2))


def undefined_metric_resume(tmp, shared, mp):
    """1. --resume of a finished run reads the null Corr back from result.json."""
    data = _pickle_with(tmp, "one.pkl", lambda o: None, splits={**SPLITS, "test": 1})
    out = tmp / "run"
    assert main(train("--data", str(data), "--out", str(out))) == 0
    return Expect(train("--data", str(data), "--out", str(out), "--resume"), rc=0,
                  out=("finished earlier", "n/a"), one_line=False, check=_results_have_undefined_corr(out, 1))


def evaluate_other_dataset(tmp, shared, mp):
    """2. A MOSI checkpoint on a SIMS pickle is refused, naming both."""
    sims = tmp / "sims.pkl"
    write_synthetic(sims, kind="sims", splits=SPLITS, dims=SMALL_DIMS)
    ck = shared / "run" / "seed_1" / "best.pt"
    report = tmp / "eval.json"
    return Expect(["evaluate", "--checkpoint", str(ck), "--data", str(sims), "--out", str(report)],
                  err=(str(sims), str(ck), "'sims'", "'mosi'"), absent=(report,))


class _Payload:
    """Runs os.mkdir(marker) when unpickled by an unrestricted loader."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _refused(tmp, zip_format: bool):
    marker, ck = tmp / "PWNED", tmp / "best.pt"
    obj = {"format": "mcihn-checkpoint-v1", "x": _Payload(marker)}
    if zip_format:
        torch.save(obj, ck)
    else:
        ck.write_bytes(pickle.dumps(obj, protocol=4))
    report = tmp / "eval.json"
    return Expect(["evaluate", "--checkpoint", str(ck), "--data", "unused.pkl", "--out", str(report)],
                  err=(str(ck), "unsafe", f"'{os.mkdir.__module__}.mkdir'"),
                  not_err=("weights_only", "UserWarning", "protocol"), absent=(marker, report), subprocess=True)


def refused_checkpoint_zip(tmp, shared, mp):
    """3. A __reduce__ payload saved with torch.save: refused, naming the global."""
    return _refused(tmp, zip_format=True)


def refused_checkpoint_plain_pickle(tmp, shared, mp):
    """3. The same payload as a plain protocol-4 pickle."""
    return _refused(tmp, zip_format=False)


def _bomb(tmp, payload: bytes):
    path = tmp / "bomb.pkl"
    path.write_bytes(payload)
    assert len(payload) < 64
    return Expect(train("--data", str(path), "--out", str(tmp / "run")), err=(str(path), "bytes"),
                  absent=(tmp / "run",))


def pickle_asks_for_a_huge_bytearray(tmp, shared, mp):
    """4. builtins.bytearray(10**15) from a 42-byte file."""
    return _bomb(tmp, b"cbuiltins\nbytearray\n(I1000000000000000\ntR.")


def pickle_asks_for_a_huge_array(tmp, shared, mp):
    """4. numpy.ndarray((10**6, 10**6)) from a 39-byte file."""
    return _bomb(tmp, b"cnumpy\nndarray\n((I1000000\nI1000000\nttR.")


def _label_csv(tmp, rows, encoding="utf-8") -> Path:
    d = tmp / "ds"
    (d / "Raw").mkdir(parents=True)
    lines = ["video_id,clip_id,text,label,mode"] + [",".join(r) for r in rows]
    (d / "label.csv").write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return d


def extract_without_test_rows(tmp, shared, mp):
    """5. label.csv without test clips: refused before any clip is extracted; no cache left."""
    d = _label_csv(tmp, [["v0", "1", "hello", "1.0", "train"], ["v0", "2", "bye", "-1.0", "valid"]])
    out = tmp / "feats.pkl"
    return Expect(["extract", "--dataset-dir", str(d), "--out", str(out), "--quiet"],
                  err=(str(d / "label.csv"), "'test'"), absent=(out, tmp / "feats.pkl.cache"))


def extract_into_a_folder(tmp, shared, mp):
    """5. --out is a folder: refused before anything is read."""
    d = _label_csv(tmp, [["v0", "1", "hello", "1.0", "train"]])
    (tmp / "out").mkdir()
    return Expect(["extract", "--dataset-dir", str(d), "--out", str(tmp / "out"), "--quiet"],
                  err=("--out", str(tmp / "out"), "folder"), absent=(tmp / "out.cache",))


def resume_removes_stale_temp_files(tmp, shared, mp):
    """6. A SIGKILL during an atomic write left .best.pt.*.tmp (0600); --resume removes it."""
    run = tmp / "run"
    shutil.copytree(shared / "run", run)
    stale = run / "seed_1" / ".best.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    stale.chmod(0o600)
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(run), "--resume"), rc=0,
                  out=("removed 1 temporary file", stale.name), one_line=False, absent=(stale,))


def out_below_a_file(tmp, shared, mp):
    """7. --out under a file: refused before the data is loaded or an epoch is trained."""
    (tmp / "afile").write_text("x")
    out = tmp / "afile" / "run"
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out)),
                  err=("--out", str(out), str(tmp / "afile")), not_err=("epoch",))


def out_not_writable(tmp, shared, mp):
    """7. A read-only --out folder (os.access says so; tests run as root, where chmod does not stop writes)."""
    ro = tmp / "readonly"
    ro.mkdir()
    real = os.access
    mp.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real(p, mode, *a, **k))
    out = ro / "run"
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out)),
                  err=("--out", str(out), "not writable"), absent=(out,))


def label_csv_not_utf8(tmp, shared, mp):
    """8. A Latin-1 label.csv: the file and the line of the bad byte."""
    d = _label_csv(tmp, [["v0", "1", "hello", "1.0", "train"], ["v0", "2", "caf\u00e9", "1.0", "test"]],
                   encoding="latin-1")
    return Expect(["extract", "--dataset-dir", str(d), "--out", str(tmp / "f.pkl"), "--quiet"],
                  err=(str(d / "label.csv"), "line 3", "0xe9", "UTF-8"), absent=(tmp / "f.pkl",))


def _edited_checkpoint(tmp, shared, edit, *named):
    ck = torch.load(shared / "run" / "seed_1" / "best.pt", weights_only=True)
    edit(ck)
    path = tmp / "edited.pt"
    torch.save(ck, path)
    report = tmp / "eval.json"
    return Expect(["evaluate", "--checkpoint", str(path), "--data", str(shared / "data.pkl"), "--out", str(report)],
                  err=(str(path), *named), not_err=("KeyError", "RuntimeError"), absent=(report,))


def checkpoint_without_normalizer(tmp, shared, mp):
    """9. Hand-edited checkpoints name the file and what is wrong."""
    return _edited_checkpoint(tmp, shared, lambda ck: ck.pop("normalizer"), "'normalizer'")


def checkpoint_missing_weights(tmp, shared, mp):
    first = "aae.text.encoder.pos"
    return _edited_checkpoint(tmp, shared, lambda ck: ck["model"].pop(first), f"missing '{first}'")


def checkpoint_with_other_latent_dim(tmp, shared, mp):
    return _edited_checkpoint(tmp, shared, lambda ck: ck["config"].update(latent_dim=64), "shape", "64")


def checkpoint_of_unknown_model(tmp, shared, mp):
    return _edited_checkpoint(tmp, shared, lambda ck: ck.update(model_kind="foo"), "'foo'")


def checkpoint_with_fractional_dims(tmp, shared, mp):
    return _edited_checkpoint(tmp, shared, lambda ck: ck["dims"].update(text=[6.5, 8]), "'text'", "6.5")


def _bad_flag(argv, flag, *absent):
    return Expect(argv, err=(f"argument {flag}",), absent=absent, one_line=False)


def bench_zero_steps(tmp, shared, mp):
    """10. Option values are checked before any work, naming the option."""
    return _bad_flag(["bench", "--steps", "0", "--preset", "tiny"], "--steps")


def synthetic_nan_noise(tmp, shared, mp):
    return _bad_flag(["make-synthetic", "--noise", "nan", "--out", str(tmp / "s.pkl")], "--noise", tmp / "s.pkl")


def negative_learning_rate(tmp, shared, mp):
    return _bad_flag(train("--lr", "-1", "--data", str(shared / "data.pkl"), "--out", str(tmp / "run")), "--lr",
                     tmp / "run")


def ctrl_c_during_training(tmp, shared, mp):
    """11. Ctrl-C in epoch 2: one line saying what is saved and how to resume, exit 130; epoch 1 kept."""
    from mcihn.training.trainer import Trainer

    real = Trainer.train_epoch

    def interrupted(self, train, epoch, *a, **k):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, train, epoch, *a, **k)
    mp.setattr(Trainer, "train_epoch", interrupted)
    out = tmp / "run"

    def check(tmp):
        assert torch.load(out / "seed_1" / "last.pt", weights_only=True)["epoch"] == 1
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out), epochs=2), rc=130,
                  err=("interrupted", str(out), "--resume"), absent=(out / "results.json",), check=check)


def _warned(tmp, shared, edit, *named):
    data = _pickle_with(tmp, "warn.pkl", edit)
    ck = shared / "run" / "seed_1" / "best.pt"
    return Expect(["evaluate", "--checkpoint", str(ck), "--data", str(data), "--out", str(tmp / "e.json")], rc=0,
                  err=("warning: ", str(data), *named), one_line=False)


def neg_inf_inside_real_steps(tmp, shared, mp):
    """11. -inf inside real time steps: set to 0 (as MMSA), one warning per split and field, with a count."""
    def edit(o):
        o["train"]["audio"][3, 0, :2] = -np.inf
        o["train"]["audio"][5, 0, 0] = -np.inf
    return _warned(tmp, shared, edit, "split 'train'", "field 'audio'", "sample 3", "3 value(s) of -inf")


def duplicate_ids(tmp, shared, mp):
    """11. A duplicate id within a split: a warning naming file, split and the id."""
    def edit(o):
        o["valid"]["id"][4] = o["valid"]["id"][2]
    return _warned(tmp, shared, edit, "split 'valid'", "field 'id'", "sample 4", "synthvalid_00002")


def ids_shared_by_test_and_train(tmp, shared, mp):
    """11. Test ids equal to train ids: leakage, warned with file, split and an example id."""
    def edit(o):
        o["test"]["id"][7] = o["train"]["id"][0]
    return _warned(tmp, shared, edit, "split 'test'", "also in split 'train'", "synthtrain_00000", "leakage")


CASES = [undefined_metric, undefined_metric_tfn_two_seeds, undefined_metric_resume, evaluate_other_dataset,
         refused_checkpoint_zip, refused_checkpoint_plain_pickle, pickle_asks_for_a_huge_bytearray,
         pickle_asks_for_a_huge_array, extract_without_test_rows, extract_into_a_folder,
         resume_removes_stale_temp_files, out_below_a_file, out_not_writable, label_csv_not_utf8,
         checkpoint_without_normalizer, checkpoint_missing_weights, checkpoint_with_other_latent_dim,
         checkpoint_of_unknown_model, checkpoint_with_fractional_dims, bench_zero_steps, synthetic_nan_noise,
         negative_learning_rate, ctrl_c_during_training, neg_inf_inside_real_steps, duplicate_ids,
         ids_shared_by_test_and_train]


def _run(e: Expect, capsys) -> tuple[int, str, str]:
    if e.subprocess:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        p = subprocess.run([sys.executable, "-m", "mcihn", *map(str, e.argv)], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=120)
        return p.returncode, p.stdout, p.stderr
    try:
        rc = main([str(a) for a in e.argv])
    except SystemExit as x:  # argparse: usage, then "error: argument --flag: ..."
        rc = x.code
    except KeyboardInterrupt:  # not handled by main: fail this case, not the whole session
        rc = "KeyboardInterrupt escaped main()"
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input(case, tmp_path, shared, monkeypatch, capsys):
    e = case(tmp_path, shared, monkeypatch)
    capsys.readouterr()  # what the set-up printed
    rc, out, err = _run(e, capsys)
    assert rc == e.rc, (out, err)
    assert "Traceback" not in out + err, err
    for s in e.err:
        assert s in err, (s, err)
    for s in e.out:
        assert s in out, (s, out)
    for s in e.not_err:
        assert s not in err, (s, err)
    if e.one_line and e.rc != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
    for p in e.absent:
        assert not Path(p).exists(), p
    for folder in (tmp_path, shared):
        assert not [p for p in Path(folder).rglob("*.tmp")], "a temporary file was left"
    if e.check is not None:
        e.check(tmp_path)
