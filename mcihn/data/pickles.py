"""Safe unpickling: an MMSA pickle may only build numpy arrays, numpy scalars and plain values.

A pickle can run any code when it is loaded (its ``find_class`` can name ``os.system``);
the unpickler here admits a short allow-list of globals and refuses everything else with
:class:`UnsafePickleError`.
"""
from __future__ import annotations

import pickle

import numpy as np


class DataFormatError(ValueError):
    """The data file is not a valid MMSA pickle; the message says where and why."""


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
}


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` is the only way a pickle reaches code; admit numpy data types only."""

    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        canon = "builtins" if module == "__builtin__" else module
        if canon == "numpy.core" or canon.startswith("numpy.core."):
            canon = "numpy._core" + canon[len("numpy.core"):]
        if (canon, name) in _ALLOWED:
            target = canon
            if not _NUMPY2 and canon.startswith("numpy._core"):
                target = "numpy.core" + canon[len("numpy._core"):]  # numpy 1.x spelling
            return super().find_class(target, name)
        if canon == "numpy.dtypes" and name.endswith("DType"):
            cls = getattr(getattr(np, "dtypes", None), name, None)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                return cls
        raise UnsafePickleError(
            f"{self.path}: refused to load global '{module}.{name}': only numpy arrays, "
            f"scalars, dtypes and plain Python values may appear in a data pickle")


def safe_load_pickle(path) -> object:
    """Unpickle ``path`` allowing only numpy arrays/scalars/dtypes and plain values.

    Raises :class:`UnsafePickleError` for any other global (``os.system``,
    ``builtins.eval``, ``torch.*``, ...) and :class:`DataFormatError` for a
    truncated or corrupt file. A missing file raises ``FileNotFoundError``.
    """
    path = str(path)
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except DataFormatError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                KeyError, AttributeError, ImportError, UnicodeDecodeError, OverflowError) as e:
            raise DataFormatError(f"{path}: not a readable pickle (truncated or corrupt?): "
                                  f"{type(e).__name__}: {e}") from e
