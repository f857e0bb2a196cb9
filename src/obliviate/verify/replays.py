"""The models a candidate is judged against, for a set ``U`` of ids of a run: the per-deletion noise floor.

Let ``d`` be the first block holding a sample of ``U``. Blocks ``1..d-1`` never saw ``U``, so every
model here starts from the stored state and optimizer state after block ``d - 1`` and replays blocks
``d..B`` with the run's own block trainer (:func:`obliviate.training.block.train_block`, continuing
from the chain's reconstruction after every block exactly as the engine does):

- ``oracles``: blocks ``d..B`` without ``U``, under other data-order seeds (one per oracle,
  :mod:`obliviate.verify.settings`). They are what "never saw ``U``" looks like for this run.
- ``exact``: the same replay with the run's own seed: the engine's exact mode, bit for bit on CPU
  with the same thread count. Kept apart, never one of the oracles.
- ``original``: blocks ``d..B`` *with* ``U`` under the run's seed. Before the deletion is committed it
  is the stored model itself (taken from the store, not retrained); afterwards the original is purged,
  and the replay rebuilds it in memory (bit for bit when no later request changed blocks ``d..B``)
  only to measure the forgotten test's power. It is never written anywhere.

Works before or after the deletion is committed: ``U``'s blocks come from the current membership when
its samples are still members, else from the run's partition recomputed from its configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import RequestError
from ..training.chain import State, advance, load_state, optimizer_state_after, state_after
from ..training.run import Run
from .oracles import _torch_threads
from .settings import VerifySettings

__all__ = ["OracleSet", "as_model", "replay_original", "train_oracle_set", "u_blocks"]


@dataclass
class OracleSet:
    """The oracles (final states), the exact replay and the original for ``ids`` of a run."""

    ids: list[int]
    d: int
    seeds: list[int]
    states: list[State]
    exact: State
    original: State
    original_source: str  # "stored" or "replayed"
    committed: bool  # whether U was already deleted from the run when these were built
    train_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, num_blocks: int) -> dict[str, Any]:
        return {"n": len(self.seeds), "seeds": list(self.seeds), "d": self.d,
                "shared_blocks": f"1..{self.d - 1}" if self.d > 1 else "none",
                "retrained_blocks": f"{self.d}..{num_blocks}", "original": self.original_source,
                "deletion_committed": self.committed, "train_time_s": self.train_time_s,
                "seed_rule": "run seed + 1000 (1 + seed set) + i; data order only, same start after block d-1"}


def u_blocks(run: Run, ids: Sequence[int], *, block: int | None = None) -> tuple[dict[int, int], bool]:
    """Block of every id of ``U`` and whether ``U`` is already deleted from the run (committed).

    Ids must be all current members (not yet forgotten) or all deleted by the run's requests. For
    deleted ids the blocks come from the partition recomputed from the configuration, or from
    ``block`` when the caller knows they all sat in that one (a request with ``d == m``)."""
    ids = [int(i) for i in ids]
    if not ids:
        raise RequestError("Expected at least one sample id to verify")
    current = run.block_of()
    members = [i for i in ids if i in current]
    if len(members) == len(ids):
        return {i: current[i] for i in ids}, False
    deleted = run.deleted_ids()
    unknown = [i for i in ids if i not in current and i not in deleted]
    if unknown:
        raise RequestError(f"ids {unknown[:5]} are neither training samples of {run.path} nor deleted by it; "
                           f"pass ids of the run's training set")
    if members:
        raise RequestError(f"some ids are still in {run.path} ({members[:5]}) and others already deleted; verify "
                           f"one request at a time (the ids of one forget)")
    if block is not None:
        return {i: int(block) for i in ids}, True
    from ..training.partition import partition_ids, read_id_file
    from ..training.run import prepare_data

    t = run.config.training
    raw = prepare_data(run.config).train  # labels before planting: what the partition was computed on
    order = None
    if t.partition == "order":
        order = read_id_file(t.order_file)
    blocks = partition_ids(raw.ids.numpy(), raw.y.numpy(), t.blocks, strategy=t.partition, seed=t.seed, order=order)
    where = {int(i): k + 1 for k, b in enumerate(blocks) for i in b}
    return {i: where[i] for i in ids}, True


def _replay(run: Run, d: int, start: tuple[State, dict[str, Any]], members: list[np.ndarray], seed: int,
            last: int | None = None) -> State:
    """Blocks ``d..last`` (default: the last block) replayed from ``start`` with data-order ``seed``."""
    cfg = dataclasses.replace(run.config.training, seed=int(seed))
    model = run.build_model()
    prev = {k: v.clone() for k, v in start[0].items()}
    load_state(model, prev)
    optimizer = run.trainer.make_optimizer(model, cfg)
    optimizer.load_state_dict(copy.deepcopy(start[1]))
    B = run.num_blocks
    for k in range(d, (B if last is None else last) + 1):
        ids = np.ascontiguousarray(members[k - d], dtype=np.int64)
        pos = run.train.positions(torch.from_numpy(ids))
        slots, num_slots = _slots(run.recorded_block_ids(k), ids)
        _, prev, _ = advance(model, optimizer, prev, run.rows(pos), block=k, num_blocks=B, cfg=cfg,
                             trainer=run.trainer, slots=slots, num_slots=num_slots)
    return prev


def _slots(recorded: np.ndarray, ids: np.ndarray) -> tuple[torch.Tensor | None, int | None]:
    """The recorded minibatch slots of ``ids`` (the engine's rule, ``train_block``), or None when the
    block is trained as recorded (or ids outside the recorded layout, in runs written before it)."""
    if len(ids) == len(recorded) and np.array_equal(ids, recorded):
        return None, None
    where = np.searchsorted(recorded, ids)
    if len(ids) and (where.max() >= len(recorded) or not np.array_equal(recorded[where], ids)):
        return None, None
    return torch.from_numpy(where.astype(np.int64)), len(recorded)


def replay_original(run: Run, where: dict[int, int], start: tuple[State, dict[str, Any]] | None = None) -> State:
    """Blocks ``d..B`` replayed with ``U`` put back into its blocks (``where``: id -> block), under the
    run's own seed: the original model, rebuilt in memory after its deletion purged it."""
    d, B = min(where.values()), run.num_blocks
    if start is None:
        start = (state_after(run.store, d - 1), optimizer_state_after(run.store, d - 1))
    with_u = [np.array(sorted([*run.block_ids(k).tolist(), *[i for i, b in where.items() if b == k]]), dtype=np.int64)
              for k in range(d, B + 1)]
    return _replay(run, d, start, with_u, run.config.training.seed)


def train_oracle_set(run: Run, ids: Sequence[int], settings: VerifySettings | None = None) -> OracleSet:
    """Train the oracles, the exact replay and (after a commit) the original for ``ids`` of ``run``.

    Cost: ``oracles + 1`` replays of blocks ``d..B`` (one more once the deletion is committed).

    >>> import tempfile
    >>> from obliviate.training import RunConfig, train_run
    >>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}),
    ...                 tempfile.mkdtemp() + "/r")
    >>> o = train_oracle_set(run, [int(run.block_ids(2)[0])], VerifySettings(oracles=4))
    >>> o.d, len(o.states), o.original_source
    (2, 4, 'stored')
    """
    settings = settings or VerifySettings()
    if run.status != "complete":
        raise RequestError(f"{run.path} is not fully trained; finish it before verifying")
    where, committed = u_blocks(run, ids)
    u = sorted(where)
    d = min(where.values())
    B = run.num_blocks
    u_set = set(u)
    without = [np.array([i for i in run.block_ids(k) if i not in u_set], dtype=np.int64) for k in range(d, B + 1)]
    t0 = time.perf_counter()
    with _torch_threads(settings.threads):
        start = (state_after(run.store, d - 1), optimizer_state_after(run.store, d - 1))
        run_seed = run.config.training.seed
        seeds = settings.oracle_seeds(run_seed)
        states = [_replay(run, d, start, without, s) for s in seeds]
        exact = _replay(run, d, start, without, run_seed)
        if committed:
            original, source = replay_original(run, where, start), "replayed"
        else:
            original, source = state_after(run.store, B), "stored"
    return OracleSet(u, d, seeds, states, exact, original, source, committed, time.perf_counter() - t0)


def as_model(run: Run, state: State) -> nn.Module:
    """A model of the run's architecture holding ``state``, in eval mode."""
    model = run.build_model()
    load_state(model, state)
    model.eval()
    return model
