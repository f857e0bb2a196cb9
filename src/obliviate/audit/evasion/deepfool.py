"""DeepFool (Moosavi-Dezfooli, Fawzi and Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks", CVPR 2016), batched over inputs."""

from __future__ import annotations

from typing import Any

import torch

from ..base import CountedModel, check_float, check_int
from ..registry import register_attack
from ._base import EvasionAttack


@register_attack("deepfool")
class DeepFool(EvasionAttack):
    """Minimal L2 DeepFool: linearise the classifier around the current point, step to the nearest
    linearised decision boundary, repeat until the label changes (at most ``steps`` times); the total step
    is scaled by ``1 + overshoot``. Considers the ``candidates`` classes with the highest clean logits.
    One forward and ``candidates`` backward passes per active input and iteration. Unbounded (``eps=None``).

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = DeepFool(steps=5, max_samples=16)(model, load_dataset("digits"))
    >>> r.threat.knowledge, r.threat.budget["norm"]
    ('white-box', 'l2')
    """

    norm = "l2"

    def __init__(self, *, steps: int = 50, overshoot: float = 0.02, candidates: int = 10,
                 batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = 1000) -> None:
        super().__init__(eps=None, targeted=False, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.steps = check_int("steps", steps, 1)
        self.overshoot = check_float("overshoot", overshoot, 0.0, None)
        self.candidates = check_int("candidates", candidates, 2)

    def budget(self) -> dict[str, Any]:
        return {"norm": "l2", "eps": None, "steps": self.steps}

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        with torch.no_grad():
            logits0 = model(x)
        k = min(self.candidates, logits0.shape[1])
        classes = logits0.topk(k, dim=1).indices  # (n, k); column 0 is the clean prediction
        r_tot = torch.zeros_like(x)
        active = torch.arange(len(x), device=x.device)
        scale = 1 + self.overshoot
        for _ in range(self.steps):
            if active.numel() == 0:
                break
            xa = (x[active] + scale * r_tot[active]).clamp(lo_b, hi_b).requires_grad_(True)
            logits = model(xa)
            cls = classes[active]
            still = logits.argmax(1) == cls[:, 0]
            if not bool(still.any()):
                break
            picked = logits.gather(1, cls)  # (b, k)
            grads = []
            for j in range(k):
                (g,) = torch.autograd.grad(picked[:, j].sum(), xa, retain_graph=j < k - 1)
                grads.append(g)
            with torch.no_grad():
                gr = torch.stack(grads, 1).flatten(2)  # (b, k, d)
                w = gr[:, 1:] - gr[:, :1]
                f = (picked[:, 1:] - picked[:, :1]).detach()
                wn = w.norm(dim=2).clamp_min(1e-8)
                ratio = f.abs() / wn
                best = ratio.argmin(1)
                rows = torch.arange(len(best), device=x.device)
                w_l = w[rows, best]
                step = ((f.abs()[rows, best] + 1e-4) / wn[rows, best].pow(2))[:, None] * w_l
                idx = active[still]
                r_tot[idx] += step[still].view_as(x[idx])
                active = idx
        return (x + scale * r_tot).clamp(lo_b, hi_b)
