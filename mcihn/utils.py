"""Small shared helpers: seeding, device choice, CPU threads, atomic file writes, JSON without NaN."""
from __future__ import annotations

import io
import json
import math
import os
import random
import tempfile
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


#: Name of the temporary file of an atomic write of NAME: ".NAME.<random>.tmp", in NAME's folder.
TEMP_PREFIX, TEMP_SUFFIX = ".{name}.", ".tmp"


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


def atomic_write_bytes(path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX.format(name=path.name), suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(folder) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in ``folder`` (SIGKILL runs no cleanup);
    returns them. Only for a folder one process owns (a run folder), never while another writes into it."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(TEMP_PREFIX.format(name="*") + "*" + TEMP_SUFFIX) if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


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
