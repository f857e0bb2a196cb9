"""The stitch guard: paired tests on validation predictions before a stitched model is committed.

Stitching ``theta_B + (theta'_t - theta_t)`` can break a model (measured: momentum SGD at a high rate
loses up to 35 points), and an original that itself ended badly hides a bad stitch from any test that
only compares with it. So the guard asks three questions of the candidate's validation predictions,
each an exact test with its numbers reported:

- *above chance*: is its accuracy significantly above the best constant predictor's (the validation
  set's majority-class rate)? One-sided binomial test at ``chance_alpha``. Refuses models near chance
  whatever the other models did.
- *no worse than the current model*: McNemar's exact test against the current model's cached
  validation predictions, one-sided (``b`` samples the current model gets right and the candidate
  wrong, ``c`` the reverse; ``p = P(X >= b)``, ``X ~ Bin(b + c, 1/2)``). Paired, so it sees a 1-point drop
  on a few hundred samples where a fixed tolerance on accuracies cannot.
- *no worse than a fresh reference*: the same paired test against the last retrained model
  ``theta'_t`` (a model of the new trajectory, independent of how the stored chain ended), on
  ``reference_samples`` validation samples.

The stitch passes when no test rejects. A failed stitch makes the engine retrain on toward exact.

>>> import torch
>>> y = torch.arange(800) % 10
>>> current = y.clone()                      # the current model: all correct
>>> candidate = y.clone(); candidate[:8] = (y[:8] + 1) % 10   # one point lower: 8 new errors, no fixes
>>> v = StitchGuard().check(labels=y, candidate=candidate, current=current)
>>> v.passed, v.tests[1]["name"], v.tests[1]["b"], v.tests[1]["c"], round(v.tests[1]["p_value"], 4)
(False, 'no worse than the current model', 8, 0, 0.0039)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .._binomial import binomial_sf
from ..errors import ConfigError


@dataclass
class GuardVerdict:
    block: int
    passed: bool
    reasons: list[str]
    tests: list[dict[str, Any]] = field(default_factory=list)
    n_validation: int = 0
    candidate_accuracy: float = float("nan")
    current_accuracy: float = float("nan")
    reference_accuracy: float = float("nan")  # the fresh reference, on its subset
    candidate_loss: float = float("nan")
    screening: dict[str, Any] = field(default_factory=dict)  # rows the candidate was evaluated on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_worse(labels: torch.Tensor, candidate: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """One-sided exact McNemar test that ``candidate`` is less accurate than ``reference``."""
    right_c, right_r = candidate == labels, reference == labels
    b = int((right_r & ~right_c).sum())
    c = int((right_c & ~right_r).sum())
    p = binomial_sf(b, b + c, 0.5) if b + c else 1.0
    return {"b": b, "c": c, "p_value": p, "n": len(labels)}


def above_chance(labels: torch.Tensor, candidate: torch.Tensor) -> dict[str, Any]:
    """One-sided binomial test that ``candidate`` beats the best constant predictor."""
    n = len(labels)
    correct = int((candidate == labels).sum())
    chance = float(torch.bincount(labels).max()) / n
    p = binomial_sf(correct, n, chance)
    return {"correct": correct, "n": n, "chance": chance, "p_value": p}


@dataclass(frozen=True)
class StitchGuard:
    """Paired tests on validation predictions (see the module docstring). ``enabled=False`` ships
    every stitch unchecked (for experiments only).

    Screening (``screen_rows``): a stitch moves the model a little, and a prediction can only flip
    where the current model's margin (top-1 minus top-2 logit, cached) is small. The candidate is
    evaluated on the ``screen_fraction`` of validation rows with the smallest margins plus
    ``screen_random`` random others; a flip among the random ones shows that the assumption fails and
    every row is evaluated. Rows not evaluated count as unchanged in the tests. After ``full_every``
    screened commits in a row the next check evaluates every row. ``screen_fraction = 1`` evaluates
    every row every time.
    """

    alpha: float = 0.05
    chance_alpha: float = 1e-3
    reference_samples: int = 128
    screen_fraction: float = 0.25
    screen_random: int = 64
    full_every: int = 8
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"Expected the guard's alpha in (0, 1), but got {self.alpha}")
        if not 0 < self.screen_fraction <= 1:
            raise ConfigError(f"Expected screen_fraction in (0, 1], but got {self.screen_fraction}")
        if self.screen_random < 0 or self.full_every < 1:
            raise ConfigError(f"Expected screen_random >= 0 and full_every >= 1, but got {self.screen_random} "
                              f"and {self.full_every}")
        if not 0 < self.chance_alpha < 1:
            raise ConfigError(f"Expected the guard's chance_alpha in (0, 1), but got {self.chance_alpha}")
        if self.reference_samples < 0:
            raise ConfigError(f"Expected reference_samples >= 0, but got {self.reference_samples}")

    def reference_subset(self, n_validation: int) -> torch.Tensor:
        """The validation rows the fresh reference is evaluated on (fixed, evenly spread)."""
        k = min(self.reference_samples, n_validation)
        return torch.linspace(0, n_validation - 1, k).round().to(torch.int64).unique() if k else \
            torch.zeros(0, dtype=torch.int64)

    def screen_rows(self, margin: torch.Tensor, screened_before: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(low-margin rows, random rows) to evaluate the candidate on, or None: evaluate every row."""
        n = len(margin)
        if self.screen_fraction >= 1 or screened_before >= self.full_every or not torch.isfinite(margin).all():
            return None
        k = math.ceil(self.screen_fraction * n)
        order = torch.argsort(margin, stable=True)
        low, rest = order[:k], order[k:]
        if len(rest) <= self.screen_random:
            return None
        gen = torch.Generator().manual_seed(0x5C4EE + screened_before)
        rand = rest[torch.randperm(len(rest), generator=gen)[:self.screen_random]]
        return low, rand

    def check(self, *, labels: torch.Tensor, candidate: torch.Tensor, current: torch.Tensor,
              reference: torch.Tensor | None = None, reference_rows: torch.Tensor | None = None,
              block: int = 0, candidate_loss: float = float("nan")) -> GuardVerdict:
        """``candidate``, ``current``: predicted labels on every validation sample; ``reference``:
        the fresh reference's predicted labels on ``reference_rows``."""
        n = len(labels)
        verdict = GuardVerdict(block, False, [], n_validation=n, candidate_loss=candidate_loss)
        if n == 0:
            verdict.passed = not self.enabled
            if self.enabled:
                verdict.reasons.append("the run has no validation data to check a stitch with (set "
                                       "data.validation_fraction > 0), so the engine retrains to the exact result")
            return verdict
        verdict.candidate_accuracy = float((candidate == labels).float().mean())
        verdict.current_accuracy = float((current == labels).float().mean())
        chance = {"name": "above chance", "alpha": self.chance_alpha, **above_chance(labels, candidate)}
        worse = {"name": "no worse than the current model", "alpha": self.alpha,
                 **mcnemar_worse(labels, candidate, current)}
        verdict.tests = [chance, worse]
        if chance["p_value"] >= self.chance_alpha:
            verdict.reasons.append(f"validation accuracy {verdict.candidate_accuracy:.4f} is not significantly above "
                                   f"chance {chance['chance']:.4f} (binomial p = {chance['p_value']:.3g})")
        if worse["p_value"] < self.alpha:
            verdict.reasons.append(f"worse than the current model on validation: {worse['b']} samples lost, "
                                   f"{worse['c']} gained (McNemar p = {worse['p_value']:.3g} < {self.alpha})")
        if reference is not None and reference_rows is not None and len(reference_rows):
            sub = labels[reference_rows]
            fresh = {"name": "no worse than the retrained reference", "alpha": self.alpha,
                     **mcnemar_worse(sub, candidate[reference_rows], reference)}
            verdict.reference_accuracy = float((reference == sub).float().mean())
            verdict.tests.append(fresh)
            if fresh["p_value"] < self.alpha:
                verdict.reasons.append(f"worse than the retrained model theta'_{block} on {fresh['n']} validation "
                                       f"samples: {fresh['b']} lost, {fresh['c']} gained "
                                       f"(McNemar p = {fresh['p_value']:.3g} < {self.alpha})")
        verdict.passed = not verdict.reasons or not self.enabled
        return verdict
