"""SVHN (Street View House Numbers), cropped-digits format: ``train_32x32.mat`` and ``test_32x32.mat``.

Each file is MATLAB v5 with ``X`` uint8 of shape (32, 32, 3, n) and ``y`` of shape (n, 1) with labels
1..10, where 10 stands for the digit 0 (mapped to 0 here).

>>> import tempfile, numpy as np, scipy.io
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     X = np.zeros((32, 32, 3, 5), np.uint8); y = np.array([[10], [1], [2], [3], [4]], np.uint8)
...     scipy.io.savemat(Path(d) / "train_32x32.mat", {"X": X, "y": y})
...     s = load_svhn(root=d, test_fraction=0.4)
>>> len(s.train), len(s.test), s.input_shape
(3, 2, (3, 32, 32))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..base import DatasetSplits, from_arrays, seeded_split
from ..registry import register_dataset
from ._common import missing, resolve_root

_ORIGIN = ("the SVHN cropped-digits files (format 2, train_32x32.mat and test_32x32.mat) from "
           "Netzer et al.'s SVHN page at ufldl.stanford.edu/housenumbers")


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 3, 32, 32) float32 in [0, 1], y (n,) int64 in 0..9) from one SVHN .mat file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: {e}; the official SVHN files are MATLAB v5, re-save with "
                        f"save(..., '-v7') or get the originals") from None
    except Exception as e:  # noqa: BLE001 - any failure to parse is a bad file; scipy raises ValueError, TypeError, MatReadError ... on garbage
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected variables X and y, found {sorted(k for k in mat if not k.startswith('__'))}")
    X, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if X.ndim != 4 or X.shape[2] != 3 or X.dtype != np.uint8:
        raise DataError(f"{path}: X must be uint8 of shape (H, W, 3, n), got {X.dtype} of shape {X.shape}")
    if X.shape[3] != len(y):
        raise DataError(f"{path}: X holds {X.shape[3]} images but y holds {len(y)} labels")
    if not np.issubdtype(y.dtype, np.number) or (y.size and (y.min() < 0 or y.max() > 10)) \
            or not np.array_equal(y, np.round(y)):
        raise DataError(f"{path}: y must hold integer labels 1..10 (10 for the digit 0)")
    y = y.astype(np.int64)
    y[y == 10] = 0
    x = np.transpose(X, (3, 2, 0, 1)).astype(np.float32) / 255.0  # (H, W, C, n) -> (n, C, H, W)
    return x, y


@register_dataset("svhn")
def load_svhn(*, root: str | Path | None = None, test_fraction: float = 0.2, seed: int = 0) -> DatasetSplits:
    """SVHN from ``train_32x32.mat`` and ``test_32x32.mat`` in ``root`` (default ``dataset_dir("svhn")``).

    x is (n, 3, 32, 32) float32 in [0, 1]; labels 0..9 (the files' label 10 is the digit 0).
    Ids are the image's index in its file. When ``test_32x32.mat`` is absent, the train file alone is
    split with :func:`~obliviate.data.base.seeded_split` (``test_fraction``, ``seed``), and both parts keep
    their index in the train file as ids. ``extra_32x32.mat`` is not read.
    """
    base = resolve_root(root, "svhn")
    train_p, test_p = base / "train_32x32.mat", base / "test_32x32.mat"
    if not train_p.is_file():
        raise missing("train_32x32.mat (and optionally test_32x32.mat)", base, _ORIGIN, defaulted=root is None)
    x, y = read_svhn_mat(train_p)
    if test_p.is_file():
        xte, yte = read_svhn_mat(test_p)
        return DatasetSplits(
            from_arrays(x, y, num_classes=10, name="svhn"),
            from_arrays(xte, yte, num_classes=10, name="svhn-test"),
            source=f"SVHN .mat files in {base}",
        )
    tr, te = seeded_split(len(y), test_fraction, seed)
    return DatasetSplits(
        from_arrays(x[tr], y[tr], num_classes=10, name="svhn", ids=tr),
        from_arrays(x[te], y[te], num_classes=10, name="svhn-test", ids=te),
        source=(f"SVHN {train_p} only (no test_32x32.mat), seeded split test_fraction={test_fraction}, "
                f"seed={seed}"),
    )
