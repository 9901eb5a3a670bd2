"""`tune` on many processes, one study in a real PostgreSQL server (issue 19).

A module fixture starts a throw-away PostgreSQL server (Debian's ``postgresql`` package: ``initdb`` and
``pg_ctl`` from /usr/lib/postgresql/*/bin or the PATH) in a temporary folder, reachable only through a Unix
socket there, and stops it at the end. As root (CI) the server runs as the ``postgres`` user, which refuses
to run as root. Without the server binaries, or without the Python driver (``pip install -e ".[tune-db]"``),
the tests are skipped with a message saying what to install; ``.ci/run`` installs both.

Then three ``python -m mcihn tune`` processes work on one ``--storage postgresql://...`` study, as workers on
three machines would (each with its own ``--out``), and one of them is killed in the middle of a trial.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import SMALL_DIMS
from mcihn.data import make_synthetic
from mcihn.experiments.tune import open_storage

REPO = Path(__file__).resolve().parents[1]
TRIALS = 6


def _server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl and shutil.which("initdb") else None


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql://postgres@/postgres?host=SOCKET_DIR&port=PORT`` of a fresh server, stopped afterwards."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install -e \".[tune-db]\"")
    bin_dir = _server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if as_user is None:
            pytest.skip("running as root and runuser is missing: cannot start the server as 'postgres'")
    # /tmp: short enough for a socket path, and open to the postgres user (a TMPDIR under /root is not)
    root = Path(tempfile.mkdtemp(prefix="mcihn-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
    if as_user:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", 5432  # a private socket folder: the port only names the socket file

    def run(*cmd, check=True):
        return subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, check=check, timeout=120)
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(bin_dir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "-o",
            f"-k {root} -p {port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=50", "start")
    except subprocess.CalledProcessError as e:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e.stderr.strip()} {log[-2000:]}")
    try:
        yield f"postgresql://postgres@/postgres?host={root}&port={port}"
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def _worker(pkl: Path, out: Path, url: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mcihn", "tune", "--data", str(pkl), "--model", "late", "--preset",
                             "tiny", "--seeds", "1", "--trials", str(TRIALS), "--storage", url, "--study-name", "shared",
                             "--heartbeat", "5", "--out", str(out), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_workers_on_one_postgresql_study(postgres_url, tmp_path):
    """Three workers, one of them killed in its first trial: the study ends with exactly TRIALS finished trials,
    no setting trained twice (the killed trial's settings once, by the worker that took them over), the killed
    trial marked failed, and each worker's best.json the minimum of what had finished when it stopped."""
    import optuna

    pkl = tmp_path / "d.pkl"
    obj = make_synthetic("mosi", splits={"train": 160, "valid": 24, "test": 8}, dims=dict(SMALL_DIMS), seed=4)
    pkl.write_bytes(pickle.dumps(obj, protocol=4))
    outs = [tmp_path / f"worker{i}" for i in range(3)]
    victim = _worker(pkl, outs[0], postgres_url, "--epochs", "30")  # slow trials: killed in the middle of one
    workers = [_worker(pkl, out, postgres_url, "--epochs", "3") for out in outs[1:]]
    killed, storage = None, open_storage(postgres_url)  # (retries while the workers create the tables)
    try:
        t0 = time.time()
        while killed is None and time.time() - t0 < 150:
            time.sleep(0.05)
            try:
                study = optuna.load_study(study_name="shared", storage=storage)
            except KeyError:  # not created yet
                continue
            running = [t for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                       if t.user_attrs.get("pid") == victim.pid and len(t.params) == 2]  # training: dropout, lr drawn
            if running:
                victim.send_signal(signal.SIGKILL)
                killed = running[0]
        assert killed is not None, "the first worker never ran a trial"
        victim.wait(timeout=30)
        results = [w.communicate(timeout=240) for w in workers]
    finally:
        for p in (victim, *workers):
            p.kill()
            p.wait()
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0, err
        assert "Traceback" not in err, err

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(finished) == TRIALS, [(t.number, t.state.name) for t in trials]
    settings = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(settings)) == TRIALS, "a setting was trained twice"
    assert study.trials[killed.number].state.name == "FAIL"
    retries = [t for t in finished if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    assert len({t.user_attrs["sampler_seed"] for t in finished}) >= 2  # two workers, two sampler streams
    best_value = min(t.value for t in finished)
    assert study.best_trial.value == best_value
    last = max(outs[1:], key=lambda o: (o / "trials.csv").stat().st_mtime_ns)
    for out in outs[1:]:
        with open(out / "trials.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        done = [float(r["valid_MAE"]) for r in rows if r["state"] == "COMPLETE"]
        best = json.loads((out / "best.json").read_text())
        assert best["value"] == pytest.approx(min(done), abs=1e-5) and best["finished_trials"] == len(done)
        if out == last:  # the last worker to stop saw the whole study
            assert len(done) == TRIALS and best["value"] == best_value and best["trial"] == study.best_trial.number
            assert f"queued again as trial {retries[0].number}" in rows[killed.number]["note"]


def test_workers_starting_together_on_a_new_database(postgres_url):
    """Four workers opening a new, empty database at once all get the study tables: SQLAlchemy's create_all checks,
    then creates, so all but one fail with "already exists"; open_storage waits and tries again."""
    import threading

    import psycopg

    base = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    params = dict(p.split("=", 1) for p in postgres_url.split("?", 1)[1].split("&"))
    with psycopg.connect(dbname="postgres", user="postgres", host=params["host"], port=params["port"],
                         autocommit=True) as db:
        db.execute("CREATE DATABASE fresh")
    url = base.replace("@/postgres?", "@/fresh?")
    barrier, errors = threading.Barrier(4), []

    def open_one():
        barrier.wait()
        try:
            open_storage(url)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
