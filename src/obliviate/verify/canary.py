"""Backdoor canaries: probabilistic verification that data was deleted.

Sommer, Song, Wagh, Mittal, "Towards Probabilistic Verification of Machine Unlearning" (arXiv 2003.04247;
PETS 2022): a user stamps a private trigger on some of their samples and relabels them to a target
class before handing them over. A model trained on them learns the backdoor: triggered inputs go to the
target class at a high attack success rate (ASR) ``p``. A model that never saw them (or had them properly
deleted) shows only the background rate ``q``. After asking for deletion, the user queries the model with
triggered inputs and runs a binomial hypothesis test between H0 "deleted" (success probability ``q``) and
H1 "not deleted" (``p``).

The test only has power when the original model still remembers the canary (``p`` well above ``q``):
block training makes canaries fade on their own (see the design note on canary measurements), so the
verdict says "inconclusive" rather than "pass" when the original's ASR is too low.

>>> import torch
>>> from obliviate.data import IndexedDataset
>>> from obliviate.data.triggers import PatchTrigger
>>> ds = IndexedDataset(torch.arange(3), torch.zeros(3, 1, 4, 4), torch.tensor([1, 2, 1]), 3)
>>> planted = Canary(PatchTrigger(size=2), target=0).plant(ds, [1])
>>> planted.y.tolist(), float(planted.x[1, 0, -1, -1]), float(planted.x[0, 0, -1, -1])
([1, 0, 1], 1.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..data.base import IndexedDataset
from ..data.triggers import PatchTrigger, plant_backdoor
from ..errors import ConfigError
from .membership import model_confidences

__all__ = ["Canary", "CanaryVerdict", "DeletionTest", "canary_verdict", "deletion_test", "deletion_power"]


class Trigger(Protocol):
    def apply(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Canary:
    """A backdoor canary: ``trigger`` stamped on a user's samples, relabelled to class ``target``.

    Any trigger with an ``apply(x)`` method works (``PatchTrigger``, ``BlendTrigger``).
    """

    trigger: Trigger = field(default_factory=PatchTrigger)
    target: int = 0

    def __post_init__(self) -> None:
        if not callable(getattr(self.trigger, "apply", None)):
            raise ConfigError(f"Expected `trigger` to have an apply(x) method, but got {type(self.trigger).__name__}")
        if not isinstance(self.target, int) or isinstance(self.target, bool) or self.target < 0:
            raise ConfigError(f"Expected argument `target` to be a class index >= 0, but got {self.target!r}")

    def _check_classes(self, dataset: IndexedDataset) -> None:
        if self.target >= dataset.num_classes:
            raise ConfigError(f"canary target class {self.target} is not among the dataset's "
                              f"{dataset.num_classes} classes")

    def plant(self, dataset: IndexedDataset, ids: Sequence[int] | torch.Tensor) -> IndexedDataset:
        """A copy of ``dataset`` where the samples with these ``ids`` carry the trigger and the target label;
        every other sample is left exactly as it was. Unknown ids raise ``RequestError``."""
        self._check_classes(dataset)
        planted: IndexedDataset = plant_backdoor(dataset, ids, self.trigger, self.target)
        return planted

    def triggered(self, test_dataset: IndexedDataset) -> IndexedDataset:
        """The test samples whose true label is not the target, stamped with the trigger (labels kept true)."""
        self._check_classes(test_dataset)
        keep = torch.nonzero(test_dataset.y != self.target).flatten()
        sub = test_dataset.take(keep)
        return sub.with_data(self.trigger.apply(sub.x).to(sub.x.dtype), sub.y)

    def attack_success(self, model: nn.Module, test_dataset: IndexedDataset, *,
                       batch_size: int = 512) -> tuple[int, int]:
        """``(successes, trials)``: how many triggered test inputs (true label != target) the model sends to
        the target class. The model's train/eval mode is restored afterwards."""
        trig = self.triggered(test_dataset)
        if len(trig) == 0:
            return 0, 0
        pred = model_confidences(model, trig, batch_size).predictions
        return int(np.sum(pred == self.target)), len(trig)


Rate = float | tuple[int, int]


def _rate(v: Rate, name: str) -> float:
    if isinstance(v, tuple):
        if len(v) != 2:
            raise ConfigError(f"Expected `{name}` as (successes, trials), but got {v!r}")
        s, n = v
        if n <= 0 or not 0 <= s <= n:
            raise ConfigError(f"Expected `{name}` with 0 <= successes <= trials and trials > 0, but got {v!r}")
        return s / n
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
        raise ConfigError(f"Expected `{name}` to be a rate in [0, 1] or (successes, trials), but got {v!r}")
    return float(v)


def _check_counts(successes: int, trials: int) -> None:
    for name, v in (("successes", successes), ("trials", trials)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"Expected argument `{name}` to be an int, but got {v!r}")
    if trials < 1 or not 0 <= successes <= trials:
        raise ConfigError(f"Expected 0 <= successes <= trials and trials >= 1, but got {successes}, {trials}")


def _critical_successes(trials: int, p_deleted: float, alpha: float) -> int:
    """Smallest k with P[X >= k | Binomial(trials, p_deleted)] <= alpha (trials + 1 if none)."""
    from scipy.stats import binom

    tail = binom.sf(np.arange(trials + 1) - 1, trials, p_deleted)  # P[X >= k], k = 0..trials
    ok = np.flatnonzero(tail <= alpha)
    return int(ok[0]) if ok.size else trials + 1


def deletion_power(trials: int, p_deleted: float, p_kept: float, *, alpha: float = 0.01) -> float:
    """Sommer et al.'s confidence ``rho = 1 - beta`` of the one-sided binomial test with ``trials`` queries
    at level ``alpha``: the probability that a server which did not delete is caught.

    >>> round(deletion_power(100, 0.1, 0.9), 6), round(deletion_power(5, 0.1, 0.15), 3)
    (1.0, 0.027)
    """
    from scipy.stats import binom

    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"Expected argument `alpha` to be a float in (0, 1), but got {alpha}")
    k = _critical_successes(int(trials), float(p_deleted), alpha)
    return float(binom.sf(k - 1, trials, p_kept)) if k <= trials else 0.0



@dataclass(frozen=True)
class DeletionTest:
    """Outcome of Sommer et al.'s test of H0 "deleted" (ASR ``p_deleted``) against H1 "not deleted"
    (ASR ``p_kept``) after observing ``successes`` in ``trials`` triggered queries.

    - ``p_value``: P[X >= successes] under "deleted"; small means the model still has the backdoor.
    - ``log_likelihood_ratio``: natural log of P[successes | not deleted] / P[successes | deleted].
    - ``deletion_confidence``: posterior probability of "deleted" with even prior odds, 1 / (1 + LR).
    - ``power``: Sommer et al.'s rho = 1 - beta at ``alpha`` with this many trials.
    """

    successes: int
    trials: int
    p_deleted: float
    p_kept: float
    alpha: float
    p_value: float
    log_likelihood_ratio: float
    deletion_confidence: float
    power: float
    critical_successes: int

    @property
    def rejects_deletion(self) -> bool:
        """True when the test rejects "deleted" at level ``alpha``."""
        return self.p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rejects_deletion"] = self.rejects_deletion
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def deletion_test(successes_after: int, trials: int, p_deleted: float, p_kept: float, *,
                  alpha: float = 0.01) -> DeletionTest:
    """Sommer et al.'s binomial test that a canary was deleted (see :class:`DeletionTest`).

    ``p_deleted`` is the ASR of a model that never saw the canary (the exact retrain), ``p_kept`` the
    original's. Queries are treated as independent Bernoulli trials, as in the paper.

    >>> t = deletion_test(88, 100, p_deleted=0.05, p_kept=0.9)  # still remembers: reject "deleted"
    >>> t.p_value < 1e-50, t.rejects_deletion, t.deletion_confidence < 1e-50
    (True, True, True)
    >>> t = deletion_test(6, 100, p_deleted=0.05, p_kept=0.9)  # looks like the retrain
    >>> round(t.p_value, 3), t.rejects_deletion, t.deletion_confidence > 0.999
    (0.384, False, True)
    """
    from scipy.stats import binomtest

    _check_counts(successes_after, trials)
    q = _rate(p_deleted, "p_deleted")
    p = _rate(p_kept, "p_kept")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"Expected argument `alpha` to be a float in (0, 1), but got {alpha}")
    p_value = float(binomtest(int(successes_after), int(trials), q, alternative="greater").pvalue)
    tiny = 1e-12  # keeps the ratio finite when a rate is exactly 0 or 1
    pc, qc = min(max(p, tiny), 1 - tiny), min(max(q, tiny), 1 - tiny)
    s, f = int(successes_after), int(trials) - int(successes_after)
    llr = s * (math.log(pc) - math.log(qc)) + f * (math.log1p(-pc) - math.log1p(-qc))
    confidence = 1.0 / (1.0 + math.exp(llr)) if llr < 700 else 0.0
    k = _critical_successes(int(trials), q, alpha)
    return DeletionTest(int(successes_after), int(trials), q, p, float(alpha), p_value, float(llr), float(confidence),
                        deletion_power(int(trials), q, p, alpha=alpha), k)


@dataclass(frozen=True)
class CanaryVerdict:
    """``verdict`` is ``"pass"`` (the canary looks deleted), ``"fail"`` (it does not) or ``"inconclusive"``
    (the test has no power: the original barely remembers the canary, or too few trials); ``reason`` says
    why. The original's and retrain's ASR are always reported."""

    verdict: str
    reason: str
    asr_original: float
    asr_after: float
    asr_retrained: float
    test: DeletionTest

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "asr_original": self.asr_original,
                "asr_after": self.asr_after, "asr_retrained": self.asr_retrained, "test": self.test.to_dict()}


def canary_verdict(original: Rate, after: tuple[int, int], retrained: Rate, *, alpha: float = 0.01,
                   min_power: float = 0.8, min_gap: float = 0.1, margin: float = 0.02) -> CanaryVerdict:
    """Verdict on a canary deletion from attack success counts (or rates, for ``original`` and
    ``retrained``), as the project's yardstick asks:

    - inconclusive when the original's ASR is not at least ``min_gap`` above the retrain's, or the test
      with this many trials would catch a non-deleting server with probability below ``min_power``;
    - fail when the test rejects "deleted" at ``alpha``, or the ASR after unlearning exceeds the retrain's
      by more than ``margin`` (2 points by default);
    - pass otherwise.

    >>> canary_verdict((95, 100), (3, 100), (2, 100)).verdict
    'pass'
    >>> canary_verdict((90, 100), (80, 100), (2, 100)).verdict
    'fail'
    >>> canary_verdict((5, 100), (3, 100), (2, 100)).verdict  # the original forgot the canary by itself
    'inconclusive'
    """
    p = _rate(original, "original")
    q = _rate(retrained, "retrained")
    if not isinstance(after, tuple) or len(after) != 2:
        raise ConfigError(f"Expected `after` as (successes, trials), but got {after!r}")
    s, n = after
    _check_counts(s, n)
    for name, v in (("min_power", min_power), ("min_gap", min_gap), ("margin", margin)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"Expected argument `{name}` to be a float in [0, 1], but got {v}")
    test = deletion_test(s, n, q, p, alpha=alpha)
    asr_after = s / n
    if p - q < min_gap:
        verdict, reason = "inconclusive", (
            f"the original's ASR {p:.3f} is not {min_gap:.2f} above the retrain's {q:.3f}: the original no longer "
            "remembers the canary, so its absence proves nothing (plant it later, in more samples, or use a "
            "schedule that does not decay to zero)")
    elif test.power < min_power:
        verdict, reason = "inconclusive", (
            f"with {n} trials the test catches a non-deleting server with probability {test.power:.3f} < "
            f"{min_power:.2f}; query more triggered inputs")
    elif test.rejects_deletion:
        verdict, reason = "fail", (
            f"ASR after unlearning {asr_after:.3f} is unlikely under deletion (p = {test.p_value:.2e} <= {alpha}); "
            f"original {p:.3f}, retrain {q:.3f}")
    elif asr_after > q + margin:
        verdict, reason = "fail", (
            f"ASR after unlearning {asr_after:.3f} exceeds the retrain's {q:.3f} by more than {margin:.2f}")
    else:
        verdict, reason = "pass", (
            f"ASR after unlearning {asr_after:.3f} is within {margin:.2f} of the retrain's {q:.3f} (original "
            f"{p:.3f}, test power {test.power:.3f})")
    return CanaryVerdict(verdict, reason, p, asr_after, q, test)
