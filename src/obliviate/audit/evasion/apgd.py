"""Auto-PGD with the cross-entropy loss, APGD-CE (Croce and Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020, Algorithm 1), Linf and L2.

Written from the paper; the reference implementation (github.com/fra31/auto-attack,
``autoattack/autopgd_base.py``, ``APGDAttack.attack_single_run``) was read to match its constants: the
first checkpoint at 22% of the iterations, checkpoints shrinking by 3% of the iterations down to 6%, the
oscillation threshold rho = 0.75, momentum 0.75 (none on the first step), the initial step ``2 * eps``,
and a random start on the surface of the ball's bounding box.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..base import CountedModel, check_int
from ..registry import register_attack
from ._base import EvasionAttack, bview, per_sample

RHO = 0.75  # a step size is kept while the loss rose in at least this fraction of the steps since the last check
MOMENTUM = 0.75


def checkpoints(n_iter: int) -> list[int]:
    """The iterations at which APGD checks its step size: the first after ``max(int(0.22 n), 1)`` steps,
    then each interval ``max(int(0.03 n), 1)`` shorter, never below ``max(int(0.06 n), 1)``.

    >>> checkpoints(100)[:6]
    [22, 41, 57, 70, 80, 87]
    """
    k, decr, k_min = max(int(0.22 * n_iter), 1), max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1)
    out, at = [], 0
    while at + k <= n_iter:
        at += k
        out.append(at)
        k = max(k - decr, k_min)
    return out


@register_attack("apgd")
class APGD(EvasionAttack):
    """APGD-CE, Linf: PGD whose step size needs no tuning. Starting at ``2 * eps``, the step is halved
    (and the iterate reset to the best point so far) at a checkpoint when the loss rose in fewer than 75%
    of the steps since the last one, or when the step was not halved at the last checkpoint and the best
    loss has not improved since; steps add momentum 0.75. ``restarts`` reruns the inputs still not
    fooled from new random starts. Per-input random streams make results independent of ``batch_size``.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = APGD(eps=0.1, steps=10, max_samples=16)(model, load_dataset("digits"))
    >>> r.threat.budget["steps"], r.metrics["backwards"] <= 11
    (10, True)
    """

    norm = "linf"

    def __init__(self, *, eps: float = 0.1, steps: int = 100, restarts: int = 1, targeted: bool = False,
                 batch_size: int = 1024, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, targeted=targeted, batch_size=batch_size, bounds=bounds, seed=seed,
                         max_samples=max_samples)
        self.steps = check_int("steps", steps, 1)
        self.restarts = check_int("restarts", restarts, 1)

    def budget(self) -> dict[str, Any]:
        return {**super().budget(), "steps": self.steps, "restarts": self.restarts}

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        gens = self.sample_generators(len(x), x.device)
        with torch.no_grad():
            out = x.clone()
            todo = ~self.succeeded(model(x), y, target)  # inputs already misclassified need no attack
        for _ in range(self.restarts):
            idx = todo.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            adv, fooled = self._single_run(model, x[idx], y[idx], None if target is None else target[idx],
                                           [gens[int(i)] for i in idx])
            out[idx] = adv
            todo[idx[fooled]] = False
        return out

    # -- one run from a random start
    def _start(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        eps = float(self.eps)  # type: ignore[arg-type]
        t = per_sample(gens, "rand", tuple(x.shape[1:]), x).mul_(2).sub_(1)
        return x + eps * t / bview(t.flatten(1).abs().amax(1).add_(1e-12), t)

    def _project(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        eps = float(self.eps)  # type: ignore[arg-type]
        lo, hi = self.bounds
        return torch.minimum(torch.maximum(z, x - eps), x + eps).clamp_(lo, hi)

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def _single_run(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                    gens: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        def loss_and_grad(adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            adv = adv.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(adv)
                per = (F.cross_entropy(logits, y, reduction="none") if target is None
                       else -F.cross_entropy(logits, target, reduction="none"))
                (g,) = torch.autograd.grad(per.sum(), adv)
            return per.detach(), g, logits.detach()

        n = len(x)
        adv = self._project(x, self._start(x, gens))
        loss, grad, logits = loss_and_grad(adv)
        fooled = self.succeeded(logits, y, target)
        best_adv = torch.where(bview(fooled, x), adv, x)
        best, best_loss, best_grad = adv.clone(), loss.clone(), grad.clone()
        step = torch.full((n,), 2.0 * float(self.eps), dtype=x.dtype, device=x.device)  # type: ignore[arg-type]
        marks = set(checkpoints(self.steps))
        rises = torch.zeros(n, dtype=torch.long, device=x.device)
        since = 0
        halved_last = torch.ones(n, dtype=torch.bool, device=x.device)
        best_at_last = best_loss.clone()
        prev = adv.clone()
        prev_loss = loss.clone()
        for i in range(self.steps):
            with torch.no_grad():
                a = MOMENTUM if i > 0 else 1.0
                z = self._project(x, adv + bview(step, x) * self._direction(grad))
                new = self._project(x, adv + a * (z - adv) + (1 - a) * (adv - prev))
                prev = adv
            adv = new
            loss, grad, logits = loss_and_grad(adv)
            with torch.no_grad():
                ok = self.succeeded(logits, y, target)
                best_adv = torch.where(bview(ok & ~fooled, x), adv, best_adv)
                fooled |= ok
                rises += (loss > prev_loss).long()
                prev_loss = loss
                since += 1
                up = loss > best_loss
                best = torch.where(bview(up, x), adv, best)
                best_grad = torch.where(bview(up, x), grad, best_grad)
                best_loss = torch.where(up, loss, best_loss)
                if i + 1 in marks:
                    oscillating = rises.double() <= since * RHO
                    stalled = ~halved_last & (best_at_last >= best_loss)
                    halve = oscillating | stalled
                    step = torch.where(halve, step / 2, step)
                    adv = torch.where(bview(halve, x), best, adv)
                    grad = torch.where(bview(halve, x), best_grad, grad)
                    halved_last, best_at_last = halve, best_loss.clone()
                    rises.zero_()
                    since = 0
        return torch.where(bview(fooled, x), best_adv, best), fooled


@register_attack("apgd_l2")
class APGDL2(APGD):
    """APGD-CE, L2: steps along the normalised gradient, projection on the L2 ball (as the reference's
    L2 branch), random start on the sphere of radius ``eps``.

    >>> APGDL2(eps=1.0).threat_model().budget["norm"]
    'l2'
    """

    norm = "l2"

    def __init__(self, *, eps: float = 1.0, steps: int = 100, restarts: int = 1, targeted: bool = False,
                 batch_size: int = 1024, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, steps=steps, restarts=restarts, targeted=targeted, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)

    def _start(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        t = per_sample(gens, "randn", tuple(x.shape[1:]), x)
        return x + float(self.eps) * self._direction(t)  # type: ignore[arg-type]

    def _project(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        lo, hi = self.bounds
        d = z - x
        norm = d.flatten(1).norm(dim=1)
        factor = (float(self.eps) / norm.clamp_min(1e-12)).clamp_(max=1.0)  # type: ignore[arg-type]
        return (x + d * bview(factor, d)).clamp_(lo, hi)

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / bview(grad.flatten(1).norm(dim=1).add_(1e-12), grad)
