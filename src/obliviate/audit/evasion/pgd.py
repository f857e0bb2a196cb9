"""Projected gradient descent, Linf and L2 (Madry et al., "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018), and BIM, its Linf form without random start (Kurakin, Goodfellow and
Bengio, "Adversarial Examples in the Physical World", 2016)."""

from __future__ import annotations

from typing import Any

import torch

from ..base import CountedModel, check_float, check_int
from ..registry import register_attack
from ._base import EvasionAttack, bview, per_sample


@register_attack("pgd")
class PGD(EvasionAttack):
    """Linf PGD: ``steps`` signed-gradient steps of size ``alpha`` (default ``eps / 4``), each projected
    on the ``eps`` ball and the bounds; ``random_start`` draws the start uniformly in the ball.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> data = load_dataset("digits")
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = PGD(eps=0.1, steps=5, max_samples=32)(model, data)
    >>> r.metrics["forwards"], r.metrics["backwards"], r.threat.budget["steps"]
    (5.0, 5.0, 5)
    """

    norm = "linf"

    def __init__(self, *, eps: float = 0.1, alpha: float | None = None, steps: int = 10,
                 random_start: bool = True, targeted: bool = False, batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, targeted=targeted, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.alpha = None if alpha is None else check_float("alpha", alpha, 0.0, None, lo_open=True)
        self.steps = check_int("steps", steps, 1)
        self.random_start = bool(random_start)

    def budget(self) -> dict[str, Any]:
        return {**super().budget(), "steps": self.steps}

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else float(self.eps or 0.0) / 4

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        eps, alpha = float(self.eps), self.step_size  # type: ignore[arg-type]
        lo = (x - eps).clamp_(min=lo_b)
        hi = (x + eps).clamp_(max=hi_b)
        adv = x.clone()
        if self.random_start:  # per-input streams: independent of batch_size
            u = per_sample(self.sample_generators(len(x), x.device), "rand", tuple(x.shape[1:]), x)
            adv = (adv + u.mul_(2 * eps).sub_(eps)).clamp_(lo, hi)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss(model(adv), y, target), adv)
            adv = adv.detach().add_(grad.sign_(), alpha=alpha).clamp_(lo, hi)  # project, in place
        return adv


@register_attack("bim")
class BIM(PGD):
    """The basic iterative method: Linf PGD started at the input (``random_start=False``).

    >>> BIM().random_start
    False
    """

    def __init__(self, *, eps: float = 0.1, alpha: float | None = None, steps: int = 10,
                 random_start: bool = False, targeted: bool = False, batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, alpha=alpha, steps=steps, random_start=random_start, targeted=targeted,
                         batch_size=batch_size, bounds=bounds, seed=seed, max_samples=max_samples)


@register_attack("pgd_l2")
class PGDL2(PGD):
    """L2 PGD: steps of length ``alpha`` (default ``eps / 4``) along the normalised gradient, projected on
    the L2 ball of radius ``eps`` and the bounds; the random start is uniform in radius.

    >>> PGDL2(eps=1.0).threat_model().budget["norm"]
    'l2'
    """

    norm = "l2"

    def __init__(self, *, eps: float = 1.0, alpha: float | None = None, steps: int = 10,
                 random_start: bool = True, targeted: bool = False, batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, alpha=alpha, steps=steps, random_start=random_start, targeted=targeted,
                         batch_size=batch_size, bounds=bounds, seed=seed, max_samples=max_samples)

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        eps, alpha = float(self.eps), self.step_size  # type: ignore[arg-type]

        def project(adv: torch.Tensor) -> torch.Tensor:
            delta = adv - x
            factor = (eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp_(max=1.0)
            return (x + delta * bview(factor, x)).clamp_(lo_b, hi_b)

        adv = x.clone()
        if self.random_start:  # per-input streams: independent of batch_size
            gens = self.sample_generators(len(x), x.device)
            d = per_sample(gens, "randn", tuple(x.shape[1:]), x)
            radius = per_sample(gens, "rand", (), x)
            d = d / bview(d.flatten(1).norm(dim=1).clamp_min(1e-12), x)
            adv = project(x + d * bview(radius * eps, x))
        for _ in range(self.steps):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss(model(adv), y, target), adv)
            grad = grad / bview(grad.flatten(1).norm(dim=1).add_(1e-10), grad)
            adv = project(adv.detach().add_(grad, alpha=alpha))
        return adv
