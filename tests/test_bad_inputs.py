"""Bad inputs, one table: every case runs the command line and gets a clear, one-line answer.

Each case builds its input in a temporary folder and says what the command must do: its exit code, what the
message must name (the file, and the split / field / sample or the option where there is one), and which paths
must not exist afterwards. For every case the test also checks that no traceback is printed and that no
temporary file of a write is left anywhere in the case's folder or in the shared run (a user's own ``*.tmp``
files, which a case names in ``keep``, must be left alone).
"""
from __future__ import annotations

import csv
import errno
import gzip
import json
import os
import pickle
import shutil
import signal
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
from mcihn.utils import TEMP_SUFFIX, host_name

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
    not_out: tuple = ()          # substrings stdout must not hold
    absent: tuple = ()           # paths that must not exist afterwards
    subprocess: bool = False     # run `python -m mcihn` (a real process: real warnings and exit code)
    one_line: bool = True        # stderr is a single line (argparse's usage line aside)
    check: object = None         # check(tmp) -> None, more assertions on what was written
    keep: tuple = ()             # paths that must still exist afterwards (a user's files)
    cleanup: object = None       # cleanup() -> None, run after the case whatever happened (a helper process)


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


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def resume_removes_stale_temp_files(tmp, shared, mp):
    """6. A SIGKILL during an atomic write left .best.pt.<host>.<pid>.*.mcihn-tmp (0600); --resume removes it, but
    neither a user's file of a similar name nor the temporary file of a live process."""
    run = tmp / "run"
    shutil.copytree(shared / "run", run)
    seed = run / "seed_1"
    stale = seed / f".best.pt.{host_name()}.{_dead_pid()}.k1ll3d{TEMP_SUFFIX}"
    stale.write_bytes(b"half a checkpoint")
    stale.chmod(0o600)
    live = seed / f".history.json.{host_name()}.1.wr1t1ng{TEMP_SUFFIX}"  # pid 1 runs: a write in flight
    live.write_bytes(b"{")
    user = seed / ".best.pt.notes.tmp"
    user.write_text("my notes")
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(run), "--resume"), rc=0,
                  out=("removed 1 temporary file", stale.name), not_out=(user.name, live.name), one_line=False,
                  absent=(stale,), keep=(user, live))


def fresh_train_keeps_user_tmp_files(tmp, shared, mp):
    """2/3. A user's .thesis.draft.tmp in a fresh --out is not touched ("removed 1 temporary file" was a bug)."""
    out = tmp / "run"
    out.mkdir()
    notes = out / ".thesis.draft.tmp"
    notes.write_text("notes")
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out)), rc=0, not_out=("removed",),
                  one_line=False, keep=(notes,), check=lambda tmp: notes.read_text() == "notes" or pytest.fail("edited"))


def out_in_use_by_another_process(tmp, shared, mp):
    """2. Another process holds --out: refused at once, naming the folder and that process; nothing written."""
    out = tmp / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom mcihn.utils import OutLock\nOutLock(sys.argv[1]).acquire()\n"
                               "print('locked', flush=True)\ntime.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert holder.stdout.readline().strip() == "locked"

    def cleanup():
        holder.kill()
        holder.wait()
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out)),
                  err=("--out", str(out), "in use", f"process {holder.pid}"), absent=(out / "seed_1",),
                  cleanup=cleanup)


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
    return _warned(tmp, shared, edit, "split 'valid'", "field 'id'", "sample 4", "synthvalid_spk0000$_$2")


def ids_shared_by_test_and_train(tmp, shared, mp):
    """11. Test ids equal to train ids: leakage, warned with file, split and an example id."""
    def edit(o):
        o["test"]["id"][7] = o["train"]["id"][0]
    return _warned(tmp, shared, edit, "split 'test'", "also in split 'train'", "synthtrain_spk0000$_$0", "leakage")


def duplicate_seeds(tmp, shared, mp):
    """4. --seeds 1 1 would train seed 1 twice and report a spread of 0 over two "seeds"."""
    return _bad_flag(train("--data", str(shared / "data.pkl"), "--out", str(tmp / "run"), seeds=(1, 1)), "--seeds",
                     tmp / "run")


def _tune(tmp, shared, *args, trials: int = 1) -> list:
    return ["tune", "--data", str(shared / "data.pkl"), "--preset", "tiny", "--trials", str(trials), "--seeds", "1",
            "--epochs", "1", "--quiet", *args]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ctrl_c_during_tune(tmp, shared, mp):
    """5. Ctrl-C in the second trial: one line (no Optuna traceback, no --resume, which tune has not), exit 130;
    trials.csv and best.json hold the finished trial; the interrupted one is failed and queued again."""
    import mcihn.experiments.tune as tune_module

    real, calls = tune_module.run_seed, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    mp.setattr(tune_module, "run_seed", interrupted)
    out = tmp / "study"

    def check(tmp):
        rows = _rows(out / "trials.csv")
        assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "WAITING"], rows
        assert "interrupted" in rows[1]["note"] and "queued again as trial 2" in rows[1]["note"]
        assert rows[2]["note"].startswith("retry of trial 1") and rows[2]["lr"] == rows[1]["lr"]
        assert json.loads((out / "best.json").read_text())["trial"] == 0
    return Expect(_tune(tmp, shared, "--out", str(out), trials=3), rc=130,
                  err=("interrupted", str(out / "trials.csv"), "run the same command again"),
                  not_err=("--resume", "Trial 1 failed"), check=check)


def _sigterm_in_epoch(mp, epoch: int):
    from mcihn.training.trainer import Trainer

    real = Trainer.train_epoch

    def terminated(self, train, ep, *a, **k):
        if ep == epoch:
            os.kill(os.getpid(), signal.SIGTERM)  # what `timeout`, Slurm and `docker stop` send
        return real(self, train, ep, *a, **k)
    mp.setattr(Trainer, "train_epoch", terminated)


def sigterm_during_training(tmp, shared, mp):
    """SIGTERM in epoch 2: as Ctrl-C (one line, how to resume), exit 143 instead of a silent 143; epoch 1 kept."""
    _sigterm_in_epoch(mp, 2)
    out = tmp / "run"

    def check(tmp):
        assert torch.load(out / "seed_1" / "last.pt", weights_only=True)["epoch"] == 1
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out), epochs=3), rc=143,
                  err=("SIGTERM", str(out), "--resume"), absent=(out / "results.json",), check=check)


def _storage_case(tmp, shared, url, *named, hidden=()):
    """A bad --storage is refused before the data are loaded (--data names a file that does not exist) and
    before --out is made."""
    out = tmp / "study"
    return Expect(_tune(tmp, shared, "--storage", url, "--out", str(out), "--data", str(tmp / "never_loaded.pkl")),
                  err=("--storage", *named), not_err=("never_loaded", *hidden), absent=(out,))


def storage_not_a_url(tmp, shared, mp):
    """6. --storage notaurl."""
    return _storage_case(tmp, shared, "notaurl", "notaurl", "not a database URL")


def storage_without_its_driver(tmp, shared, mp):
    """6. postgresql://... without the driver installed: names the extra; the password is not printed."""
    mp.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError, as where it is not installed
    mp.setitem(sys.modules, "psycopg2", None)
    return _storage_case(tmp, shared, "postgresql://me:s3cret@db.example/optuna", "driver", "tune-db",
                         hidden=("s3cret",))


def storage_sqlite_in_a_missing_folder(tmp, shared, mp):
    """6. SQLite in a folder that does not exist."""
    return _storage_case(tmp, shared, f"sqlite:///{tmp / 'nowhere' / 'study.db'}", str(tmp / "nowhere"))


def _params_case(tmp, shared, best: dict, *named):
    """--params is checked before the data are loaded (--data names a file that does not exist)."""
    path = tmp / "best.json"
    path.write_text(json.dumps({"model": "mcihn", "preset": "tiny", **best}))
    out = tmp / "run"
    return Expect(train("--params", str(path), "--data", str(tmp / "never_loaded.pkl"), "--out", str(out)),
                  err=("--params", str(path), *named), not_err=("never_loaded", "TypeError:", "__init__"),
                  absent=(out,))


def params_unknown_key(tmp, shared, mp):
    """7. A key the model's config does not have."""
    return _params_case(tmp, shared, {"params": {"bogus_key": 1}}, "'bogus_key'", "unknown")


def params_wrong_type(tmp, shared, mp):
    """7. A number written as a string."""
    return _params_case(tmp, shared, {"params": {"epochs": "3"}}, "'epochs'", "str")


def params_negative_lr(tmp, shared, mp):
    """7. lr -5: the error names the file and --params."""
    return _params_case(tmp, shared, {"params": {"lr": -5}}, "lr", "-5")


def modalities_repeated_before_data(tmp, shared, mp):
    """8/9. --modalities tta: refused by argparse, naming the option, before the data are loaded."""
    return _bad_flag(train("--modalities", "tta", "--data", str(tmp / "never_loaded.pkl"), "--out", str(tmp / "run")),
                     "--modalities", tmp / "run")


def modalities_unknown_letter_tune(tmp, shared, mp):
    """8/9. tune --modalities txz."""
    return _bad_flag(_tune(tmp, shared, "--modalities", "txz", "--out", str(tmp / "study")), "--modalities",
                     tmp / "study")


def modalities_empty(tmp, shared, mp):
    """9. --modalities "" trained on all three; now refused."""
    return _bad_flag(train("--modalities", "", "--data", str(shared / "data.pkl"), "--out", str(tmp / "run")),
                     "--modalities", tmp / "run")


def _full_disk(mp, fail_at: int = 1):
    """os.fsync raises ENOSPC from its ``fail_at``-th call on (what a full disk does to a write)."""
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) >= fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)
    mp.setattr(os, "fsync", fsync)


def disk_full_during_training(tmp, shared, mp):
    """11. No space left: the message names the file being written and says that --resume continues."""
    _full_disk(mp)
    out = tmp / "run"
    return Expect(train("--data", str(shared / "data.pkl"), "--out", str(out)),
                  err=("no space left", str(out / "seed_1"), "--resume"), absent=(out / "results.json",))


def disk_full_during_robustness(tmp, shared, mp):
    """11. robustness on a full disk: neither robustness.json nor its PNG (not one without the other)."""
    _full_disk(mp, fail_at=2)  # the PNG is written, then the JSON fails
    out = tmp / "rob"
    return Expect(["robustness", "--checkpoint", str(shared / "run" / "seed_1" / "best.pt"), "--data",
                   str(shared / "data.pkl"), "--rates", "0", "0.5", "--repeats", "1", "--out", str(out)],
                  err=("no space left", str(out / "robustness.json")),
                  absent=(out / "robustness.json", out / "robustness.png"), one_line=True)


def boolean_labels(tmp, shared, mp):
    """12. Boolean regression_labels were trained as 0/1 targets; now refused, naming file, split and field."""
    def edit(o):
        o["train"]["regression_labels"] = o["train"]["regression_labels"] > 0
    data = _pickle_with(tmp, "bool.pkl", edit)
    return Expect(train("--data", str(data), "--out", str(tmp / "run")),
                  err=(str(data), "split 'train'", "field 'regression_labels'", "boolean"), absent=(tmp / "run",))


def gzip_pickle(tmp, shared, mp):
    """A gzip-compressed pickle: named as gzip, not "invalid load key '\\x1f'"."""
    gz = tmp / "data.pkl.gz"
    gz.write_bytes(gzip.compress((shared / "data.pkl").read_bytes()))
    return Expect(train("--data", str(gz), "--out", str(tmp / "run")), err=(str(gz), "gzip", "gunzip"),
                  not_err=("load key",), absent=(tmp / "run",))


def experiment_unknown_row_before_data(tmp, shared, mp):
    """8. experiment --models with a row the table has not: refused before the data are loaded."""
    return Expect(["experiment", "table2", "--models", "tfn", "bogus", "--data", str(tmp / "never_loaded.pkl"),
                   "--out", str(tmp / "t2")], err=("--models", "'bogus'"), not_err=("never_loaded",),
                  absent=(tmp / "t2",))


def robustness_unknown_metric_before_scoring(tmp, shared, mp):
    """8. robustness --metric that no dataset has: refused before the checkpoint is loaded and scored."""
    return Expect(["robustness", "--checkpoint", str(tmp / "never_loaded.pt"), "--metric", "Acc-9", "--out",
                   str(tmp / "rob")], err=("--metric", "Acc-9"), not_err=("never_loaded",), absent=(tmp / "rob",))


CASES = [undefined_metric, undefined_metric_tfn_two_seeds, undefined_metric_resume, evaluate_other_dataset,
         refused_checkpoint_zip, refused_checkpoint_plain_pickle, pickle_asks_for_a_huge_bytearray,
         pickle_asks_for_a_huge_array, extract_without_test_rows, extract_into_a_folder,
         resume_removes_stale_temp_files, out_below_a_file, out_not_writable, label_csv_not_utf8,
         checkpoint_without_normalizer, checkpoint_missing_weights, checkpoint_with_other_latent_dim,
         checkpoint_of_unknown_model, checkpoint_with_fractional_dims, bench_zero_steps, synthetic_nan_noise,
         negative_learning_rate, ctrl_c_during_training, neg_inf_inside_real_steps, duplicate_ids,
         ids_shared_by_test_and_train,
         # issue 19: the fault battery's defects
         fresh_train_keeps_user_tmp_files, out_in_use_by_another_process, duplicate_seeds, ctrl_c_during_tune,
         sigterm_during_training, storage_not_a_url, storage_without_its_driver, storage_sqlite_in_a_missing_folder,
         params_unknown_key, params_wrong_type, params_negative_lr, modalities_repeated_before_data,
         modalities_unknown_letter_tune, modalities_empty, disk_full_during_training, disk_full_during_robustness,
         boolean_labels, gzip_pickle, experiment_unknown_row_before_data, robustness_unknown_metric_before_scoring]


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
    try:
        rc, out, err = _run(e, capsys)
    finally:
        if e.cleanup is not None:
            e.cleanup()
    assert rc == e.rc, (out, err)
    assert "Traceback" not in out + err, err
    for s in e.err:
        assert s in err, (s, err)
    for s in e.out:
        assert s in out, (s, out)
    for s in e.not_err:
        assert s not in err, (s, err)
    for s in e.not_out:
        assert s not in out, (s, out)
    if e.one_line and e.rc != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
    for p in e.absent:
        assert not Path(p).exists(), p
    for p in e.keep:
        assert Path(p).exists(), p
    if e.check is not None:
        e.check(tmp_path)
    for folder in (tmp_path, shared):
        left = [p for p in Path(folder).rglob("*") if p.name.endswith((".tmp", TEMP_SUFFIX)) and p not in e.keep]
        assert not left, f"a temporary file was left: {left}"
