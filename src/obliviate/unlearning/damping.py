"""Memorised users, and the stitch's damping for them.

After the deleted blocks are retrained, the engine measures how differently the two trajectories
treat ``U``: the median per-sample cross-entropy on ``U`` of the retrained state ``theta'_m`` minus
that of the stored ``theta_m``. A sample the model did not single out (most random samples) leaves a
gap near zero (measured on real MNIST, LeNet-5, B = 100: 0.00-0.08 nats); a user the model memorised
(a mislabelled or atypical one, a canary) leaves a larger one (0.24-2.4 nats for 25-sample canary
users in blocks 90-96, smaller the later the block, as the learning rate decays). Above
``memorised_gap`` nats (default 0.1) the user counts as memorised, and so does a smaller gap that is
``memorised_ratio`` times the two states' mean loss difference on validation samples (late in a decaying
schedule a canary user's gap is 0.05 nats, 20-40 times that shift; ``ForgetOptions``).

For memorised users the plain stitch ``theta_B + (theta'_t - theta_t)`` over-forgets: it adds the
stored updates after ``t``, which partly undid the memory of ``U`` on the old trajectory, to a state
that never had it, and lands past where the exact retrain would (measured on real MNIST: loss on U
25-37 for the plain stitch, 12-15 for exact retrains, 7 for the original). The engine then damps
the stitch, ``theta_B + a (theta'_t - theta_t)``, with ``a`` in [0, 1] chosen so that the stitched
model's median loss on ``U`` equals the retrained state's (``theta'_t`` never saw ``U``): the
residual memory the stitch leaves is matched to a model trained without ``U``, on ``U`` itself.
``a`` is found by bisection with forward passes over ``U`` only.

>>> import torch
>>> f = lambda a: 7.0 + 25.0 * a       # the stitched model's loss on U as a function of a
>>> round(solve_damping(f, target=13.0), 3)
0.24
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..training.block import predict_logits


@torch.no_grad()
def median_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Median per-sample cross-entropy of ``model`` on ``x, y`` (eval mode)."""
    if len(y) == 0:
        return float("nan")
    return float(F.cross_entropy(predict_logits(model, x), y, reduction="none").median())


def solve_damping(loss_at: Callable[[float], float], *, target: float, steps: int = 12) -> float:
    """The ``a`` in [0, 1] with ``loss_at(a) == target`` (bisection; ``loss_at`` grows with ``a``).

    Returns 1 when even the plain stitch stays at or below the target, 0 when the stored model is
    already at or above it."""
    if loss_at(1.0) <= target:
        return 1.0
    if loss_at(0.0) >= target:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if loss_at(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
