"""The Jacobian-based saliency map attack (Papernot et al., "The Limitations of Deep Learning in
Adversarial Settings", IEEE EuroS&P 2016), an L0 attack, batched over inputs."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..base import CountedModel, check_float
from ..registry import register_attack
from ._base import EvasionAttack


@register_attack("jsma")
class JSMA(EvasionAttack):
    """Targeted JSMA: each iteration picks the pair of features whose joint saliency (raising the target
    logit while lowering the others) is largest and moves both by ``theta`` (to the bound); stops on
    success or when ``gamma`` (a fraction of the features) have been changed. Two backward passes per
    active input and iteration. Targeted by construction (random target, seeded).

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = JSMA(gamma=0.1, max_samples=8)(model, load_dataset("digits"))
    >>> r.threat.goal, r.metrics["l0_mean"] != r.metrics["l0_mean"] or r.metrics["l0_mean"] <= 6
    ('targeted', True)
    """

    norm = "l0"

    def __init__(self, *, theta: float = 1.0, gamma: float = 0.15, batch_size: int = 256, seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=None, targeted=True, batch_size=batch_size, seed=seed, max_samples=max_samples)
        self.theta = check_float("theta", theta, -1.0, 1.0)
        if self.theta == 0:
            check_float("theta", theta, 0.0, 1.0, lo_open=True)
        self.gamma = check_float("gamma", gamma, 0.0, 1.0, lo_open=True)

    def budget(self) -> dict[str, Any]:
        return {"norm": "l0", "eps": self.gamma, "theta": self.theta}

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        t = target if target is not None else (y + 1) % 10
        n, d = len(x), x[0].numel()
        adv = x.clone().flatten(1)
        increase = self.theta > 0
        domain = adv < hi_b if increase else adv > lo_b  # features that can still move
        iters = int(math.floor(d * self.gamma / 2))
        active = torch.arange(n, device=x.device)
        chunk = max(1, int(2e7 // (d * d)))  # bound the pair tensors' memory
        eye = torch.eye(d, dtype=torch.bool, device=x.device)
        for _ in range(iters):
            if active.numel() == 0:
                break
            xa = adv[active].view(-1, *x.shape[1:]).requires_grad_(True)
            logits = model(xa)
            ta = t[active]
            done = logits.argmax(1) == ta
            (g_t,) = torch.autograd.grad(logits.gather(1, ta[:, None]).sum(), xa, retain_graph=True)
            (g_all,) = torch.autograd.grad(logits.sum(), xa)
            alpha = g_t.flatten(1)
            beta = g_all.flatten(1) - alpha
            if not increase:
                alpha, beta = -alpha, -beta
            keep = torch.zeros(len(active), dtype=torch.bool, device=x.device)
            for s in range(0, len(active), chunk):
                sl = slice(s, s + chunk)
                dom = domain[active[sl]]
                a = alpha[sl][:, :, None] + alpha[sl][:, None, :]
                b = beta[sl][:, :, None] + beta[sl][:, None, :]
                valid = (a > 0) & (b < 0) & dom[:, :, None] & dom[:, None, :] & ~eye
                score = torch.where(valid, a * -b, torch.zeros((), device=x.device))
                best = score.flatten(1).argmax(1)
                has = valid.flatten(1).any(1) & ~done[sl]
                p, q = best // d, best % d
                rows = active[sl][has]
                for feat in (p[has], q[has]):
                    cur = adv[rows, feat]
                    adv[rows, feat] = (cur + self.theta).clamp(lo_b, hi_b)
                    domain[rows, feat] = False
                keep[sl] = has
            active = active[keep]
        return adv.view_as(x)
