"""A user's map-style ``torch.utils.data.Dataset`` as a run's training set, transforms kept.

:func:`from_torch_dataset` wraps any dataset whose ``dataset[i]`` returns ``(sample, label)`` and gives
every sample a stable id (``ids=`` or ``id_of=``). The result is an :class:`IndexedDataset` whose ``x``
holds every sample fetched once under a fixed seed (the *view* that evaluation, fingerprints and
verification read) and whose ``fetch`` draws samples afresh for every minibatch, so random transforms
are applied at training time. Each sample is fetched under its own seed, derived by the training loop
from ``(seed, block, epoch, id)``: a replay draws the same transform for every sample bit for bit, and
deleting a sample changes nobody else's transform.

Randomness seeded per sample: torch's CPU generator, Python's ``random`` and NumPy's global generator
(each restored afterwards). A transform with its own private generator is not reproducible.

>>> import torch
>>> class Noisy(torch.utils.data.Dataset):
...     def __len__(self): return 4
...     def __getitem__(self, i): return torch.full((1, 2, 2), float(i)) + torch.rand(1, 2, 2) * 0.1, i % 2
>>> ds = from_torch_dataset(Noisy(), ids=[10, 11, 12, 13], num_classes=2)
>>> ds.ids.tolist(), ds.y.tolist(), ds.input_shape
([10, 11, 12, 13], [0, 1, 0, 1], (1, 2, 2))
>>> a, _ = ds.fetch(torch.tensor([12, 10]), [1, 2])
>>> b, _ = ds.fetch(torch.tensor([12, 10]), [1, 2])
>>> torch.equal(a, b), bool((a != ds.x[[2, 0]]).any())
(True, True)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import IndexedDataset

#: The seed every sample's evaluation view (``x``) is fetched under.
VIEW_SEED = 0x0B11_71A7E


class TorchDatasetFetcher:
    """Fetches samples of a map-style dataset by stable id, each under its own seed."""

    def __init__(self, dataset: Any, index_of: dict[int, int], name: str) -> None:
        self.dataset = dataset
        self.index_of = index_of
        self.name = name

    def one(self, sample_id: int, seed: int) -> tuple[torch.Tensor, int]:
        """Sample ``sample_id`` fetched under ``seed`` (torch, ``random`` and NumPy seeded, then restored)."""
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed & 0xFFFFFFFF)
                item = self.dataset[self.index_of[sample_id]]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return _split_item(item, sample_id, self.name)

    def __call__(self, ids: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples ``ids`` (sample ``ids[i]`` under ``seeds[i]``), stacked, and their labels."""
        items = [self.one(int(i), int(s)) for i, s in zip(ids.tolist(), seeds)]
        if not items:
            return torch.empty(0), torch.empty(0, dtype=torch.int64)
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)


def _split_item(item: Any, sample_id: int, name: str) -> tuple[torch.Tensor, int]:
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"{name}: Expected dataset[i] to return (sample, label), but got {type(item).__name__} "
                        f"for sample id {sample_id}")
    x, y = item[0], item[1]
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    label = int(y.item()) if isinstance(y, torch.Tensor) else int(y)
    return x.to(torch.float32), label


def from_torch_dataset(dataset: Any, *, ids: Sequence[int] | None = None, id_of: Callable[[int], int] | None = None,
                       num_classes: int | None = None, name: str = "torch-dataset") -> IndexedDataset:
    """A map-style ``dataset`` (``len`` and ``dataset[i] -> (sample, label)``) with stable sample ids.

    Give the ids either as ``ids`` (one per index, in index order) or as ``id_of(index)``; without
    either, the index itself is the id (stable only while the dataset's order never changes).
    ``num_classes`` defaults to the largest label plus one.
    """
    if ids is not None and id_of is not None:
        raise DataError("give the sample ids either as ids= or as id_of=, not both")
    try:
        n = len(dataset)
    except TypeError:
        raise DataError(f"{name}: Expected a map-style dataset with len(), but got {type(dataset).__name__} "
                        f"(an IterableDataset has no stable positions; load it into a list first)") from None
    if ids is None:
        ids = [int(id_of(i)) for i in range(n)] if id_of is not None else list(range(n))
    id_list = [int(i) for i in ids]
    if len(id_list) != n:
        raise DataError(f"{name}: Expected one id per sample ({n}), but got {len(id_list)} ids")
    fetcher = TorchDatasetFetcher(dataset, {sid: i for i, sid in enumerate(id_list)}, name)
    if len(fetcher.index_of) != n:
        raise DataError(f"{name}: sample ids must be unique")
    items = [fetcher.one(sid, VIEW_SEED) for sid in id_list]
    shapes = {tuple(x.shape) for x, _ in items}
    if len(shapes) > 1:
        raise DataError(f"{name}: Expected every sample to have the same shape, but got {sorted(shapes)[:3]}")
    x = torch.stack([x for x, _ in items]) if items else torch.empty(0)
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    classes = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if n else 0)
    return IndexedDataset(torch.tensor(id_list, dtype=torch.int64), x, y, classes, name, fetch=fetcher)
