"""Safe unpickling: an MMSA pickle may only build numpy arrays, numpy scalars and plain values.

A pickle can run any code when it is loaded (its ``find_class`` can name ``os.system``);
the unpickler here admits a short allow-list of globals and refuses everything else with
:class:`UnsafePickleError`.

Even allowed globals can be asked for too much: 30 bytes of pickle can call ``bytearray(10**15)`` or
``numpy.ndarray((10**6, 10**6))``. The three callables that allocate from a size argument
(``bytearray``, ``bytes``, ``numpy.ndarray`` and numpy's ``_reconstruct``) are wrapped: a request for more bytes than the
file holds is refused with :class:`DataFormatError` (a real pickle carries its arrays' bytes, so it never
needs more); reads are capped at the file's size too.
"""
from __future__ import annotations

import math
import operator
import os
import pickle

import numpy as np


class DataFormatError(ValueError):
    """The data file is not a valid MMSA pickle; the message says where and why."""


class DataWarning(UserWarning):
    """The data loads, but something in it deserves a look (duplicate ids, ids shared by two splits, -inf values)."""


class UnsafePickleError(DataFormatError):
    """The pickle asked for a global (function or class) outside the allow-list."""


# ----------------------------------------------------------------------------- safe unpickling
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2
# (module, name) pairs in numpy-2 spelling; numpy.core.* is mapped onto numpy._core.*.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),  # arrays, numpy scalars
    ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),  # protocol-5 arrays, protocol-2 bytes
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("builtins", "bytes"),  # protocol 2 spells empty bytes (an empty array's data) as bytes()
}


class _SizedReader:
    """A binary file whose ``read(n)`` never asks for more than the file holds (no huge buffer for a forged size)."""

    def __init__(self, f, size: int):
        self.f, self.size = f, size

    def read(self, n: int = -1) -> bytes:
        return self.f.read(self.size if n is None or n < 0 else min(n, self.size))

    def readinto(self, b) -> int:
        return self.f.readinto(b)

    def readline(self, n: int = -1) -> bytes:
        return self.f.readline(self.size if n is None or n < 0 else min(n, self.size))


class _Sized:
    """Wraps a callable that allocates: refuses arguments asking for more than ``limit`` bytes."""

    def __init__(self, fn, name: str, nbytes, path: str, limit: int):
        self.fn, self.name, self.nbytes, self.path, self.limit = fn, name, nbytes, path, limit

    def __call__(self, *args, **kwargs):
        try:
            n = self.nbytes(*args, **kwargs)
        except (TypeError, ValueError, OverflowError) as e:
            raise DataFormatError(f"{self.path}: refused {self.name}{_short(args)}: bad size argument ({e})") from None
        if n > self.limit:
            raise DataFormatError(f"{self.path}: refused {self.name}{_short(args)}: it asks for {n:,} bytes but the "
                                  f"file has {self.limit:,}; a data pickle carries its arrays' bytes (forged or "
                                  "corrupt file?)")
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return self.name


def _short(args) -> str:
    text = repr(tuple(args))
    return text if len(text) <= 80 else text[:77] + "..."


def _bytearray_bytes(source=None, *rest) -> int:
    """bytearray(int) / bytes(int) allocate that many bytes; from bytes / str / an iterable it copies what the file holds."""
    return operator.index(source) if isinstance(source, int) else 0


def _array_bytes(shape, dtype=float) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (numpy.ndarray's and _reconstruct's arguments)."""
    dims = (shape,) if not isinstance(shape, (tuple, list)) else shape
    dims = [operator.index(d) for d in dims]
    if any(d < 0 for d in dims):
        return 0  # numpy refuses negative dimensions itself
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        itemsize = 1  # _reconstruct's typecode (b"b"); numpy raises for anything worse
    return math.prod(dims) * max(itemsize, 1)


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` is the only way a pickle reaches code; admit numpy data types only, allocating no more
    than the file (``limit`` bytes) can justify."""

    def __init__(self, file, path: str, limit: int):
        super().__init__(file)
        self.path, self.limit = path, limit
        self._ndarray = _Sized(np.ndarray, "numpy.ndarray", _array_bytes, path, limit)

    def find_class(self, module: str, name: str):
        canon = "builtins" if module == "__builtin__" else module
        if canon == "numpy.core" or canon.startswith("numpy.core."):
            canon = "numpy._core" + canon[len("numpy.core"):]
        if (canon, name) in _ALLOWED:
            target = canon
            if not _NUMPY2 and canon.startswith("numpy._core"):
                target = "numpy.core" + canon[len("numpy._core"):]  # numpy 1.x spelling
            found = super().find_class(target, name)
            if (canon, name) == ("numpy", "ndarray"):
                return self._ndarray
            if canon == "builtins" and name in ("bytearray", "bytes"):
                return _Sized(found, name, _bytearray_bytes, self.path, self.limit)
            if name == "_reconstruct":
                return _Sized(self._reconstruct(found), "numpy._reconstruct", lambda sub, shape, dtype: _array_bytes(
                    shape, dtype), self.path, self.limit)
            return found
        if canon == "numpy.dtypes" and name.endswith("DType"):
            cls = getattr(getattr(np, "dtypes", None), name, None)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                return cls
        raise UnsafePickleError(
            f"{self.path}: refused to load global '{module}.{name}': only numpy arrays, "
            f"scalars, dtypes and plain Python values may appear in a data pickle")

    def _reconstruct(self, fn):
        """numpy's ``_reconstruct(subtype, shape, dtype)``, given our wrapped ndarray as ``subtype``."""
        def reconstruct(subtype, shape, dtype):
            if subtype is not self._ndarray:
                raise DataFormatError(f"{self.path}: refused to build an array of type {subtype!r}")
            return fn(np.ndarray, shape, dtype)
        return reconstruct


#: Magic bytes of compressed files: (start, name, command that decompresses).
_COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip -k"), (b"BZh", "bzip2", "bunzip2 -k"), (b"\xfd7zXZ\x00", "xz", "unxz -k"),
               (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"))


def _compression(head: bytes) -> tuple[str, str] | None:
    """(name, decompress command) when ``head`` starts a compressed file (a pickle starts with 0x80 or '(')."""
    for magic, name, command in _COMPRESSED:
        if head.startswith(magic):
            return name, command
    return None


def safe_load_pickle(path) -> object:
    """Unpickle ``path`` allowing only numpy arrays/scalars/dtypes and plain values.

    Raises :class:`UnsafePickleError` for any other global (``os.system``,
    ``builtins.eval``, ``torch.*``, ...) and :class:`DataFormatError` for a
    truncated or corrupt file. A missing file raises ``FileNotFoundError``.
    """
    path = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(6)
        compressed = _compression(head)
        if compressed:
            raise DataFormatError(f"{path}: is a {compressed[0]}-compressed file, not a pickle; decompress it first "
                                  f"({compressed[1]} {path}) and pass the .pkl")
        if head.startswith(b"PK\x03\x04"):
            raise DataFormatError(f"{path}: is a zip archive (a torch checkpoint, an .npz or a .zip?), not an MMSA pickle")
        f.seek(0)
        try:
            return _RestrictedUnpickler(_SizedReader(f, size), path, size).load()
        except DataFormatError:
            raise
        except MemoryError:
            raise DataFormatError(f"{path}: refused: unpickling it asks for more memory than there is "
                                  f"(the file has {size:,} bytes; forged or corrupt?)") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                KeyError, AttributeError, ImportError, UnicodeDecodeError, OverflowError) as e:
            raise DataFormatError(f"{path}: not a readable pickle (truncated or corrupt?): "
                                  f"{type(e).__name__}: {e}") from e
