"""Knockoff Nets, random and adaptive (Orekondy, Schiele and Fritz, "Knockoff Nets: Stealing
Functionality of Black-Box Models", CVPR 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data.base import IndexedDataset
from .._train import fit, fresh_copy
from ..base import check_choice, check_float, check_int
from ..registry import register_attack
from ._base import ExtractionAttack
from .query import QueryFunction

STRATEGIES = ("random", "adaptive")
REWARDS = ("cert", "div", "loss", "all")


@register_attack("knockoff")
class KnockoffNets(ExtractionAttack):
    """Train a knockoff on the victim's outputs for ``queries`` samples of the attacker's pool.

    ``strategy="random"`` draws the transfer set uniformly from the pool. ``"adaptive"`` treats the
    pool's own labels as the paper's actions and learns which to draw with a gradient bandit (learning
    rate ``bandit_lr``) rewarded by certainty, diversity and the knockoff's loss (``reward``), in rounds of
    ``round_size`` queries with one epoch of knockoff training after each. The knockoff is then trained
    ``epochs`` epochs from scratch on the soft outputs (hard labels in ``labels`` mode).

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> victim = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = KnockoffNets(queries=100, epochs=2)(victim, load_dataset("digits"))
    >>> r.metrics["queries"], r.threat.knowledge
    (100, 'score-based')
    """

    def __init__(self, *, strategy: str = "random", queries: int | None = 1000, epochs: int = 20,
                 batch_size: int = 64, lr: float = 1e-3, round_size: int = 50, reward: str = "all",
                 bandit_lr: float = 0.1, output: str = "scores", k: int = 1, decimals: int = 2,
                 architecture: str | None = None,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(queries=queries, output=output, k=k, decimals=decimals, architecture=architecture,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.lr = check_float("lr", lr, 0.0, None, lo_open=True)
        self.round_size = check_int("round_size", round_size, 1)
        self.reward = check_choice("reward", reward, REWARDS)
        self.bandit_lr = check_float("bandit_lr", bandit_lr, 0.0, None, lo_open=True)

    def _targets(self, out: torch.Tensor, k: int) -> torch.Tensor:
        if out.dtype == torch.int64:
            return F.one_hot(out, k).float()
        return out / out.sum(1, keepdim=True).clamp_min(1e-12)  # top-k and rounded rows renormalised

    def extract(self, query: QueryFunction, pool: IndexedDataset, template: nn.Module) -> nn.Module:
        n = min(self.queries or len(pool), len(pool))
        k = pool.num_classes
        if self.strategy == "random":
            pick = torch.randperm(len(pool), device=pool.x.device)[:n]
            xs = pool.x[pick]
            ys = self._targets(query(xs), k)
        else:
            xs, ys = self._adaptive(query, pool, template, n, k)
        copy = fresh_copy(template)
        target = ys if query.returns_scores else ys.argmax(1)
        return fit(copy, xs, target, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)

    def _adaptive(self, query: QueryFunction, pool: IndexedDataset, template: nn.Module, n: int,
                  k: int) -> tuple[torch.Tensor, torch.Tensor]:
        dev = pool.x.device
        actions = torch.unique(pool.y)
        members = [(pool.y == a).nonzero().squeeze(1) for a in actions]
        members = [m[torch.randperm(len(m), device=dev)] for m in members]
        taken = [0] * len(actions)
        h = torch.zeros(len(actions), dtype=torch.float64)
        mean_reward, seen = 0.0, 0
        history: list[torch.Tensor] = []
        xs_all: list[torch.Tensor] = []
        ys_all: list[torch.Tensor] = []
        copy = fresh_copy(template)
        lows = torch.full((3,), float("inf"), dtype=torch.float64)
        highs = torch.full((3,), -float("inf"), dtype=torch.float64)
        got = 0
        while got < n:
            size = min(self.round_size, n - got)
            pi = torch.softmax(h, 0)
            avail = torch.tensor([taken[i] < len(members[i]) for i in range(len(actions))])
            pi = torch.where(avail, pi, torch.zeros_like(pi))
            if float(pi.sum()) <= 0:
                break
            chosen = torch.multinomial(pi / pi.sum(), size, replacement=True).tolist()
            rows, acts = [], []
            for a in chosen:
                if taken[a] >= len(members[a]):
                    continue
                rows.append(members[a][taken[a]])
                taken[a] += 1
                acts.append(a)
            if not rows:
                break
            idx = torch.stack(rows)
            x = pool.x[idx]
            y = self._targets(query(x), k)
            got += len(idx)
            # rewards (Orekondy et al., section 4.1.2), each rescaled to [0, 1] by the range seen so far
            with torch.no_grad():
                copy.eval()
                logp = F.log_softmax(copy(x), 1)
            top2 = y.topk(min(2, k), dim=1).values
            cert = (top2[:, 0] - top2[:, 1]) if k > 1 else top2[:, 0]
            recent = torch.cat(history[-4:]).mean(0) if history else torch.zeros(k, device=dev)
            div = (y - recent).clamp_min(0).sum(1)
            loss = -(y * logp).sum(1)
            parts = torch.stack([cert, div, loss], 1).double().cpu()
            lows = torch.minimum(lows, parts.min(0).values)
            highs = torch.maximum(highs, parts.max(0).values)
            scaled = (parts - lows) / (highs - lows).clamp_min(1e-12)
            pick = {"cert": [0], "div": [1], "loss": [2], "all": [0, 1, 2]}[self.reward]
            reward = scaled[:, pick].mean(1)
            for a, r in zip(acts, reward.tolist()):  # gradient bandit (Sutton and Barto, section 2.8)
                seen += 1
                mean_reward += (r - mean_reward) / seen
                pi = torch.softmax(h, 0)
                step = self.bandit_lr * (r - mean_reward)
                h -= step * pi
                h[a] += step
            history.append(y)
            xs_all.append(x)
            ys_all.append(y)
            xcat, ycat = torch.cat(xs_all), torch.cat(ys_all)
            fit(copy, xcat, ycat if query.returns_scores else ycat.argmax(1), epochs=1,
                batch_size=self.batch_size, lr=self.lr)
        self._action_probs = torch.softmax(h, 0).tolist()
        return torch.cat(xs_all), torch.cat(ys_all)
