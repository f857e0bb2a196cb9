"""FGSM: one signed-gradient step (Goodfellow, Shlens and Szegedy, "Explaining and Harnessing
Adversarial Examples", ICLR 2015)."""

from __future__ import annotations

import torch

from ..base import CountedModel
from ..registry import register_attack
from ._base import EvasionAttack


@register_attack("fgsm")
class FGSM(EvasionAttack):
    """Fast gradient sign method, Linf: ``x + eps * sign(grad_x loss)``, clipped to the bounds.

    >>> import torch
    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> data = load_dataset("digits")
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> result = FGSM(eps=0.1, max_samples=32)(model, data)
    >>> result.family, result.metrics["linf_mean"] <= 0.1 + 1e-6, result.metrics["backwards"]
    ('evasion', True, 1.0)
    """

    norm = "linf"
    eps: float  # FGSM always has a budget (the base allows None: unbounded)

    def __init__(self, *, eps: float = 0.1, targeted: bool = False, batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, targeted=targeted, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo, hi = self.bounds
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.loss(model(xg), y, target), xg)
        return grad.sign_().mul_(self.eps).add_(x).clamp_(lo, hi)  # in place on the gradient's buffer
