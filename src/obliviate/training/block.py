"""Training one block, deterministically: the unit that recording, replay and unlearning share.

Minibatch order in block ``k``, epoch ``e`` comes from a generator seeded by ``(seed, k, e)``; any
other randomness (dropout) from torch's generator seeded by ``(seed, k)``; the learning rate from
training progress. So block ``k`` trained from the stored state before it, on the same ids,
reproduces the stored block bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainingConfig
from .schedule import lr_at


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameters (single-tensor kernels, for determinism)."""
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=False)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across platforms and Python versions."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


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


def train_block(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                *, block: int, num_blocks: int, cfg: TrainingConfig) -> float:
    """Train ``E`` epochs on the block's samples ``x, y`` (in canonical id order). Returns the mean loss.

    ``block`` is 1-based. An empty block trains nothing.
    """
    n = int(x.shape[0])
    if n == 0:
        return float("nan")
    nb = math.ceil(n / cfg.batch_size)
    epochs = cfg.epochs_per_block
    total = torch.zeros(())
    model.train()
    with deterministic(_mix(cfg.seed, block)):
        for e in range(epochs):
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(cfg.seed, block, e)))
            for i in range(nb):
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                progress = (block - 1 + (e + i / nb) / epochs) / num_blocks
                rate = lr_at(progress, lr=cfg.lr, schedule=cfg.schedule, min_lr_ratio=cfg.min_lr_ratio,
                             warmup_fraction=cfg.warmup_fraction)
                for group in optimizer.param_groups:
                    group["lr"] = rate
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
    return float(total) / (n * epochs)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of ``model`` on ``x, y``, in eval mode (mode restored)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, x, batch_size=batch_size)
    loss = F.cross_entropy(logits, y).item()
    return float((logits.argmax(1) == y).float().mean()), float(loss)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched; the model's train/eval mode is restored."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else \
            torch.empty(0)
    finally:
        model.train(was)
