"""HopSkipJump, L2, decision-based (Chen, Jordan and Wainwright, "HopSkipJumpAttack: A Query-Efficient
Decision-Based Attack", IEEE S&P 2020), batched over inputs."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..base import CountedModel, check_float, check_int
from ..registry import register_attack
from ._base import EvasionAttack, bview, per_sample


@register_attack("hopskipjump")
class HopSkipJump(EvasionAttack):
    """HopSkipJump (L2, untargeted or targeted), seeing labels only.

    Starts from uniform noise that is already adversarial (up to ``init_tries`` draws), then repeats
    ``steps`` times: binary search to the decision boundary, estimate the boundary's normal from
    ``init_evals * sqrt(t)`` (at most ``max_evals``) random label queries, step along it with a geometric
    step-size search. Inputs with no adversarial start stay unchanged (failures). Counts queries per input.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> model = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = HopSkipJump(steps=2, init_evals=10, max_samples=4)(model, load_dataset("digits"))
    >>> r.threat.knowledge
    'label-only'
    """

    knowledge = "label-only"
    norm = "l2"

    def __init__(self, *, steps: int = 10, init_evals: int = 50, max_evals: int = 200, init_tries: int = 100,
                 gamma: float = 1.0, targeted: bool = False, batch_size: int = 256,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 100) -> None:
        super().__init__(eps=None, targeted=targeted, batch_size=batch_size,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.steps = check_int("steps", steps, 1)
        self.init_evals = check_int("init_evals", init_evals, 1)
        self.max_evals = check_int("max_evals", max_evals, 1)
        self.init_tries = check_int("init_tries", init_tries, 1)
        self.gamma = check_float("gamma", gamma, 0.0, None, lo_open=True)

    def budget(self) -> dict[str, Any]:
        return {"norm": "l2", "eps": None, "steps": self.steps, "max_evals": self.max_evals}

    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        lo_b, hi_b = self.bounds
        n = len(x)
        d = x[0].numel()
        dev = x.device
        queries = torch.zeros(n, dtype=torch.long, device=dev)

        @torch.no_grad()
        def is_adv(xs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """The only thing the attacker sees: whether each query is classified as it wants."""
            pred = model(xs).argmax(1)
            queries.index_add_(0, rows, torch.ones_like(rows))
            return pred != y[rows] if target is None else pred == target[rows]

        theta = self.gamma / (d * math.sqrt(d))
        gens = self.sample_generators(n, dev)  # per-input streams: independent of batch_size
        self._gens = gens
        with torch.no_grad():
            adv = x.clone()
            found = torch.zeros(n, dtype=torch.bool, device=dev)
            for _ in range(self.init_tries):
                rows = (~found).nonzero().squeeze(1)
                if rows.numel() == 0:
                    break
                noise = per_sample([gens[int(r)] for r in rows], "rand", tuple(x.shape[1:]), x)
                noise = noise * (hi_b - lo_b) + lo_b
                ok = is_adv(noise, rows)
                adv[rows[ok]] = noise[ok]
                found[rows[ok]] = True
            rows = found.nonzero().squeeze(1)
            if rows.numel() == 0:
                self._query_log.append(queries[found])
                return x.clone()
            xo, yo = x[rows], rows
            cur = self._binary_search(xo, adv[rows], yo, is_adv, theta)
            dist = (cur - xo).flatten(1).norm(dim=1)
            for t in range(1, self.steps + 1):
                delta = math.sqrt(d) * theta * dist
                delta = torch.where(dist > 0, delta, torch.full_like(delta, 1e-3))
                evals = int(min(self.init_evals * math.sqrt(t), self.max_evals))
                grad = self._estimate_gradient(cur, yo, delta, evals, is_adv)
                step = dist / math.sqrt(t)
                cand = (cur + bview(step, cur) * grad).clamp(lo_b, hi_b)
                ok = is_adv(cand, yo)
                for _ in range(30):  # geometric step-size search
                    if bool(ok.all()):
                        break
                    step = torch.where(ok, step, step / 2)
                    redo = (~ok).nonzero().squeeze(1)
                    c2 = (cur[redo] + bview(step[redo], cur[redo]) * grad[redo]).clamp(lo_b, hi_b)
                    ok2 = is_adv(c2, yo[redo])
                    cand[redo] = c2
                    ok[redo] = ok2
                cand = torch.where(bview(ok, cand), cand, cur)
                cur = self._binary_search(xo, cand, yo, is_adv, theta)
                dist = (cur - xo).flatten(1).norm(dim=1)
            adv[rows] = cur
        self._query_log.append(queries[found])
        return adv

    def _binary_search(self, x: torch.Tensor, adv: torch.Tensor, rows: torch.Tensor, is_adv: Any,
                       theta: float) -> torch.Tensor:
        """Blend toward ``x`` as far as the label stays adversarial (per input, to within ``theta``)."""
        lo = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        hi = torch.ones_like(lo)
        for _ in range(40):
            open_ = (hi - lo) > theta
            if not bool(open_.any()):
                break
            idx = open_.nonzero().squeeze(1)
            mid = (lo[idx] + hi[idx]) / 2
            m = bview(mid, x)
            ok = is_adv((1 - m) * x[idx] + m * adv[idx], rows[idx])
            hi[idx] = torch.where(ok, mid, hi[idx])
            lo[idx] = torch.where(ok, lo[idx], mid)
        h = bview(hi, x)
        return (1 - h) * x + h * adv

    def _estimate_gradient(self, cur: torch.Tensor, rows: torch.Tensor, delta: torch.Tensor, evals: int,
                           is_adv: Any) -> torch.Tensor:
        """Monte-Carlo estimate of the boundary normal at ``cur`` with ``evals`` label queries each,
        with the paper's baseline (mean) subtraction."""
        lo_b, hi_b = self.bounds
        b = len(cur)
        shape = cur.shape[1:]
        out = torch.empty_like(cur)
        per = max(1, int(4_000_000 // max(evals * cur[0].numel(), 1)))  # bound memory
        for s in range(0, b, per):
            sl = slice(s, s + per)
            c = cur[sl]
            m = len(c)
            u = per_sample([self._gens[int(r)] for r in rows[sl]], "randn", (evals, *shape), cur)
            u = u / u.flatten(2).norm(dim=2).view(m, evals, *([1] * len(shape)))
            dl = delta[sl].view(m, 1, *([1] * len(shape)))
            pts = (c[:, None] + dl * u).clamp(lo_b, hi_b)
            u = (pts - c[:, None]) / dl
            dec = is_adv(pts.flatten(0, 1), rows[sl].repeat_interleave(evals)).view(m, evals).to(cur.dtype)
            f = 2 * dec - 1
            mean = f.mean(1, keepdim=True)
            f = torch.where((mean.abs() == 1), f, f - mean)
            g = (f.view(m, evals, *([1] * len(shape))) * u).mean(1)
            out[sl] = g / bview(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)
        return out
