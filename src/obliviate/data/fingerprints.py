"""Per-sample fingerprints: which samples of a run's source data changed, went missing or appeared.

A run records, when it is created, the id and a 64-bit content hash (label and sample bytes) of every
training and test sample, and the samples' names where the reader gives them (an image's relative
path). Reopened on its source data, the run compares sample by sample: a sample that was forgotten may
be gone from the source (erasure asks for that); anything else (a changed, missing or new sample) is
an error naming the samples.

>>> import torch
>>> from obliviate.data import IndexedDataset, DatasetSplits
>>> ds = IndexedDataset(torch.arange(3), torch.zeros(3, 2), torch.tensor([0, 1, 0]), 2, "toy")
>>> rec = record(DatasetSplits(ds, ds))
>>> changes(rec, DatasetSplits(ds.take(torch.tensor([0, 1])), ds), forgotten={2})
[]
>>> changes(rec, DatasetSplits(ds.take(torch.tensor([0, 1])), ds), forgotten=set())
['training sample id 2 is missing from the source (only forgotten samples may be removed)']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import torch

from .base import DatasetSplits, IndexedDataset

MAX_NAMED = 10


def sample_hashes(ds: IndexedDataset) -> np.ndarray:
    """A 64-bit content hash (as int64) of each sample: blake2b-64 of its label (int64, little-endian)
    followed by its bytes as stored (float32 for every built-in reader)."""
    n = len(ds)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    x = np.ascontiguousarray(ds.x.detach().cpu().numpy()).reshape(n, -1)
    labels = np.ascontiguousarray(ds.y.numpy().astype("<i8")).view(np.uint8).data
    rows = x.view(np.uint8).reshape(-1).data
    step = x.shape[1] * x.itemsize
    blake2b = hashlib.blake2b
    digests = []
    for i in range(n):  # slices of the two buffers: no per-sample copies (this runs on every open_run)
        h = blake2b(labels[8 * i:8 * i + 8], digest_size=8)
        h.update(rows[step * i:step * (i + 1)])
        digests.append(h.digest())
    return np.frombuffer(b"".join(digests), dtype="<i8").astype(np.int64)  # a writable copy


def record(splits: DatasetSplits) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The payload (tensors, metadata) recording every sample's id and hash, and names where known."""
    tensors = {}
    meta = {}
    for part, ds, names in (("train", splits.train, splits.train_names), ("test", splits.test, splits.test_names)):
        tensors[f"{part}_ids"] = ds.ids.clone()
        tensors[f"{part}_hash"] = torch.from_numpy(sample_hashes(ds))
        if names:
            meta[f"{part}_names"] = json.dumps({str(i): names[i] for i in ds.ids.tolist() if i in names})
    return tensors, meta


def _label(kind: str, i: int, names: Mapping[int, str]) -> str:
    return f"{kind} {names[i]} (id {i})" if i in names else f"{kind} id {i}"


def changes(recorded: tuple[dict[str, torch.Tensor], dict[str, str]], splits: DatasetSplits,
            forgotten: set[int]) -> list[str]:
    """One sentence per changed, missing (and not forgotten) or new sample; at most ``MAX_NAMED`` of each kind."""
    tensors, meta = recorded
    out: list[str] = []
    for part, ds, names, kind, allow in (("train", splits.train, splits.train_names, "training sample", forgotten),
                                         ("test", splits.test, splits.test_names, "test sample", set())):
        rec = dict(zip(tensors[f"{part}_ids"].tolist(), tensors[f"{part}_hash"].tolist()))
        rec_names = {int(k): v for k, v in json.loads(meta.get(f"{part}_names", "{}")).items()}
        now = dict(zip(ds.ids.tolist(), sample_hashes(ds).tolist()))
        names = {**rec_names, **(names or {})}
        changed = [i for i in now if i in rec and now[i] != rec[i]]
        missing = [i for i in rec if i not in now and i not in allow]
        added = [i for i in now if i not in rec]
        for ids, what in ((changed, "changed since the run was trained"),
                          (missing, "is missing from the source (only forgotten samples may be removed)"),
                          (added, "is new (not part of the run; remove it, or train a new run)")):
            for i in ids[:MAX_NAMED]:
                out.append(f"{_label(kind, i, names)} {what}")
            if len(ids) > MAX_NAMED:
                out.append(f"and {len(ids) - MAX_NAMED} more {kind}s that {what.split(' (')[0].replace('is ', 'are ')}")
    return out
