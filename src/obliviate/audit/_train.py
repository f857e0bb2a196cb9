"""Small, fast training loops for the attacks that train models (copies, poisoned models, evaluators).

Data is in memory, so batches are index slices (no DataLoader). Everything is seeded by the caller's
random state, which :meth:`obliviate.audit.base.Attack.__call__` seeds.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def fresh_copy(model: nn.Module, *, reinit: bool = True) -> nn.Module:
    """A trainable deep copy of ``model``; with ``reinit`` its parameters are drawn anew (same
    architecture, what an attacker who knows the architecture trains)."""
    from .base import TwoClassLogits

    inner = model.model if isinstance(model, TwoClassLogits) else model
    twin = copy.deepcopy(inner)
    if reinit:
        for m in twin.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    twin.requires_grad_(True)
    twin.train()
    if inner is not model:
        wrapped = TwoClassLogits(twin)
        wrapped.train()
        return wrapped
    return twin


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int = 64,
        lr: float = 1e-3, weight_decay: float = 0.0, params: list[nn.Parameter] | None = None) -> nn.Module:
    """Train ``model`` with Adam on ``(x, y)``; ``y`` holds labels (int64) or soft targets (float rows
    summing to 1, e.g. a victim's probabilities). Returns the model in eval mode."""
    model.train()
    trainable = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    soft = torch.is_floating_point(y)
    n = len(x)
    for _ in range(epochs):
        order = torch.randperm(n, device=x.device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            out = model(x[idx])
            loss = -(y[idx] * F.log_softmax(out, 1)).sum(1).mean() if soft else F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model
