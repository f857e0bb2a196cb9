"""Exact unlearning in SISA: which shards to retrain, from which slice, and what the request did.

For every shard holding a deleted id, the shard is restored to its checkpoint before the earliest slice
holding one and the remaining slices are retrained without the deleted ids (:mod:`.training`), so the
result equals a SISA ensemble trained from scratch on the same assignment without those ids.

>>> parts = [[np.array([0, 1]), np.array([2, 3])], [np.array([4, 5]), np.array([6, 7])]]
>>> affected_shards(parts, np.array([3, 6]))
[(0, 2), (1, 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import RequestError


@dataclass
class SisaForgetResult:
    """What a SISA forget request did.

    ``retrained`` has one entry per affected shard: ``{"shard", "from_slice", "slices_retrained", "ids"}``
    (shards 0-based, slices 1-based). ``samples_retrained`` and ``samples_total`` count sample-epochs (the
    training cost of the request and of training the ensemble from scratch on the data it holds now); their
    ratio is the request's analytical speedup. ``speedup_vs_recorded`` divides the recorded full training
    time by this request's wall time (a figure from two moments; benchmarks/bench_sisa.py times both
    interleaved instead).
    """

    ids_requested: list[int]
    ids_deleted: list[int]
    ids_already_deleted: list[int]
    shards_total: int
    slices_per_shard: int
    shards_affected: list[int]
    retrained: list[dict[str, Any]]
    slices_retrained: int
    slices_total: int
    samples_retrained: int
    samples_total: int
    outcome: str  # "retrained" or "no-op"
    wall_time_s: float = 0.0
    retrain_time_s: float = 0.0
    recorded_train_s: float = 0.0
    speedup_vs_recorded: float = float("nan")
    purged_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def noop(self) -> bool:
        return self.outcome == "no-op"

    @property
    def analytical_speedup(self) -> float:
        """Sample-epochs of training the ensemble from scratch over those this request retrained."""
        return self.samples_total / self.samples_retrained if self.samples_retrained else float("inf")


def split_request(ids: Sequence[int] | torch.Tensor | np.ndarray, current: np.ndarray,
                  deleted: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(requested, new, already)``: the ids as given, the ones to delete now, the ones deleted before.
    Ids never trained on raise :class:`~obliviate.errors.RequestError`."""
    requested = [int(i) for i in np.asarray(torch.as_tensor(ids, dtype=torch.int64)).reshape(-1)]
    if not requested:
        raise RequestError("the request names no sample ids; give at least one id to forget")
    unique = np.unique(np.asarray(requested, dtype=np.int64))
    already = unique[np.isin(unique, deleted)]
    unknown = unique[~np.isin(unique, current) & ~np.isin(unique, deleted)]
    if len(unknown):
        shown = unknown[:20].tolist()
        raise RequestError(f"unknown sample ids {shown}{' ...' if len(unknown) > 20 else ''}: the ensemble "
                           f"was never trained on them; check the ids (nothing was changed)")
    return requested, unique[np.isin(unique, current)], already


def affected_shards(assignment: list[list[np.ndarray]], new: np.ndarray) -> list[tuple[int, int]]:
    """``(shard, first slice holding a deleted id)`` for every shard holding one, in shard order."""
    out = []
    for s, shard in enumerate(assignment):
        hit = [r for r, part in enumerate(shard, 1) if np.isin(part, new).any()]
        if hit:
            out.append((s, hit[0]))
    return out
