"""Slice checkpoints (in memory or as safetensors in a :class:`~obliviate.store.RunStore`) and the SISA
manifest: partition, deleted ids, per-slice records, request history. Never pickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import StoreError
from ...store import RunStore, flatten_optimizer_state, unflatten_optimizer_state
from ...training.chain import clone_state
from ...training.run import partition_payload

State = dict[str, torch.Tensor]
KIND = "sisa-ensemble"


@dataclass
class Checkpoint:
    """A shard's model and optimizer state after a slice: in memory (tensors) or in the store (refs)."""

    size: int  # samples the slice trained on (the union of slices 1..r)
    epochs: int  # epochs the slice trained
    loss: float
    wall_time_s: float
    model: State | None = None
    optimizer: tuple[State, dict[str, str]] | None = None
    refs: dict[str, Any] | None = None

    def record(self, index: int) -> dict[str, Any]:
        loss = None if self.loss != self.loss else self.loss  # NaN (empty slice) is not JSON
        return {"index": index, "size": self.size, "epochs": self.epochs, "loss": loss,
                "wall_time_s": self.wall_time_s, **(self.refs or {})}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Checkpoint:
        # "epochs" is a record only (training reads the config); stores written before it was kept lack it
        return cls(rec["size"], int(rec.get("epochs", 0)), float("nan") if rec["loss"] is None else rec["loss"],
                   rec["wall_time_s"], refs={"model": rec["model"], "optimizer": rec["optimizer"]})


class CheckpointKeeper:
    """Saves and restores :class:`Checkpoint` s: in memory without a store, as safetensors with one."""

    def __init__(self, store: RunStore | None) -> None:
        self.store = store

    def save(self, shard: int, r: int, model: nn.Module, optimizer: torch.optim.Optimizer, *,
             size: int, epochs: int, loss: float, wall: float) -> Checkpoint:
        state = clone_state(model)
        opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
        if self.store is None:
            return Checkpoint(size, epochs, loss, wall, model=state, optimizer=(opt_tensors, opt_meta))
        tag = f"s{shard:03d}-r{r:03d}"
        refs = {"model": self.store.put(f"{tag}-model", state),
                "optimizer": self.store.put(f"{tag}-optimizer", opt_tensors, opt_meta)}
        return Checkpoint(size, epochs, loss, wall, refs=refs)

    def states(self, ck: Checkpoint) -> tuple[State, dict[str, Any]]:
        """The model state and the optimizer ``state_dict`` held by ``ck`` (hash-checked when stored)."""
        if ck.refs is not None:
            assert self.store is not None
            state = self.store.get(ck.refs["model"])
            opt_tensors, opt_meta = self.store.get_with_metadata(ck.refs["optimizer"])
        else:
            assert ck.model is not None and ck.optimizer is not None
            state, (opt_tensors, opt_meta) = ck.model, ck.optimizer
        return state, unflatten_optimizer_state(opt_tensors, opt_meta)


def partition_to_payload(assignment: list[list[np.ndarray]]) -> State:
    """Shard/slice membership as the run's partition payload (slices flattened shard-major)."""
    return partition_payload([part for shard in assignment for part in shard], np.zeros(0, np.int64))


def partition_from_payload(tensors: State, shards: int, slices: int) -> list[list[np.ndarray]]:
    ids, offsets = tensors["ids"].numpy(), tensors["offsets"].numpy()
    if len(offsets) != shards * slices + 1:
        raise StoreError(f"the stored partition has {len(offsets) - 1} slices, the config says {shards} x {slices}")
    flat = [ids[offsets[i]:offsets[i + 1]].copy() for i in range(shards * slices)]
    return [flat[s * slices:(s + 1) * slices] for s in range(shards)]


def build_manifest(store: RunStore, *, status: str, assignment: list[list[np.ndarray]], deleted: np.ndarray,
                   checkpoints: list[list[Checkpoint]], kept_fingerprint: str, train_wall_s: float,
                   request: dict[str, Any] | None = None) -> dict[str, Any]:
    """The next manifest: the current one with the partition, deletions, checkpoints and request added."""
    manifest = dict(store.manifest)
    n_kept = sum(len(p) for shard in assignment for p in shard)
    manifest.update({
        "status": status,
        "revision": int(manifest.get("revision", 0)) + 1,
        "partition": store.put("partition", partition_to_payload(assignment)),
        "deleted": store.put("deleted", {"ids": torch.from_numpy(np.asarray(deleted, dtype=np.int64))}),
        "data": {**manifest.get("data", {}), "n_kept": int(n_kept), "kept_fingerprint": kept_fingerprint},
        "timing": {"train_wall_s": train_wall_s},
        "shards": [{"slices": [ck.record(r) for r, ck in enumerate(shard)]} for shard in checkpoints],
        "requests": [*manifest.get("requests", []), *([request] if request else [])],
    })
    return manifest


def read_manifest(store: RunStore) -> tuple[dict[str, Any], list[list[np.ndarray]], np.ndarray,
                                            list[list[Checkpoint]]]:
    """``(manifest, assignment, deleted, checkpoints)`` of a complete SISA store (reload it first)."""
    m = store.manifest
    if m.get("kind") != KIND:
        raise StoreError(f"{store.root} is not a SISA ensemble (kind {m.get('kind')!r})")
    if m.get("status") != "complete":
        raise StoreError(f"{store.root} holds a SISA ensemble whose training did not finish; train again")
    config = m["config"]
    assignment = partition_from_payload(store.get(m["partition"]), config["shards"], config["slices"])
    deleted = store.get(m["deleted"])["ids"].numpy()
    checkpoints = [[Checkpoint.from_record(rec) for rec in shard["slices"]] for shard in m["shards"]]
    return m, assignment, deleted, checkpoints
