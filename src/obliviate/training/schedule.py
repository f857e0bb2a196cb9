"""Learning rate as a function of training progress, so a replay of any block reproduces it.

Progress runs from 0 (start of block 1) to 1 (end of block B) and is computed from the block index,
the epoch and the minibatch index inside the epoch: it does not depend on how many samples earlier
blocks held, so deleting samples never shifts the schedule of later blocks.

>>> round(lr_at(0.5, lr=1.0, schedule="cosine", min_lr_ratio=0.0), 6)
0.5
>>> lr_at(0.9, lr=1.0, schedule="constant")
1.0
"""

from __future__ import annotations

import math


def lr_at(progress: float, *, lr: float, schedule: str, min_lr_ratio: float = 0.0,
          warmup_fraction: float = 0.0) -> float:
    if warmup_fraction > 0 and progress < warmup_fraction:
        return lr * (progress / warmup_fraction)
    if schedule == "constant":
        return lr
    p = (progress - warmup_fraction) / (1.0 - warmup_fraction) if warmup_fraction > 0 else progress
    p = min(max(p, 0.0), 1.0)
    low = lr * min_lr_ratio
    if schedule == "cosine":
        return low + (lr - low) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "linear":
        return low + (lr - low) * (1.0 - p)
    raise ValueError(f"unknown schedule {schedule!r}")
