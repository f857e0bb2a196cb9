"""Training one block, deterministically: the unit that recording, replay and unlearning share.

Minibatch order in block ``k``, epoch ``e`` comes from a generator seeded by ``(seed, k, e)``; any
other randomness (dropout) from torch's generator seeded by ``(seed, k)``; the learning rate from
training progress. So block ``k`` trained from the stored state before it, on the same ids,
reproduces the stored block bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._modes import eval_mode, fast_pooling, model_device
from .._seeds import block_seed
from ..data.base import IndexedDataset, SampleFetcher
from ..errors import ConfigError
from .config import TrainingConfig
from .schedule import lr_at
from .trainer import DEFAULT as DEFAULT_TRAINER
from .trainer import Batch, StepInfo, Trainer


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameters (single-tensor kernels, for determinism)."""
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=False)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)


_mix = block_seed  # the seed of block k and of its epochs (obliviate._seeds)


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Deterministic algorithms and a private torch RNG stream for the duration, restored afterwards."""
    was = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was)


@dataclass(frozen=True)
class BlockRows:
    """The samples a block trains on (canonical id order): ``x``, ``y``, their ``ids`` and, for a user's
    torch ``Dataset``, the ``fetch`` that draws them afresh per minibatch (random transforms)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor | None = None
    fetch: SampleFetcher | None = None

    @classmethod
    def of(cls, dataset: IndexedDataset, positions: torch.Tensor) -> BlockRows:
        """Rows ``positions`` of ``dataset``."""
        return cls(dataset.x[positions], dataset.y[positions], dataset.ids[positions], dataset.fetch)


device_of = model_device  # the device of a model's first parameter or buffer, CPU without either


def resolve_device(name: str) -> torch.device:
    """The torch device of the setting ``training.device``; CUDA asked for but absent is a clear error."""
    if name != "cpu" and not torch.cuda.is_available():
        raise ConfigError(f"training.device = {name!r} but no CUDA device is available here (torch "
                          f"{torch.__version__}); set training.device = \"cpu\"")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"training.device = {name!r} but only {torch.cuda.device_count()} CUDA device(s) are "
                          f"present; use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def train_block(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                *, block: int, num_blocks: int, cfg: TrainingConfig, slots: torch.Tensor | None = None,
                num_slots: int | None = None, trainer: Trainer | None = None, ids: torch.Tensor | None = None,
                fetch: SampleFetcher | None = None) -> float:
    """Train ``E`` epochs on the block's samples ``x, y`` (in canonical id order). Returns the mean loss.

    ``block`` is 1-based. An empty block trains nothing. ``trainer`` trains each minibatch (default:
    the built-in cross-entropy step, :mod:`obliviate.training.trainer`); this loop sets its learning
    rate from the schedule before every step. ``ids`` are the rows' stable ids (given to the trainer;
    default ``0..n-1``); ``fetch`` (a user's torch ``Dataset``) draws each minibatch's samples afresh,
    sample ``i`` under a seed from ``(seed, block, epoch, id)``, instead of reading ``x``.

    ``slots`` (with ``num_slots``) says where each row stands among the block's *recorded* members
    when some of them were deleted: row ``i`` is recorded member ``slots[i]`` of ``num_slots``. The
    minibatches are then drawn over the recorded members exactly as when the block was recorded, and
    a deleted member is left out of its minibatch (whose loss keeps the recorded batch's normaliser).
    So a deletion changes only the minibatches that held deleted samples, by exactly their terms,
    instead of reshuffling the whole block: the retrained trajectory stays as close to the stored one
    as the deletion allows, which is what makes a stitch accurate. No deleted sample is ever read.
    Without ``slots`` the rows are the recorded members themselves (recording, replay).
    """
    n = int(x.shape[0])
    if n == 0:
        return float("nan")
    trainer = DEFAULT_TRAINER if trainer is None else trainer
    row_ids = torch.arange(n) if ids is None else ids
    total_slots = n if slots is None else int(num_slots if num_slots is not None else n)
    row_of: torch.Tensor | None = None
    if slots is not None:
        if len(slots) != n or total_slots < n:
            raise ValueError(f"slots must give one recorded position per row ({n}) within {total_slots}")
        row_of = torch.full((total_slots,), -1, dtype=torch.int64)
        row_of[slots.to(torch.int64)] = torch.arange(n)
    nb = math.ceil(total_slots / cfg.batch_size)
    epochs = cfg.epochs_per_block
    device = device_of(model)
    on_cpu = device.type == "cpu"
    total = torch.zeros((), device=device)
    model.train()
    with deterministic(_mix(cfg.seed, block)):
        for e in range(epochs):
            perm = torch.randperm(total_slots, generator=torch.Generator().manual_seed(_mix(cfg.seed, block, e)))
            for i in range(nb):
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                recorded = len(idx)
                if row_of is not None:
                    idx = row_of[idx]
                    idx = idx[idx >= 0]
                    if len(idx) == 0:  # every sample of this minibatch was deleted
                        continue
                progress = (block - 1 + (e + i / nb) / epochs) / num_blocks
                rate = lr_at(progress, lr=cfg.lr, schedule=cfg.schedule, min_lr_ratio=cfg.min_lr_ratio,
                             warmup_fraction=cfg.warmup_fraction)
                for group in optimizer.param_groups:
                    group["lr"] = rate
                batch_ids = row_ids[idx]
                if fetch is not None:
                    bx, _ = fetch(batch_ids, [_mix(cfg.seed, block, e, int(s)) for s in batch_ids.tolist()])
                else:
                    bx = x[idx]
                by = y[idx]
                if not on_cpu:
                    bx, by = bx.to(device, non_blocking=True), by.to(device, non_blocking=True)
                info = StepInfo(block=block, num_blocks=num_blocks, epoch=e, epochs=epochs, step=i, steps=nb,
                                lr=rate, seed=cfg.seed)
                loss = trainer.run_step(model, optimizer, Batch(bx, by, batch_ids, recorded), info)
                total += loss.to(total.device) * recorded
    return float(total) / (total_slots * epochs)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of ``model`` on ``x, y``, in eval mode (mode restored)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    return accuracy_and_loss(predict_logits(model, x, batch_size=batch_size), y)


def accuracy_and_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``logits`` against labels ``y``."""
    if len(y) == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(logits, y).item()
    return float((logits.argmax(1) == y).float().mean()), float(loss)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched; the model's train/eval mode is restored.
    Plain 2x2 max pooling runs through an exact faster path (:func:`obliviate._modes.fast_pooling`)."""
    device = device_of(model)
    with eval_mode(model), fast_pooling(model):
        if not len(x):
            return torch.empty(0)
        if device.type == "cpu":
            return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
