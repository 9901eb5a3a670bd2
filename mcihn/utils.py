"""Small shared helpers: seeding, device choice, CPU threads, atomic file writes, JSON without NaN, and the
lock that gives an output folder one writer."""
from __future__ import annotations

import errno
import io
import json
import math
import os
import random
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by cuBLAS for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device (use --device auto or cpu)")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name!r} is not a device torch knows (use auto, cpu, cuda or cuda:N)") from e


#: The temporary file of an atomic write of NAME is ".NAME.<host>.<pid>.<random>.mcihn-tmp", in NAME's folder: a
#: name no user file has, which says which process on which machine writes it (see remove_stale_temp_files).
TEMP_SUFFIX = ".mcihn-tmp"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]*)\.(?P<pid>\d+)\.(?P<rand>[A-Za-z0-9_]+)"
                        + re.escape(TEMP_SUFFIX) + "$")


#: torch's own intra-op thread count when this module was imported (one per physical core, or OMP_NUM_THREADS).
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; cgroup CPU quotas are not read)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(preset: str | None = None) -> int:
    """The torch thread count ``--threads`` defaults to (measured, see the README, "Speed"):

    * ``preset="tiny"``: 1. Its matrices are a few dozen wide: a second thread made an epoch twice
      as slow on a 2-core machine, and next to another busy process every extra thread costs more.
    * otherwise (paper preset, extraction, evaluation of a checkpoint): torch's own default, one
      thread per physical core (capped by the cores this process may use). With OpenMP's passive
      wait policy (set on import, see ``set_threads``) the paper preset was faster with 2 threads
      than with 1 on a 2-core machine, also next to a busy process.
    """
    if preset == "tiny":
        return 1
    return max(1, min(TORCH_DEFAULT_THREADS, usable_cores()))


def set_threads(threads: int | None = None, preset: str | None = None) -> int:
    """Set torch's intra-op CPU threads: ``threads`` when given (``--threads N``), else the
    ``OMP_NUM_THREADS`` environment variable when set, else :func:`default_threads` of ``preset``.
    Returns the number set. Every command that trains or extracts calls this once, before any work.

    OpenMP's wait policy is a separate matter: ``mcihn/__init__.py`` sets ``OMP_WAIT_POLICY=PASSIVE``
    (unless already set) before torch is imported, so threads waiting for work sleep instead of
    spinning on cores another process needs.
    """
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else default_threads(preset)
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def host_name() -> str:
    """This machine's name as it appears in temporary-file names: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (it may be another program that reuses the number)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def make_temp_file(path) -> tuple[int, str]:
    """``tempfile.mkstemp`` for an atomic write of ``path``: (fd, name) in ``path``'s folder, named as TEMP_SUFFIX says."""
    path = Path(path)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{host_name()}.{os.getpid()}.", suffix=TEMP_SUFFIX)


def _with_path(e: OSError, path) -> OSError:
    """``e`` naming ``path`` (a full disk says "[Errno 28] No space left on device" and no file otherwise)."""
    return OSError(e.errno, e.strerror or str(e), str(path)) if e.errno is not None else e


def atomic_write_bytes(path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file. An OSError
    (a full disk) names ``path`` and leaves no temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = make_temp_file(path)
    except OSError as e:
        raise _with_path(e, path) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _with_path(e, path) from e
        raise


def remove_stale_temp_files(folder) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in ``folder`` (SIGKILL runs no cleanup);
    returns them. Only the project's own (named as TEMP_SUFFIX says) and only stale ones: written by a process
    of this machine that no longer runs. A user's file, and a file another live process is writing, are kept."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = []
    for p in folder.glob("*" + TEMP_SUFFIX):
        m = _TEMP_NAME.match(p.name)
        if m is None or not p.is_file() or m["host"] != host_name():
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and not pid_alive(pid):
            p.unlink(missing_ok=True)
            stale.append(p)
    return stale


# ----------------------------------------------------------------------------- one writer per output folder
#: The lock file of an output folder; while a process holds it, it holds that process's pid, host and command.
LOCK_NAME = ".mcihn.lock"

try:
    import fcntl
except ImportError:  # Windows: no lock (the project is tested on Linux)
    fcntl = None


class FolderInUseError(ValueError):
    """Another process writes into this output folder."""


class OutLock:
    """One writer per output folder (``--out``): an exclusive ``flock`` on ``FOLDER/.mcihn.lock``, taken before
    anything is written and released at exit; the kernel drops it when the process dies (even by SIGKILL), so a
    lock is never stale. A second process is refused with :class:`FolderInUseError` naming the folder and the
    process that holds it. A folder this lock created and in which nothing else was written is removed again
    on release (a command that failed before writing leaves no empty folder).

        with OutLock(out, "--out"):
            ...
    """

    def __init__(self, folder, flag: str = "--out"):
        self.folder, self.flag, self.fd, self.created = Path(folder), flag, None, False

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> "OutLock":
        self.created = not self.folder.exists()
        for _ in range(5):  # the folder may vanish between mkdir and open (a holder removing its empty folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                break
            except FileNotFoundError:
                continue
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                holder = _holder(fd)
                os.close(fd)
                raise FolderInUseError(f"{self.flag} {self.folder}: in use by another mcihn process ({holder}); "
                                       f"wait until it ends, or choose another {self.flag}") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(["python -m mcihn", *sys.argv[1:]])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            left = [p.name for p in self.folder.iterdir()] if self.folder.is_dir() else []
            if self.created and left == [LOCK_NAME]:  # nothing written: leave no empty folder behind
                self.path.unlink(missing_ok=True)
                self.folder.rmdir()
            else:
                os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> "OutLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The process that holds a lock, from its lock file: "process 123 on host, since ..., `python -m mcihn ...`"."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "a process that has not yet written its name"
    return (f"process {info['pid']} on {info.get('host', '?')}, since {info.get('started', '?')}: "
            f"{info.get('command', '?')}")


def check_writable(path, flag: str, folder: bool) -> None:
    """Refuse, before any work, an output ``path`` (of command-line option ``flag``) that cannot be written:
    a folder (``folder=True``) that is a file, a file that is a folder, or a path whose nearest existing
    ancestor is a file or not writable. Creates nothing."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{flag} {path}: exists and is {'not ' if folder else ''}a folder")
    probe = path if path.exists() else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{flag} {path}: cannot be created, {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: {probe} is not writable")


def atomic_torch_save(obj, path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def jsonable(x):
    """Plain JSON values: numpy/torch scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.generic, torch.Tensor)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n").encode())


def from_pretrained(cls, name_or_path: str, **kwargs):
    """``cls.from_pretrained`` (transformers), local files first: a model in a local folder or in the Hugging
    Face cache loads without touching the network (no retries against an unreachable hub); a hub name not
    cached is then downloaded, unless ``HF_HUB_OFFLINE=1`` or the name is a local folder. Errors propagate."""
    path = os.path.expanduser(str(name_or_path))
    try:
        return cls.from_pretrained(path, local_files_only=True, **kwargs)
    except OSError:
        if os.path.isdir(path) or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise
        return cls.from_pretrained(path, **kwargs)
