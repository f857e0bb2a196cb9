"""Purchase-100 (tabular, 600 binary features, 100 classes) from a local file, and a synthetic stand-in.

``purchase100`` reads ``purchase100.npz`` or the CSV of Shokri et al.'s release (``dataset_purchase``);
``purchase-synthetic`` generates a deterministic Purchase-like set without any file.

>>> s = make_purchase_synthetic(n_train=200, n_test=50, seed=0)
>>> s.input_shape, s.num_classes, len(s.train), len(s.test)
((600,), 100, 200, 50)
>>> sorted(set(s.train.x.unique().tolist()))
[0.0, 1.0]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError
from ..base import DatasetSplits, from_arrays, seeded_split
from ..registry import register_dataset
from ._common import check_labels, find_file, missing, resolve_root

_NPZ = "purchase100.npz"
_CSV = ("dataset_purchase", "dataset_purchase.csv", "purchase100.csv")
_ORIGIN = ("Purchase-100 as purchase100.npz (arrays 'features' (n, 600) and 'labels' (n,)) or as the CSV "
           "'dataset_purchase' of Shokri et al.'s membership-inference release (each line "
           "'label,f1,...,f600', labels 1..100), derived from Kaggle's Acquire Valued Shoppers data")
_FEATURE_KEYS = ("features", "X", "x")
_LABEL_KEYS = ("labels", "Y", "y")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:  # never unpickle object arrays
            keys = set(z.files)
            fk = next((k for k in _FEATURE_KEYS if k in keys), None)
            lk = next((k for k in _LABEL_KEYS if k in keys), None)
            if fk is None or lk is None:
                raise DataError(f"{path}: expected arrays {'/'.join(_FEATURE_KEYS)} and "
                                f"{'/'.join(_LABEL_KEYS)}, found {sorted(keys)}")
            return np.asarray(z[fk]), np.asarray(z[lk])
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to parse is a bad file: BadZipFile, ValueError (pickled object arrays), OSError ...
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a numeric CSV 'label,f1,...,fk' ({e})") from None
    if table.shape[1] < 2:
        raise DataError(f"{path}: each line must be 'label,f1,...,fk', found {table.shape[1]} column(s)")
    return table[:, 1:], table[:, 0]


def _clean(features: np.ndarray, labels: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 in [0, 1] of shape (n, k), labels int64 in 0..99 (1-based files shifted)."""
    if features.ndim != 2 or labels.reshape(-1).shape[0] != features.shape[0]:
        raise DataError(f"{path}: features must be (n, k) with n labels, got features {features.shape} "
                        f"and labels {labels.shape}")
    if not (np.issubdtype(features.dtype, np.number) or features.dtype == np.bool_):
        raise DataError(f"{path}: features must be numeric, got {features.dtype}")
    x = features.astype(np.float32)
    if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise DataError(f"{path}: Purchase-100 features are binary (0/1), found values outside [0, 1]")
    y = labels.reshape(-1)
    if not np.issubdtype(y.dtype, np.number) or (y.size and not np.array_equal(y, np.round(y))):
        raise DataError(f"{path}: labels must be integers")
    y = y.astype(np.int64)
    if y.size and int(y.min()) == 1 and int(y.max()) == 100:  # Shokri et al.'s release numbers classes 1..100
        y = y - 1
    check_labels(y, 100, path)
    return x, y


@register_dataset("purchase100")
def load_purchase100(*, root: str | Path | None = None, test_fraction: float = 0.2,
                     seed: int = 0) -> DatasetSplits:
    """Purchase-100 from ``root`` (default ``dataset_dir("purchase100")``), seeded train/test split.

    Reads ``purchase100.npz`` (arrays ``features``/``X``/``x`` and ``labels``/``Y``/``y``; loaded with
    ``allow_pickle=False``) if present, else the CSV ``dataset_purchase`` (also ``dataset_purchase.csv``
    or ``purchase100.csv``): one line ``label,f1,...,f600`` per sample. Labels numbered 1..100 (the
    original release: detected as min 1 and max 100) are mapped to 0..99. Ids are the row index in the
    file; the split is :func:`~obliviate.data.base.seeded_split` (``test_fraction``, ``seed``).
    x is float32 of shape (n, 600) with values 0 and 1.
    """
    base = resolve_root(root, "purchase100")
    path = find_file(base, (_NPZ, *_CSV))
    if path is None:
        raise missing(f"{_NPZ} or {_CSV[0]}(.csv)", base, _ORIGIN, defaulted=root is None)
    raw = _read_npz(path) if path.suffix == ".npz" else _read_csv(path)
    x, y = _clean(*raw, path)
    tr, te = seeded_split(len(y), test_fraction, seed)
    return DatasetSplits(
        from_arrays(x[tr], y[tr], num_classes=100, name="purchase100", ids=tr),
        from_arrays(x[te], y[te], num_classes=100, name="purchase100-test", ids=te),
        source=f"Purchase-100 from {path}, seeded split test_fraction={test_fraction}, seed={seed}",
    )


# Constants of the synthetic generator (documented in make_purchase_synthetic's docstring).
_N_FEATURES, _N_CLASSES, _N_GROUPS = 600, 100, 20
_GROUP_DENSITY = (0.1, 0.3)
_CLASS_FLIP = 0.02
_P_ON, _P_OFF = 0.5, 0.1


@register_dataset("purchase-synthetic")
def make_purchase_synthetic(*, n_train: int = 10_000, n_test: int = 2_000, seed: int = 0) -> DatasetSplits:
    """A deterministic Purchase-100-like tabular set: 600 binary features, 100 classes, no files.

    How it is generated (numpy ``default_rng``, PCG64). ``numpy.random.SeedSequence(seed).spawn(3)``
    gives three independent streams: prototypes, training samples, test samples (so the training set
    does not depend on ``n_test`` nor the test set on ``n_train``).

    1. Prototype stream: 20 group densities ``d_g ~ Uniform(0.1, 0.3)`` (``uniform(0.1, 0.3, 20)``);
       20 group prototypes ``G[g, j] = random() < d_g`` (a (20, 600) draw of ``random``); class
       ``c`` (0..99) belongs to group ``c % 20`` and its prototype is that group's with each bit flipped
       with probability 0.02: ``P[c] = G[c % 20] XOR (random((100, 600)) < 0.02)``. Classes of one group
       differ in about 24 bits, so they are easy to confuse, like Purchase-100's k-means clusters of
       shopping baskets.
    2. Sample stream (one per split): labels ``y = integers(0, 100, n)`` (uniform over the classes), then
       features ``x[i, j] = random() < (0.5 if P[y[i], j] else 0.1)`` (a (n, 600) draw of ``random``):
       a prototype's 1-bits are kept with probability 0.5 and its 0-bits switched on with probability
       0.1. About 18% of the features are 1.

    Train ids are ``0..n_train-1``, test ids ``0..n_test-1`` (the sample's index in its stream). ``x`` is
    float32 of shape (n, 600) with values 0 and 1. As calibrated, a 600-256-100 ReLU MLP (Adam, lr 1e-3,
    batch 128, 20 epochs) fits the 10,000 training samples perfectly and reaches about 87% test
    accuracy (86.8-88.0% for seeds 0-2): learnable, not trivial, with a generalisation gap for
    membership inference to find.
    """
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    s_proto, s_train, s_test = np.random.SeedSequence(seed).spawn(3)
    r = np.random.default_rng(s_proto)
    density = r.uniform(*_GROUP_DENSITY, size=_N_GROUPS)
    groups = r.random((_N_GROUPS, _N_FEATURES)) < density[:, None]
    protos = groups[np.arange(_N_CLASSES) % _N_GROUPS] ^ (r.random((_N_CLASSES, _N_FEATURES)) < _CLASS_FLIP)

    def draw(stream: np.random.SeedSequence, n: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.random.default_rng(stream)
        y = g.integers(0, _N_CLASSES, size=n)
        x = (g.random((n, _N_FEATURES)) < np.where(protos[y], _P_ON, _P_OFF)).astype(np.float32)
        return x, y

    xtr, ytr = draw(s_train, n_train)
    xte, yte = draw(s_test, n_test)
    return DatasetSplits(
        from_arrays(xtr, ytr, num_classes=_N_CLASSES, name="purchase-synthetic"),
        from_arrays(xte, yte, num_classes=_N_CLASSES, name="purchase-synthetic-test"),
        source=(f"synthetic Purchase-like data (obliviate.data.readers.purchase.make_purchase_synthetic, "
                f"n_train={n_train}, n_test={n_test}, seed={seed})"),
    )
