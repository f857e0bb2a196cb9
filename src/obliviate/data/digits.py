"""The embedded default: scikit-learn's bundled 8x8 digits, and a deterministic 60k-sample variant.

>>> splits = load_digits(seed=0)
>>> len(splits.train) + len(splits.test), splits.input_shape, splits.num_classes
(1797, (1, 8, 8), 10)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import DatasetSplits, from_arrays, seeded_split


def _digits_table() -> np.ndarray:
    """scikit-learn's bundled ``digits.csv.gz`` (1797 rows: 64 pixel values 0-16, then the label), read
    straight from the installed package: importing scikit-learn itself costs over a second, which every
    command on the embedded default would pay. Falls back to ``sklearn.datasets.load_digits``."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as fh:
                table = np.loadtxt(fh, delimiter=",")
            if table.shape == (1797, 65):
                return table
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1)


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    table = _digits_table()
    x = (table[:, :-1].reshape(-1, 8, 8).astype(np.float32) / 16.0)[:, None, :, :]  # (1797, 1, 8, 8) in [0, 1]
    return x, table[:, -1].astype(np.int64)


def load_digits(*, seed: int = 0, test_fraction: float = 0.2) -> DatasetSplits:
    """scikit-learn's digits (1,797 real images), seeded train/test split; ids are the original indices."""
    x, y = _raw_digits()
    tr, te = seeded_split(len(y), test_fraction, seed)
    return DatasetSplits(
        from_arrays(x[tr], y[tr], num_classes=10, name="digits", ids=tr),
        from_arrays(x[te], y[te], num_classes=10, name="digits-test", ids=te),
        source="sklearn.datasets.load_digits",
    )


def _augment(x: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` variants of the images in ``x``: small shifts (<= 1 px), rotations (<= 12 degrees),
    scaling (0.9-1.1) and Gaussian noise (sd 0.05), clipped to [0, 1]. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(x), size=count)
    angle = rng.uniform(-12, 12, size=count) * math.pi / 180
    scale = rng.uniform(0.9, 1.1, size=count)
    shift = rng.uniform(-1.0, 1.0, size=(count, 2)) * (2.0 / 8.0)  # pixels -> normalised coords
    noise = rng.normal(0.0, 0.05, size=(count, 1, 8, 8)).astype(np.float32)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = np.stack([np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1)
    out = np.empty((count, 1, 8, 8), dtype=np.float32)
    xt = torch.from_numpy(x)
    for start in range(0, count, 8192):  # bounded memory
        sl = slice(start, start + 8192)
        grid = F.affine_grid(torch.from_numpy(theta[sl]).float(), [len(src[sl]), 1, 8, 8], align_corners=False)
        warped = F.grid_sample(xt[src[sl]], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[sl] = warped.numpy()
    return np.clip(out + noise, 0.0, 1.0), src


def load_digits_60k(*, seed: int = 0, n_train: int = 60_000, n_test: int = 10_000,
                    test_fraction: float = 0.2) -> DatasetSplits:
    """A deterministic 60k-sample set built from the real digits by small shifts, rotations, scaling
    and noise, for benchmarks that need more samples than the 1,797 originals.

    Training variants come only from the originals of the training split and test variants only from
    the test split's, so no test image is a variant of a training image. Ids are ``0..n_train-1``.
    """
    x, y = _raw_digits()
    tr, te = seeded_split(len(y), test_fraction, seed)
    xtr, src_tr = _augment(x[tr], n_train, seed * 1_000_003 + 1)
    xte, src_te = _augment(x[te], n_test, seed * 1_000_003 + 2)
    return DatasetSplits(
        from_arrays(xtr, y[tr][src_tr], num_classes=10, name="digits-60k"),
        from_arrays(xte, y[te][src_te], num_classes=10, name="digits-60k-test"),
        source="sklearn digits, augmented (obliviate.data.digits.load_digits_60k)",
    )
