"""Square Attack, Linf, score-based (Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a
query-efficient black-box adversarial attack via random search", ECCV 2020), batched over inputs."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..base import CountedModel, check_float, check_int
from ..registry import register_attack
from ._base import EvasionAttack, per_sample


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """The paper's piecewise-constant schedule of the square's area fraction, rescaled to ``n_iters``."""
    i = int(it / n_iters * 10000)
    p = p_init
    for edge in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000):
        if i > edge:
            p /= 2
    return p


@register_attack("square")
class Square(EvasionAttack):
    """Square Attack, Linf: random search over square patches of ``+-eps`` on the margin loss, using
    only the model's scores; accepts a patch when the margin drops, stops per input at success. Starts
    from vertical stripes of ``+-eps``. Counts queries per input (``queries_mean``/``queries_median``
    over the successful ones) within a budget of ``queries``.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = Square(eps=0.2, queries=50, max_samples=16)(model, load_dataset("digits"))
    >>> r.threat.knowledge, r.metrics["forwards"] <= 50
    ('score-based', True)
    """

    knowledge = "score-based"
    norm = "linf"

    def __init__(self, *, eps: float = 0.1, queries: int = 1000, p_init: float = 0.8, targeted: bool = False,
                 batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = 1000) -> None:
        super().__init__(eps=eps, targeted=targeted, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.queries = check_int("queries", queries, 1)
        self.p_init = check_float("p_init", p_init, 0.0, 1.0, lo_open=True)

    def budget(self) -> dict[str, Any]:
        return {**super().budget(), "queries": self.queries}

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        eps = float(self.eps)  # type: ignore[arg-type]
        shape = x.shape
        x4 = as_image(x)  # flat (n, d) and (n, h, w) inputs get an image layout for the squares
        n, c, h, w = x4.shape

        def scores(batch: torch.Tensor) -> torch.Tensor:
            return model(batch.view(-1, *shape[1:]))

        gens = self.sample_generators(n, x.device)
        # each input's randomness comes from its own stream: the stripes, then per iteration the square's
        # corner (2 uniforms) and its sign per channel
        stripes_u = per_sample(gens, "rand", (c, 1, w), x4)
        draws = per_sample(gens, "rand", (max(self.queries - 1, 1), 2 + c), x4)
        with torch.no_grad():
            adv = (x4 + eps * torch.where(stripes_u < 0.5, -1.0, 1.0).to(x4.dtype)).clamp(lo_b, hi_b)
            margin = self.margin(scores(adv), y, target)
            used = torch.ones(n, dtype=torch.long, device=x.device)
            rows = torch.arange(h, device=x.device)
            cols = torch.arange(w, device=x.device)
            for it in range(1, self.queries):
                idx = (margin > 0).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                p = p_schedule(self.p_init, it, self.queries)
                s = int(min(max(round(math.sqrt(p * h * w)), 1), min(h, w) - 1 if min(h, w) > 1 else 1))
                u = draws[idx, it - 1]
                r0 = (u[:, 0] * (h - s + 1)).long().clamp_(max=h - s)
                c0 = (u[:, 1] * (w - s + 1)).long().clamp_(max=w - s)
                in_r = (rows[None] >= r0[:, None]) & (rows[None] < (r0 + s)[:, None])
                in_c = (cols[None] >= c0[:, None]) & (cols[None] < (c0 + s)[:, None])
                window = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # (b, 1, h, w)
                values = eps * torch.where(u[:, 2:] < 0.5, -1.0, 1.0).to(x4.dtype)[:, :, None, None]
                xs = x4[idx]
                delta = torch.where(window, values, adv[idx] - xs)
                cand = (xs + delta).clamp(lo_b, hi_b)
                m_new = self.margin(scores(cand), y[idx], None if target is None else target[idx])
                used[idx] += 1
                better = m_new < margin[idx]
                adv[idx[better]] = cand[better]
                margin[idx[better]] = m_new[better]
        self._query_log.append(used[margin <= 0])
        return adv.view(shape)


def as_image(x: torch.Tensor) -> torch.Tensor:
    """A ``(n, C, H, W)`` view of ``x``: images stay, ``(n, H, W)`` gets one channel, flat ``(n, d)`` becomes a
    square ``sqrt(d) x sqrt(d)`` image when ``d`` is a square (MNIST's 784) and a ``1 x d`` strip otherwise.

    >>> as_image(torch.zeros(2, 784)).shape, as_image(torch.zeros(2, 10)).shape
    (torch.Size([2, 1, 28, 28]), torch.Size([2, 1, 1, 10]))
    """
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return x.unsqueeze(1)
    d = x[0].numel() if len(x) else x.shape[-1]
    side = math.isqrt(d)
    return x.reshape(len(x), 1, side, side) if side * side == d else x.reshape(len(x), 1, 1, d)
