"""Sharding, slicing and training a shard slice by slice (the S, I and S of SISA).

The training ids are dealt at random (seeded by ``config.seed``) into ``S`` shards, and each shard's ids
into ``R`` slices. Slice ``r`` trains ``config.slice_epochs()[r - 1]`` epochs on the union of slices
``1..r`` through :func:`obliviate.training.train_block` (``block = r``), continuing from the model and
optimizer state after slice ``r - 1``; so retraining from a stored checkpoint reproduces a from-scratch
training bit for bit on CPU (one machine, one thread count). Each shard has its own seeds: initial weights
(``model_factory`` runs under a torch seed derived from ``(seed, shard)``) and minibatch order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...data.base import IndexedDataset
from ...errors import ConfigError
from ...training.block import BlockRows, train_block
from ...training.chain import load_state
from ...training.trainer import DEFAULT as DEFAULT_TRAINER
from ...training.trainer import Trainer
from .config import SALT_INIT, SisaConfig, derive_seed
from .persistence import Checkpoint, CheckpointKeeper

ModelFactory = Callable[[], nn.Module]


def seeded_assignment(config: SisaConfig, train: IndexedDataset) -> list[list[np.ndarray]]:
    """``S`` shards of ``R`` sorted id arrays, dealt at random from ``train``'s ids (sizes differ by <= 1)."""
    n, cells = len(train), config.shards * config.slices
    if n < cells:
        raise ConfigError(f"Expected `shards * slices` to be at most the {n} training samples, but got "
                          f"{config.shards} x {config.slices} = {cells}")
    ids = np.sort(train.ids.numpy())
    order = ids[np.random.default_rng([config.seed, 0x5157A]).permutation(n)]
    return [[np.sort(part) for part in np.array_split(shard, config.slices)]
            for shard in np.array_split(order, config.shards)]


def check_assignment(config: SisaConfig, train: IndexedDataset,
                     assignment: Sequence[Sequence[Sequence[int] | np.ndarray]]) -> list[list[np.ndarray]]:
    """A given assignment, checked to hold every id of ``train`` exactly once in ``S x R`` slices."""
    shape = (config.shards, config.slices)
    if len(assignment) != shape[0] or any(len(shard) != shape[1] for shard in assignment):
        raise ConfigError(f"Expected `assignment` to hold {shape[0]} shards of {shape[1]} slices each")
    parts = [[np.sort(np.asarray(part, dtype=np.int64).reshape(-1)) for part in shard] for shard in assignment]
    flat = np.concatenate([p for shard in parts for p in shard])
    have = np.sort(train.ids.numpy())
    if len(flat) != len(have) or not np.array_equal(np.sort(flat), have):
        extra = np.setdiff1d(flat, have)[:10].tolist()
        missing = np.setdiff1d(have, flat)[:10].tolist()
        dup = len(flat) - len(np.unique(flat))
        raise ConfigError(f"Expected `assignment` to hold every id of the training set exactly once "
                          f"(unknown: {extra}, missing: {missing}, duplicates: {dup})")
    return parts


def sample_epochs(config: SisaConfig, parts: Sequence[np.ndarray], first: int = 1) -> int:
    """Sample-epochs of training one shard's slices ``first..R`` (``parts``: its slices' ids)."""
    sizes = np.cumsum([len(p) for p in parts])
    return int(sum(int(sizes[r - 1]) * e for r, e in enumerate(config.slice_epochs(), 1) if r >= first))


def new_model(config: SisaConfig, factory: ModelFactory, shard: int) -> nn.Module:
    """``factory()`` under the shard's own init seed (so an unseeded factory is deterministic too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, SALT_INIT, shard))
        model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model_factory` to return an nn.Module, but got {type(model).__name__}")
    return model


def restore(config: SisaConfig, factory: ModelFactory, keeper: CheckpointKeeper, shard: int,
            ck: Checkpoint, trainer: Trainer = DEFAULT_TRAINER) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh model and optimizer holding ``shard``'s state at checkpoint ``ck``."""
    state, opt_state = keeper.states(ck)
    model = new_model(config, factory, shard)
    load_state(model, state)
    optimizer = trainer.make_optimizer(model, config.training)
    optimizer.load_state_dict(opt_state)
    return model, optimizer


def train_slices(config: SisaConfig, train: IndexedDataset, keeper: CheckpointKeeper, shard: int,
                 model: nn.Module, optimizer: torch.optim.Optimizer, parts: list[np.ndarray],
                 first: int, trainer: Trainer = DEFAULT_TRAINER) -> list[Checkpoint]:
    """Train slices ``first..R`` of ``shard`` (model and optimizer hold the state after ``first - 1``)
    with ``trainer``; one checkpoint per slice."""
    R = config.slices
    device = next(model.parameters()).device
    out = []
    for r in range(first, R + 1):
        cfg = config.shard_training(shard, r)
        union = np.sort(np.concatenate(parts[:r]))
        pos = train.positions(torch.from_numpy(union))
        t0 = time.perf_counter()
        rows = BlockRows.of(train, pos)
        loss = train_block(model, optimizer, rows.x.to(device), rows.y.to(device), block=r, num_blocks=R, cfg=cfg,
                           trainer=trainer, ids=rows.ids, fetch=rows.fetch)
        wall = time.perf_counter() - t0
        out.append(keeper.save(shard, r, model, optimizer, size=len(union), epochs=cfg.epochs_per_block,
                               loss=loss, wall=wall))
    return out


def train_shard(config: SisaConfig, train: IndexedDataset, factory: ModelFactory, keeper: CheckpointKeeper,
                shard: int, parts: list[np.ndarray],
                trainer: Trainer = DEFAULT_TRAINER) -> tuple[nn.Module, list[Checkpoint], float]:
    """Train one shard from scratch: ``(model, checkpoints 0..R, wall seconds)``. The time runs from the
    built model and optimizer on (torch imports modules lazily when the first optimizer of a process is
    built: seconds that would inflate every speedup against this time)."""
    model = new_model(config, factory, shard)
    optimizer = trainer.make_optimizer(model, config.training)
    t0 = time.perf_counter()
    checkpoints = [keeper.save(shard, 0, model, optimizer, size=0, epochs=0, loss=float("nan"), wall=0.0)]
    checkpoints += train_slices(config, train, keeper, shard, model, optimizer, parts, 1, trainer)
    return model, checkpoints, time.perf_counter() - t0
