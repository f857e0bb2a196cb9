"""Jacobian-based dataset augmentation (Papernot et al., "Practical Black-Box Attacks against Machine
Learning", AsiaCCS 2017): train a substitute from a small seed set and synthetic queries."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data.base import IndexedDataset
from ...errors import ConfigError
from .._train import fit, fresh_copy
from ..base import check_float, check_int
from ..registry import register_attack
from ._base import ExtractionAttack
from .query import QueryFunction


@register_attack("jacobian")
class JacobianAugmentation(ExtractionAttack):
    """Substitute training with Jacobian-based augmentation, labels only by default.

    Label ``seed_size`` pool samples through the victim, train the substitute ``epochs`` epochs, then
    double the set: each sample moves by ``lam * sign(d Z_label / dx)`` of the substitute (the sign of
    ``lam`` flips every ``tau`` rounds, Papernot's periodic step) and is labelled by the victim. Rounds
    continue while the doubled set fits the ``queries`` budget.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> victim = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = JacobianAugmentation(seed_size=20, queries=80, epochs=1)(victim, load_dataset("digits"))
    >>> r.metrics["queries"], r.threat.knowledge
    (80, 'label-only')
    """

    def __init__(self, *, queries: int | None = 1600, seed_size: int = 100, lam: float = 0.1, tau: int = 3,
                 epochs: int = 10, lr: float = 1e-3, output: str = "labels", k: int = 1, decimals: int = 2,
                 architecture: str | None = None,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(queries=queries, output=output, k=k, decimals=decimals, architecture=architecture,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.seed_size = check_int("seed_size", seed_size, 1)
        if self.queries is not None and self.queries < self.seed_size:
            raise ConfigError(f"Expected argument `queries` to be at least `seed_size` ({self.seed_size}), "
                              f"but got {self.queries}")
        self.lam = check_float("lam", lam, 0.0, 1.0, lo_open=True)
        self.tau = check_int("tau", tau, 1)
        self.epochs = check_int("epochs", epochs, 1)
        self.lr = check_float("lr", lr, 0.0, None, lo_open=True)

    def extract(self, query: QueryFunction, pool: IndexedDataset, template: nn.Module) -> nn.Module:
        lo, hi = self.bounds
        budget = self.queries if self.queries is not None else self.seed_size * 16
        rounds = math.floor(math.log2(budget / self.seed_size))
        pick = torch.randperm(len(pool), device=pool.x.device)[: self.seed_size]
        xs = pool.x[pick]
        ys = self._labels(query(xs))
        sub = fresh_copy(template)
        for r in range(rounds + 1):
            fit(sub, xs, ys, epochs=self.epochs, lr=self.lr)
            if r == rounds:
                break
            xg = xs.clone().requires_grad_(True)
            logits = sub(xg)
            (g,) = torch.autograd.grad(logits.gather(1, ys[:, None]).sum(), xg)
            step = self.lam * (-1.0) ** (r // self.tau)
            new = (xs + step * g.sign()).clamp(lo, hi).detach()
            xs = torch.cat([xs, new])
            ys = torch.cat([ys, self._labels(query(new))])
        return sub

    @staticmethod
    def _labels(out: torch.Tensor) -> torch.Tensor:
        return out if out.dtype == torch.int64 else out.argmax(1)
