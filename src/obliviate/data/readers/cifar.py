"""CIFAR-10 from the "python version" batches (``cifar-10-batches-py``), read without running code.

The batches are pickles: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a dict with
``b'data'`` (uint8, (n, 3072): 1024 red, 1024 green, 1024 blue values of a 32x32 image, row-major)
and ``b'labels'`` (a list of n ints in 0..9). A pickle can name any importable callable and have it
called, so they are loaded with :class:`SafeUnpickler`, which refuses every global except the few
numpy constructors that rebuild a plain array.

>>> import io, pickle, numpy as np
>>> blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [3]}, protocol=2)
>>> sorted(safe_loads(blob))
[b'data', b'labels']
>>> import os
>>> class Evil:
...     def __reduce__(self):
...         return (os.system, ("echo pwned",))
>>> safe_loads(pickle.dumps(Evil()))  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
obliviate.errors.DataError: <bytes>: refused to load a pickle that references ...system; ...
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from ...errors import DataError
from ..base import DatasetSplits, from_arrays
from ..registry import register_dataset
from ._common import check_labels, missing, resolve_root

_FOLDER = "cifar-10-batches-py"
_ARCHIVE = "cifar-10-python.tar.gz"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_ORIGIN = ("the CIFAR-10 python version (cifar-10-python.tar.gz from Alex Krizhevsky's CIFAR page), "
           "extracted or as the .tar.gz itself")


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-0/2 pickles of ``bytes`` objects call: only the
    latin-1 form pickle itself writes is accepted."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return text.encode("latin-1", errors)


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    # casts: typeshed types __reduce__ loosely (str | tuple); numpy's first item is always the callable
    reconstruct = cast(Callable[..., Any], np.zeros(1).__reduce__()[0])  # ndarray _reconstruct, wherever it lives
    frombuffer = cast(Callable[..., Any], np.zeros(1).__reduce_ex__(5)[0])  # _frombuffer (protocol-5 pickles)
    table: dict[tuple[str, str], Callable[..., Any]] = {("numpy", "ndarray"): np.ndarray,
                                                        ("numpy", "dtype"): np.dtype,
                                                        ("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = frombuffer
    return table


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that cannot run arbitrary code.

    Security: ``pickle`` calls whatever ``find_class`` returns, so a hostile "batch" could run
    ``os.system``. This ``find_class`` refuses every global except a fixed table: dicts, lists, bytes,
    str, int and float need no global at all (pickle has opcodes for them), and the real CIFAR batches
    also hold ``b'data'`` as a numpy array, which takes exactly numpy's ``_reconstruct`` /
    ``_frombuffer``, ``ndarray`` and ``dtype`` (constructors that only build an array from given bytes,
    no user code), plus a latin-1-only stand-in for ``_codecs.encode``. Everything is looked up in the
    table, never imported. Load with ``encoding='bytes'`` so Python 2 strings stay bytes (as the
    batches' keys are).
    """

    _ALLOWED = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        fn = self._ALLOWED.get((module, name))
        if fn is None:
            raise pickle.UnpicklingError(f"refused to load a pickle that references {module}.{name}")
        return fn


def safe_loads(blob: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``blob`` with :class:`SafeUnpickler` (``encoding='bytes'``); failures raise DataError."""
    try:
        return SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{source}: {e}; CIFAR batches contain only dicts, lists, bytes, ints and numpy "
                        f"uint8 arrays, so this file is not one (and was not executed)") from None
    except Exception as e:  # noqa: BLE001 - any failure to parse is a bad file; truncated or garbage data: EOFError, ValueError, struct errors ...
        raise DataError(f"{source}: not a readable CIFAR batch pickle ({type(e).__name__}: {e})") from None


def _batch_arrays(obj: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 3, 32, 32) float32 in [0, 1], y (n,) int64) from one unpickled batch dict."""
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        keys = list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{source}: expected a dict with b'data' and b'labels', got {keys}")
    data = obj[b"data"]
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3072) if len(data) % 3072 == 0 else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{source}: b'data' must be a uint8 array of shape (n, 3072), got {got}")
    labels = obj[b"labels"]
    if not isinstance(labels, (list, tuple, np.ndarray)) or not all(isinstance(v, (int, np.integer)) for v in labels):
        raise DataError(f"{source}: b'labels' must be a list of ints")
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(y) != len(data):
        raise DataError(f"{source}: {len(data)} images but {len(y)} labels")
    check_labels(y, 10, source)
    x = data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return x, y


def _from_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in (*_TRAIN, _TEST):
        p = folder / name
        if not p.is_file():
            raise missing(f"{name} (with data_batch_1..5 and test_batch)", folder, _ORIGIN)
        out[name] = _batch_arrays(safe_loads(p.read_bytes(), source=str(p)), str(p))
    return out


def _from_archive(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # members are read into memory (extractfile), never extracted to disk: no path traversal
    out = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name in (*_TRAIN, _TEST):
                member = f"{_FOLDER}/{name}"
                try:
                    f = tar.extractfile(member)
                except KeyError:
                    f = None
                if f is None:
                    raise DataError(f"{archive}: no file {member} in the archive; expected {_ORIGIN}")
                out[name] = _batch_arrays(safe_loads(f.read(), source=f"{archive}:{member}"),
                                          f"{archive}:{member}")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: not a readable tar archive ({e}); expected {_ORIGIN}") from None
    return out


@register_dataset("cifar10")
def load_cifar10(*, root: str | Path | None = None) -> DatasetSplits:
    """CIFAR-10 from the python batches: 50,000 train and 10,000 test images, (n, 3, 32, 32) in [0, 1].

    ``root`` (default ``dataset_dir("cifar10")``) is the ``cifar-10-batches-py`` folder itself, its
    parent, or a folder holding ``cifar-10-python.tar.gz`` (read in memory, not extracted).
    Train ids are the index in data_batch_1..5 concatenated in order (``10000 * (b - 1) + i`` for the
    i-th image of the official ``data_batch_b``); test ids are the index in ``test_batch``.
    """
    base = resolve_root(root, "cifar10")
    if (base / _TRAIN[0]).is_file():
        folder: Path | None = base
    elif (base / _FOLDER / _TRAIN[0]).is_file():
        folder = base / _FOLDER
    else:
        folder = None
    if folder is not None:
        parts, src = _from_folder(folder), str(folder)
    elif (base / _ARCHIVE).is_file():
        parts, src = _from_archive(base / _ARCHIVE), str(base / _ARCHIVE)
    else:
        raise missing(f"{_FOLDER}/ (data_batch_1..5, test_batch) or {_ARCHIVE}", base, _ORIGIN,
                      defaulted=root is None)
    xtr = np.concatenate([parts[n][0] for n in _TRAIN])
    ytr = np.concatenate([parts[n][1] for n in _TRAIN])
    xte, yte = parts[_TEST]
    return DatasetSplits(
        from_arrays(xtr, ytr, num_classes=10, name="cifar10"),
        from_arrays(xte, yte, num_classes=10, name="cifar10-test"),
        source=f"CIFAR-10 python batches in {src}",
    )
