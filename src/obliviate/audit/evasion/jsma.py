"""The Jacobian-based saliency map attack (Papernot et al., "The Limitations of Deep Learning in
Adversarial Settings", IEEE EuroS&P 2016), an L0 attack, batched over inputs."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..base import CountedModel, check_choice, check_float, check_int
from ..registry import register_attack
from ._base import EvasionAttack


SALIENCY = ("both", "pairs", "target")


@register_attack("jsma")
class JSMA(EvasionAttack):
    """Targeted JSMA: each iteration picks the pair of features whose joint saliency (raising the target
    logit while lowering the others) is largest and moves both by ``theta`` (to the bound); stops on
    success or when ``gamma`` (a fraction of the features) have been changed. Two backward passes per
    active input and iteration. Targeted by construction (random target, seeded). The pair search runs
    over ``candidates`` features of largest saliency per side (default 32; ``None``: all ``d^2`` pairs, as
    the paper): on MNIST that is about 150x fewer pairs at nearly the same success. ``saliency="pairs"``
    is the paper's pair map; ``"target"`` moves the two free features of largest target gradient (the
    single map ART's SaliencyMapMethod uses); ``"both"`` (default: an audit wants the stronger attack)
    runs the pair map and gives the inputs it did not fool to the target map. Neither map wins
    everywhere: on 50 MNIST images (gamma 0.1) pairs / target fooled 50% / 80% of a LeNet-5, 80% / 72% of
    a BatchNorm CNN, 94% / 100% of an MLP.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = JSMA(gamma=0.1, max_samples=8)(model, load_dataset("digits"))
    >>> r.threat.goal, r.metrics["l0_mean"] != r.metrics["l0_mean"] or r.metrics["l0_mean"] <= 6
    ('targeted', True)
    """

    norm = "l0"

    def __init__(self, *, theta: float = 1.0, gamma: float = 0.15, candidates: int | None = 32,
                 saliency: str = "both",
                 batch_size: int = 256, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(eps=None, targeted=True, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.theta = check_float("theta", theta, -1.0, 1.0)
        if self.theta == 0:
            check_float("theta", theta, 0.0, 1.0, lo_open=True)
        self.gamma = check_float("gamma", gamma, 0.0, 1.0, lo_open=True)
        self.candidates = None if candidates is None else check_int("candidates", candidates, 1)
        self.saliency = check_choice("saliency", saliency, SALIENCY)

    def budget(self) -> dict[str, Any]:
        return {"norm": "l0", "eps": self.gamma, "theta": self.theta}

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        t = target if target is not None else (y + 1) % 10
        if self.saliency != "both":
            return self._perturb(model, x, t, self.saliency)
        adv = self._perturb(model, x, t, "pairs")
        with torch.no_grad():
            missed = (model(adv).argmax(1) != t).nonzero().squeeze(1)
        if missed.numel():  # the inputs the pair rule did not fool get the target-gradient rule
            other = self._perturb(model, x[missed], t[missed], "target")
            with torch.no_grad():
                ok = model(other).argmax(1) == t[missed]
            adv[missed[ok]] = other[ok]
        return adv

    def _perturb(self, model: CountedModel, x: torch.Tensor, t: torch.Tensor, rule: str) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        n, d = len(x), x[0].numel()
        adv = x.clone().flatten(1)
        increase = self.theta > 0
        domain = adv < hi_b if increase else adv > lo_b  # features that can still move
        iters = math.floor(d * self.gamma / 2)
        active = torch.arange(n, device=x.device)
        k = d if self.candidates is None else min(self.candidates, d)
        for _ in range(iters):
            if active.numel() == 0:
                break
            xa = adv[active].view(-1, *x.shape[1:]).requires_grad_(True)
            logits = model(xa)
            ta = t[active]
            todo = logits.argmax(1) != ta
            (g_t,) = torch.autograd.grad(logits.gather(1, ta[:, None]).sum(), xa, retain_graph=True)
            (g_all,) = torch.autograd.grad(logits.sum(), xa)
            alpha = g_t.flatten(1)
            beta = g_all.flatten(1) - alpha
            if not increase:
                alpha, beta = -alpha, -beta
            if rule == "target":  # the two features of largest target gradient still free
                free = torch.where(domain[active], alpha, torch.full_like(alpha, -math.inf))
                top = free.topk(2, dim=1)
                p, q = top.indices[:, 0], top.indices[:, 1]
                has = torch.isfinite(top.values).all(1)
            else:
                p, q, has = self._best_pairs(alpha, beta, domain[active], k)
            has &= todo
            rows = active[has]
            for feat in (p[has], q[has]):
                adv[rows, feat] = (adv[rows, feat] + self.theta).clamp(lo_b, hi_b)
                domain[rows, feat] = False
            active = active[has]
        return adv.view_as(x)

    @staticmethod
    def _best_pairs(alpha: torch.Tensor, beta: torch.Tensor, dom: torch.Tensor,
                    k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per input, the feature pair ``(p, q)`` maximising ``(a_p + a_q) * -(b_p + b_q)`` with
        ``a_p + a_q > 0`` and ``b_p + b_q < 0`` (the paper's saliency of a pair), else the pair of largest
        ``a_p + a_q > 0``; and whether there is one.

        The search runs over the ``k`` features of largest ``alpha`` together with the ``k`` of most
        negative ``beta`` (the features a good pair is made of), so it costs ``(2k)^2`` per input instead of
        ``d^2``; with ``k = d`` it is the paper's exhaustive search.
        """
        neg = torch.tensor(-math.inf, dtype=alpha.dtype, device=alpha.device)
        d = alpha.shape[1]
        if 2 * k < d:
            top_a = torch.where(dom, alpha, neg).topk(k, dim=1).indices
            top_b = torch.where(dom, -beta, neg).topk(k, dim=1).indices
            cand = torch.cat([top_a, top_b], 1)
            # a feature in both lists is kept once: the copy in top_b is masked out below
            dup = (top_b[:, :, None] == top_a[:, None, :]).any(2)
            ok = torch.cat([torch.ones_like(dup), ~dup], 1) & dom.gather(1, cand)
        else:
            cand = torch.arange(d, device=alpha.device).expand(len(alpha), d)
            ok = dom
        a = alpha.gather(1, cand)
        b = beta.gather(1, cand)
        m = cand.shape[1]
        pa = a[:, :, None] + a[:, None, :]
        pb = b[:, :, None] + b[:, None, :]
        off_diag = ~torch.eye(m, dtype=torch.bool, device=alpha.device)
        valid = (pa > 0) & (pb < 0) & ok[:, :, None] & ok[:, None, :] & off_diag
        zero = torch.zeros((), dtype=alpha.dtype, device=alpha.device)
        score = torch.where(valid, pa * -pb, zero)
        has = valid.flatten(1).any(1)
        # no pair meets both conditions: fall back to the pair that raises the target logit most (the
        # single-map rule of Papernot et al.'s section III-C, which ART's SaliencyMapMethod uses throughout)
        rising = (pa > 0) & ok[:, :, None] & ok[:, None, :] & off_diag
        fallback = ~has & rising.flatten(1).any(1)
        if bool(fallback.any()):
            score = torch.where(fallback[:, None, None], torch.where(rising, pa, zero), score)
            has = has | fallback
        best = score.flatten(1).argmax(1)
        return cand.gather(1, (best // m)[:, None]).squeeze(1), cand.gather(1, (best % m)[:, None]).squeeze(1), has
