"""The user's training step: a label-smoothing loss and AdamW with weight decay, as an obliviate Trainer.

Named by import path (``mypkg.training:trainer``), the trainer is recorded in the run, so ``forget``,
``verify`` and ``open_run`` rebuild it with nothing passed. The loss returns one value per sample
(``reduction="none"``): the library reduces it with the deletion rule (docs/training.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from obliviate import Trainer


def smoothed(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with label smoothing 0.1, one loss per sample."""
    return F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)


def adamw(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW with weight decay; its learning rate is set before every step by the run's schedule."""
    return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.05, foreach=False)


trainer = Trainer(loss=smoothed, optimizer=adamw, name="smoothed-adamw")
