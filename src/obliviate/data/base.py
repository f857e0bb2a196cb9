"""Datasets with stable sample ids.

Every training sample carries an integer id that never changes, whatever subset or block it lands in.
Data lives in memory as tensors: block training slices them by index, which is far faster than a
``DataLoader`` for the small blocks DeepObliviate trains on.

>>> import torch
>>> ds = IndexedDataset(torch.arange(3) + 10, torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 0]), 2, "toy")
>>> len(ds), ds.select(torch.tensor([12, 10])).ids.tolist()
(3, [12, 10])
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError, RequestError

#: Draws samples afresh by id, sample ``ids[i]`` under seed ``seeds[i]``: ``(x, y)``. Set by
#: :func:`obliviate.data.torch_dataset.from_torch_dataset`, so a user's random transforms apply in training.
SampleFetcher = Callable[[torch.Tensor, Sequence[int]], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class IndexedDataset:
    """Samples ``x``, integer labels ``y`` and stable integer ``ids``, all in memory.

    ``x`` is float32 of shape ``(n, *input_shape)``; ``y`` and ``ids`` are int64 of shape ``(n,)``.
    ``fetch``, where set (a user's torch ``Dataset``), draws the samples afresh for every training
    minibatch (their random transforms), while ``x`` is their fixed evaluation view.
    """

    ids: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str = "dataset"
    fetch: SampleFetcher | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        if self.x.shape[0] != n or self.y.shape[0] != n:
            raise DataError(
                f"{self.name}: ids, x and y must have the same length, got {n}, {self.x.shape[0]}, "
                f"{self.y.shape[0]}"
            )
        if self.ids.dtype != torch.int64 or self.y.dtype != torch.int64:
            raise DataError(f"{self.name}: ids and labels must be int64 tensors")
        if n and torch.unique(self.ids).numel() != n:
            raise DataError(f"{self.name}: sample ids must be unique")
        if n and (int(self.y.min()) < 0 or int(self.y.max()) >= self.num_classes):
            raise DataError(f"{self.name}: labels must lie in [0, {self.num_classes}), got "
                            f"[{int(self.y.min())}, {int(self.y.max())}]")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def positions(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Row positions of ``ids`` (in the order given); unknown ids raise :class:`RequestError`."""
        want = torch.as_tensor(ids, dtype=torch.int64)
        order = torch.argsort(self.ids)
        sorted_ids = self.ids[order]
        pos = torch.searchsorted(sorted_ids, want).clamp(max=max(len(self) - 1, 0))
        found = sorted_ids[pos] == want if len(self) else torch.zeros_like(want, dtype=torch.bool)
        if not bool(found.all()):
            missing = want[~found].tolist()
            raise RequestError(f"{self.name}: unknown sample ids {missing[:20]}"
                               f"{' ...' if len(missing) > 20 else ''}")
        return order[pos]

    def select(self, ids: torch.Tensor | Sequence[int]) -> IndexedDataset:
        """The samples with the given ids, in that order."""
        pos = self.positions(ids)
        return self.take(pos)

    def take(self, positions: torch.Tensor) -> IndexedDataset:
        """The samples at the given row positions."""
        return IndexedDataset(self.ids[positions], self.x[positions], self.y[positions],
                              self.num_classes, self.name, self.fetch)

    def with_data(self, x: torch.Tensor, y: torch.Tensor) -> IndexedDataset:
        """Same ids, replaced samples and labels (e.g. a canary stamped with a trigger); the replaced
        samples are the data from then on (no ``fetch``)."""
        return IndexedDataset(self.ids, x, y, self.num_classes, self.name)

    def fingerprint(self) -> str:
        """sha256 over ids, labels and samples: tells whether a run is reopened on the same data."""
        h = hashlib.sha256()
        for t in (self.ids, self.y, self.x):
            h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class DatasetSplits:
    """A training set (ids are the ones deletion requests name) and a test set.

    ``source`` says where the data came from, for manifests and reports. ``train_names`` and
    ``test_names`` map ids to the samples' names in the source (an image's relative path), where the
    reader has them: errors about changed data name samples by them.
    """

    train: IndexedDataset
    test: IndexedDataset
    source: str = ""
    train_names: Mapping[int, str] | None = None
    test_names: Mapping[int, str] | None = None

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape


def seeded_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into sorted train and test positions with a seeded permutation.

    >>> tr, te = seeded_split(10, 0.2, 0)
    >>> len(tr), len(te), sorted(set(tr) | set(te)) == list(range(10))
    (8, 2, True)
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def from_arrays(x: np.ndarray, y: np.ndarray, *, num_classes: int | None = None, name: str,
                ids: np.ndarray | None = None) -> IndexedDataset:
    """Build an :class:`IndexedDataset` from numpy arrays (``x`` cast to float32, ``y`` to int64)."""
    y64 = np.asarray(y).astype(np.int64).reshape(-1)
    if num_classes is None:
        num_classes = int(y64.max()) + 1 if y64.size else 0
    id_arr = np.arange(len(y64), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    return IndexedDataset(torch.from_numpy(id_arr.copy()),
                          torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                          torch.from_numpy(y64.copy()), int(num_classes), name)
