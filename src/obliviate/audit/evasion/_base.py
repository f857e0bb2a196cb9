"""The evasion family base: pick inputs, perturb them in batches, clip to the budget, measure.

A concrete attack writes :meth:`EvasionAttack.perturb`; the base clips its output to the norm ball and
the input bounds (so no attack can overspend its budget), computes success, robust accuracy, perturbation
norms, forward and backward passes per input and wall time.
"""

from __future__ import annotations

import abc
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..base import (Attack, AuditData, CountedModel, ThreatModel, audit_mode, check_finite, check_float, check_int,
                    model_device)
from ..metrics import evasion_metrics, mean_median, predict

NORMS = ("linf", "l2", "l0")


class EvasionAttack(Attack):
    """Base of the evasion attacks: settings ``eps`` (budget in ``norm``; ``None`` = unbounded),
    ``targeted`` (random target class other than the true one, seeded) and ``batch_size`` (inputs
    perturbed at once)."""

    family = "evasion"
    norm: str | None = "linf"

    def __init__(self, *, eps: float | None = None, targeted: bool = False, batch_size: int = 1024,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = 1000) -> None:
        super().__init__(bounds=bounds, seed=seed, max_samples=max_samples)
        if eps is not None:
            if self.norm == "linf":
                eps = check_float("eps", eps, 0.0, self.bounds[1] - self.bounds[0], lo_open=True)
            else:
                eps = check_float("eps", eps, 0.0, None, lo_open=True)
        self.eps = eps
        if not isinstance(targeted, bool):
            raise_bool("targeted", targeted)
        self.targeted = targeted
        self.batch_size = check_int("batch_size", batch_size, 1)

    _query_log: list[torch.Tensor]  # set by _generate

    # -- what a subclass writes
    @abc.abstractmethod
    def perturb(self, model: CountedModel, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        """Adversarial versions of ``x`` (true labels ``y``; ``target`` labels when targeted)."""

    def budget(self) -> dict[str, Any]:
        """The budget this attack spends, for the threat model (subclasses add steps, queries...)."""
        return {"norm": self.norm, "eps": self.eps}

    # -- the family invariants
    def threat_model(self) -> ThreatModel:
        return ThreatModel(self.knowledge, "targeted" if self.targeted else "untargeted", self.budget())

    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        ds = self._subset(data.test)
        dev = model_device(model)
        x, y = ds.x.to(dev), ds.y.to(dev)
        k = data.num_classes
        target = None
        if self.targeted:
            shift = torch.randint(1, k, y.shape, device=dev)
            target = (y + shift) % k
        counted = CountedModel(model)
        clean_pred = predict(model, x)
        start = time.perf_counter()
        x_adv = self._generate(counted, x, y, target)
        wall = time.perf_counter() - start
        adv_pred = predict(model, x_adv)
        metrics: dict[str, Any] = evasion_metrics(x.cpu(), x_adv.cpu(), y.cpu(), clean_pred.cpu(),
                                                  adv_pred.cpu(), None if target is None else target.cpu())
        n = max(len(x), 1)
        metrics.update(forwards=counted.forward_samples / n, backwards=counted.backward_samples / n,
                       queries=counted.forward_samples, forward_calls=counted.forward_calls,
                       backward_calls=counted.backward_calls, wall_time_s=wall, targeted=self.targeted)
        if self._query_log:
            q = torch.cat(self._query_log).float().cpu()
            metrics["queries_mean"], metrics["queries_median"] = mean_median(q)
        self._query_log = []
        artifacts = {"x": x, "x_adv": x_adv, "y": y, "target": target, "clean_pred": clean_pred,
                     "adv_pred": adv_pred}
        return metrics, artifacts

    def _generate(self, counted: CountedModel, x: torch.Tensor, y: torch.Tensor,
                  target: torch.Tensor | None) -> torch.Tensor:
        self._query_log = []  # score- and decision-based attacks log per-input queries
        parts = []
        for i in range(0, len(x), self.batch_size):
            sl = slice(i, i + self.batch_size)
            self._first_index = i  # global index of the batch's first input: per-sample random streams
            parts.append(self.perturb(counted, x[sl], y[sl], None if target is None else target[sl]).detach())
        return self.project(x, parts[0] if len(parts) == 1 else torch.cat(parts))

    def generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor | None = None) -> torch.Tensor:
        """Only the adversarial inputs for ``x`` (labels ``y``; ``target`` when targeted), with the same
        invariants as a call (eval mode and frozen parameters restored, seeded, inputs checked, budget
        clipped) but no metrics: what torchattacks' ``attack(images, labels)`` returns."""
        if not isinstance(model, nn.Module):
            raise ConfigError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}")
        lo, hi = self.bounds
        if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
            raise ConfigError(f"Expected `x` to be a floating-point tensor, but got "
                              f"{getattr(x, 'dtype', type(x).__name__)}")
        check_finite("`x`", x)
        xmin, xmax = (float(v) for v in torch.aminmax(x)) if x.numel() else (lo, hi)
        if x.dim() < 2 or len(x) != len(y) or xmin < lo - 1e-6 or xmax > hi + 1e-6:
            raise ConfigError(f"Expected inputs in [{lo:g}, {hi:g}] with one label each, but got shape "
                              f"{tuple(x.shape)}, {len(y)} labels, range [{xmin:.4g}, {xmax:.4g}]; scale "
                              "them or set the attack's `bounds`")
        if self.targeted and target is None:
            raise ConfigError("a targeted attack needs `target` labels; pass target=... or targeted=False")
        with audit_mode(model), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._generate(CountedModel(model), x, y, target if self.targeted else None)

    def project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Clip ``x_adv`` to the ``eps`` ball around ``x`` in this attack's norm, then to the bounds."""
        lo, hi = self.bounds
        delta = x_adv - x  # a new tensor: the in-place steps below leave x_adv alone
        if self.eps is not None and self.norm == "linf":
            delta.clamp_(-self.eps, self.eps)
        elif self.eps is not None and self.norm == "l2":
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta.mul_(bview((self.eps / norms).clamp(max=1.0), delta))
        return delta.add_(x).clamp_(lo, hi)

    # -- helpers for subclasses
    def sample_generators(self, n: int, device: torch.device) -> list[torch.Generator]:
        """One random generator per input of the current batch, seeded from ``(seed, input index)``: a
        seeded random attack draws each input's randomness from its own stream, so its result does not
        depend on ``batch_size`` (nor on which other inputs share the batch)."""
        first = getattr(self, "_first_index", 0)
        gens = []
        for i in range(first, first + n):
            g = torch.Generator(device=device)
            g.manual_seed(stream_seed(self.seed, i))
            gens.append(g)
        return gens

    @staticmethod
    def loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The loss a gradient attack ascends: cross-entropy to the true label, or minus cross-entropy to
        the target (mean over the batch, as torchattacks does, so signs match it bit for bit)."""
        if target is None:
            return F.cross_entropy(logits, y)
        return -F.cross_entropy(logits, target)

    @staticmethod
    def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Per-sample margin that is negative exactly when the attack succeeded."""
        lab = y if target is None else target
        own = logits.gather(1, lab[:, None]).squeeze(1)
        other = logits.scatter(1, lab[:, None], -math.inf).amax(1)
        return own - other if target is None else other - own

    @staticmethod
    def succeeded(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred != y if target is None else pred == target


def stream_seed(seed: int, index: int) -> int:
    """A 63-bit seed for input ``index`` under attack seed ``seed`` (two rounds of SplitMix64's finaliser,
    Steele, Lea and Flood 2014), so neighbouring indices get unrelated streams.

    >>> stream_seed(0, 1) != stream_seed(0, 2) != stream_seed(1, 1)
    True
    """
    mask = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & mask
    for _ in range(2):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
    return z >> 1


def per_sample(gens: list[torch.Generator], draw: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Stack one draw (``"rand"`` or ``"randn"``) of ``shape`` from each generator: ``(len(gens), *shape)``."""
    fn = torch.rand if draw == "rand" else torch.randn
    if not gens:
        return torch.empty((0, *shape), dtype=like.dtype, device=like.device)
    return torch.stack([fn(shape, generator=g, dtype=like.dtype, device=like.device) for g in gens])


def raise_bool(name: str, value: Any) -> None:
    raise ConfigError(f"Expected argument `{name}` to be a bool, but got {value!r}")


def bview(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector to broadcast against a batch like ``like``."""
    return v.view(-1, *([1] * (like.dim() - 1)))
