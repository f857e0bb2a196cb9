"""Helpers shared by the file-format readers: root folders, "file not found" messages, md5, splits.

>>> tr, te = split_counts(10, 8, seed=0)
>>> len(tr), len(te), sorted(set(tr) | set(te)) == list(range(10))
(8, 2, True)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError, DataFileNotFoundError
from ..paths import DATA_DIR_ENV, dataset_dir


def resolve_root(root: str | Path | None, name: str) -> Path:
    """``root`` as a :class:`Path`, or ``dataset_dir(name)`` when ``root`` is None."""
    return dataset_dir(name) if root is None else Path(root).expanduser()


def where(root: Path, defaulted: bool) -> str:
    """How to describe ``root`` in an error message (mentions the environment variable when defaulted)."""
    if defaulted:
        return f"{root} (the default folder; set {DATA_DIR_ENV} or pass root=...)"
    return str(root)


def missing(expected: str, root: Path, origin: str, *, defaulted: bool = False) -> DataFileNotFoundError:
    """The error for a missing file: names the file expected, the folder searched and where it comes from."""
    return DataFileNotFoundError(f"expected {expected} in {where(root, defaulted)}: {origin}")


def find_file(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that is a file in ``root``, or None."""
    for n in names:
        p = root / n
        if p.is_file():
            return p
    return None


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def split_counts(n: int, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train / test positions of ``range(n)``: ``n_train`` train, the rest test.

    Same convention as :func:`obliviate.data.base.seeded_split` (the first ``n - n_train`` entries of
    ``default_rng(seed).permutation(n)`` are the test positions), so ``split_counts(n, k, s)`` equals
    ``seeded_split(n, (n - k) / n, s)`` whenever that fraction rounds back to ``n - k``.
    """
    if not 0 < n_train < n:
        raise ConfigError(f"n_train must be in [1, {n - 1}] for {n} samples, got {n_train}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = n - n_train
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def check_labels(y: np.ndarray, num_classes: int, path: Path | str) -> None:
    """Labels must be integers in ``[0, num_classes)``; otherwise a :class:`DataError` naming the file."""
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"{path}: labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
