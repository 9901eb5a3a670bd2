"""Copy the numbered notebooks into the book's source folder, touching only what changed.

Sphinx reads its pages from ``docs/``; the notebooks live in ``notebooks/``. A file is rewritten only when
its bytes differ, so an unchanged notebook keeps its time stamp and Sphinx does not read it again.
"""
from __future__ import annotations

from pathlib import Path

PATTERN = "[0-9][0-9]_*.ipynb"


def sync_notebooks(source: Path, target: Path) -> list[Path]:
    """Mirror ``source/NN_*.ipynb`` into ``target`` (created if needed); returns the copied paths."""
    notebooks = sorted(source.glob(PATTERN))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks {PATTERN} in {source}")
    target.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in notebooks}
    for stale in target.glob(PATTERN):
        if stale.name not in names:
            stale.unlink()
    copied = []
    for path in notebooks:
        data, dest = path.read_bytes(), target / path.name
        if not dest.exists() or dest.read_bytes() != data:
            dest.write_bytes(data)
            copied.append(dest)
    return copied
