"""Users the model demonstrably memorises: what verification needs to have something to detect.

A random sample is rarely memorised (the original and a retrain without it give it the same loss), so
verifying its deletion has no power. A *memorised user* is a small set of training samples whose
labels (and, for ``atypical``, images) no other sample supports:

- ``mislabelled``: each sample gets a wrong label, drawn at random among the other classes;
- ``atypical``: the image is inverted (``1 - x``, unlike any other input) and given a wrong label.

A model can only fit such samples by memorising them, so the original's loss on them is far below
a retrain's: the membership signal the verifier must see disappear. They are planted at dataset
construction from the ``[memorised]`` config section (like the backdoor ``[canary]``): the training
recorder chooses the samples inside the chosen blocks, keeps the choice in the manifest, and every
opening of the run plants them again, so replays, unlearning and oracles all see the same data.

Placement: users go round-robin to blocks ``block..B`` (``block = 0``: the last block only). Late
blocks are where a recipe whose learning rate decays still memorises; earlier users fade as later
blocks train (measured in docs/verification.md).

>>> import torch
>>> from obliviate.data.base import IndexedDataset
>>> ds = IndexedDataset(torch.arange(6), torch.zeros(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2]), 3)
>>> users = choose_memorised_users(ds, [torch.arange(6).numpy()], users=2, size=1, kind="mislabelled",
...                                first_block=1, seed=0)
>>> [len(u["ids"]) for u in users], all(u["block"] == 1 for u in users)
([1, 1], True)
>>> planted = plant_memorised(ds, users)
>>> all(int(planted.y[i]) == u["labels"][0] != int(ds.y[i]) for u in users for i in u["ids"])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .base import IndexedDataset

__all__ = ["KINDS", "choose_memorised_users", "memorised_user_ids", "plant_memorised"]

KINDS = ("mislabelled", "atypical")
_SALT = 0x3E3011


def choose_memorised_users(train: IndexedDataset, blocks: Sequence[np.ndarray], *, users: int, size: int,
                           kind: str, first_block: int, seed: int,
                           exclude: Sequence[int] = ()) -> list[dict[str, Any]]:
    """Choose ``users`` users of ``size`` samples each, round-robin over blocks ``first_block..B``
    (``first_block = 0``: the last block), with their new labels. Returns JSON-ready records
    ``{"user": i, "block": k, "ids": [...], "labels": [...], "kind": kind}``. ``exclude``: ids not to
    use (e.g. the canary's). Deterministic in ``seed``."""
    if kind not in KINDS:
        raise ConfigError(f"Expected memorised kind to be one of {', '.join(KINDS)}, but got {kind!r}")
    if users < 0 or size < 1:
        raise ConfigError(f"Expected memorised users >= 0 and size >= 1, but got {users} and {size}")
    if users == 0:
        return []
    num_blocks = len(blocks)
    start = num_blocks if first_block == 0 else int(first_block)
    if not 1 <= start <= num_blocks:
        raise ConfigError(f"Expected memorised block in [0, {num_blocks}], but got {first_block}")
    rng = np.random.default_rng([int(seed), _SALT])
    taken = {int(i) for i in exclude}
    pools: dict[int, list[int]] = {}
    for k in range(start, num_blocks + 1):
        ids = [int(i) for i in blocks[k - 1] if int(i) not in taken]
        pools[k] = [ids[j] for j in rng.permutation(len(ids))]
    out = []
    span = num_blocks - start + 1
    for u in range(users):
        k = start + u % span
        pool = pools[k]
        if len(pool) < size:
            raise ConfigError(f"block {k} has too few samples left for memorised user {u} of {size} samples; "
                              f"lower memorised.users or memorised.size, or start at an earlier block")
        chosen = sorted(pool[:size])
        del pool[:size]
        true = train.y[train.positions(torch.tensor(chosen))].numpy()
        labels = [int((t + 1 + rng.integers(train.num_classes - 1)) % train.num_classes) for t in true]
        out.append({"user": u, "block": k, "ids": chosen, "labels": labels, "kind": kind})
    return out


def plant_memorised(train: IndexedDataset, users: Sequence[dict[str, Any]]) -> IndexedDataset:
    """``train`` with every memorised user planted: labels replaced, images inverted for ``atypical``."""
    if not users:
        return train
    x, y = train.x.clone(), train.y.clone()
    for u in users:
        pos = train.positions(torch.tensor(u["ids"], dtype=torch.int64))
        y[pos] = torch.tensor(u["labels"], dtype=y.dtype)
        if u["kind"] == "atypical":
            x[pos] = 1.0 - x[pos]
    return train.with_data(x, y)


def memorised_user_ids(manifest: dict[str, Any]) -> list[list[int]]:
    """The memorised users recorded in a run's manifest, as lists of sample ids (user order)."""
    return [list(u["ids"]) for u in manifest.get("memorised", {}).get("users", [])]
