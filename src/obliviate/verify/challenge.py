"""The NeurIPS 2023 machine-unlearning challenge's official forget score, on CPU (numpy, our own code).

Reference: google-deepmind/unlearning_evaluation, ``metric.py`` (read at commit ffae0ff; Apache-2.0;
not copied), described in Triantafillou et al., "Are we making progress in unlearning? Findings from
the first NeurIPS unlearning competition", arXiv 2406.09073. Its definitions, which this module
follows:

1. Per forget example, the logit-scaled confidence ``log p_y - log(1 - p_y)`` under each of ``N``
   unlearned and ``N`` retrained models (:func:`obliviate.verify.membership.logit_scaled_confidence`;
   the official code adds 1e-45 inside both logs, which only matters for saturated softmaxes).
2. "Positive" is whichever side has the larger median on that example.
3. If the smaller of the two ranges (max - min over models) is below 1% of the larger, one side is
   "peaky": epsilon = the cap, 50.
4. Otherwise two families of decision rules, on a grid of 100 thresholds per unit:
   single thresholds ``c >= thr`` (``thr`` spaced from the smallest to the largest value), and
   intervals ``l <= c <= r`` predicting the peakier side (width of the smaller range, a buffer of 2:
   ``r`` from ``min + width - 2`` to ``max + 2`` of the peakier side, ``l`` in
   ``[r - width - 2, r - width + 2]`` with 400 values).
5. Per rule, ``epsilon = max(log(1 - delta - FPR) - log(FNR), log(1 - delta - FNR) - log(FPR))``,
   at least 0; ``FPR = FNR = 0`` gives infinity; a rule with exactly one zero rate is discarded.
   The example's epsilon is the largest over the rules, clipped to ``[0, 50]``; ``delta = 1e-5``.
6. Score: buckets of width 0.5 from 0 up to ``ceil(ln(N - 1))`` (``N``: unlearned models), worth
   1, 1/2, 1/4, ...; an epsilon beyond the last bucket scores 0. The forget score is the mean over
   forget examples (the challenge then multiplies it by utility ratios, left to the caller).

Differences from the official code, stated: rates are exact fractions in float64 (the official code
holds them in float32, so its epsilons differ by up to about 1e-6); rates are counted by binary search
instead of a dense comparison on the GPU (same counts); a rule grid with no threshold (impossible
except for constant inputs) gives epsilon 0 instead of an assertion error.

With few models the score is coarse: at ``N = 32`` rates move in steps of 1/32 and there are 8 buckets
(``ceil(ln 31) = 4``). Read a candidate's score against the oracle-vs-oracle floor computed the same way.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> same = rng.normal(size=(32, 4))
>>> challenge_score(same, same)  # identical distributions: every epsilon is 0, full marks
1.0
>>> challenge_score(same + 10.0, same)  # perfectly separated: capped, no points
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["DELTA", "EPSILON_CAP", "ChallengeResult", "challenge_epsilons", "challenge_score", "score_from_epsilons"]

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0
BUCKET = 0.5


def _count_ge(sorted_vals: np.ndarray, thr: np.ndarray) -> np.ndarray:
    return sorted_vals.size - np.searchsorted(sorted_vals, thr, side="left")


def _count_in(sorted_vals: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    counts: np.ndarray = np.maximum(np.searchsorted(sorted_vals, hi, side="right")
                                    - np.searchsorted(sorted_vals, lo, side="left"), 0)
    return counts


def _single_rates(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, ...]:
    both = np.r_[pos, neg]
    lo, hi = float(both.min()), float(both.max())
    thr = np.linspace(lo, hi, math.ceil((hi - lo) * THRESHOLDS_PER_UNIT))
    tpr = _count_ge(np.sort(pos), thr) / pos.size
    fpr = _count_ge(np.sort(neg), thr) / neg.size
    return tpr, 1.0 - tpr, fpr, 1.0 - fpr


def _interval_rates(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, ...]:
    pos_range, neg_range = np.ptp(pos), np.ptp(neg)
    width = min(pos_range, neg_range)
    if pos_range >= neg_range:  # "positive" for this family is the peakier side
        pos, neg = neg, pos
    lo, hi = pos.min() + width - BUFFER, pos.max() + BUFFER
    right = np.linspace(lo, hi, math.ceil((hi - lo) * THRESHOLDS_PER_UNIT))
    n_left = math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)
    left = np.concatenate([np.linspace(r - width - BUFFER, r - width + BUFFER, n_left) for r in right]) \
        if right.size else np.zeros(0)
    right = np.repeat(right, n_left)
    tpr = _count_in(np.sort(pos), left, right) / pos.size
    fpr = _count_in(np.sort(neg), left, right) / neg.size
    return tpr, 1.0 - tpr, fpr, 1.0 - fpr


def _example_epsilon(pos: np.ndarray, neg: np.ndarray, delta: float) -> float:
    pr, nr = np.ptp(pos), np.ptp(neg)
    largest, smallest = max(pr, nr), min(pr, nr)
    if largest > 0 and smallest / largest < 0.01:
        return EPSILON_CAP
    parts = [_interval_rates(pos, neg), _single_rates(pos, neg)]
    tpr, fnr, fpr, tnr = (np.concatenate([p[i] for p in parts]) for i in range(4))
    if tpr.size == 0:
        return 0.0
    perfect = (fpr + fnr == 0) & (tpr + tnr == 2)
    if perfect.any():
        return EPSILON_CAP
    keep = fpr * fnr != 0
    if not keep.any():
        return 0.0
    fpr, fnr = fpr[keep], fnr[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1.0 - delta - fpr) - np.log(fnr)
        b = np.log(1.0 - delta - fnr) - np.log(fpr)
    best = np.fmax(a, b)  # NaN (a negative argument) only where the other one is defined
    best = best[~np.isnan(best)]
    return float(min(max(best.max(), 0.0), EPSILON_CAP)) if best.size else 0.0


def challenge_epsilons(unlearned: np.ndarray, retrained: np.ndarray, *, delta: float = DELTA) -> np.ndarray:
    """Per-example epsilon from confidences ``(N models, n examples)`` of unlearned and retrained models."""
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    if u.ndim != 2 or r.shape != u.shape or u.shape[0] < 2:
        raise ConfigError(f"Expected unlearned and retrained confidences of the same shape (N >= 2 models, n "
                          f"examples), but got {u.shape} and {r.shape}")
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise ConfigError("Expected finite confidences")
    retrain_positive = np.median(r, axis=0) > np.median(u, axis=0)
    pos = np.where(retrain_positive, r, u)
    neg = np.where(retrain_positive, u, r)
    return np.array([_example_epsilon(pos[:, j], neg[:, j], delta) for j in range(u.shape[1])])


def score_from_epsilons(epsilons: np.ndarray, num_models: int) -> float:
    """The forget score: mean bucket points, buckets of 0.5 up to ``ceil(ln(num_models - 1))``."""
    eps = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    if eps.size == 0:
        raise ConfigError("Expected at least one epsilon")
    top = math.ceil(math.log(num_models - 1)) if num_models > 1 else 0
    n_buckets = round(top / BUCKET)
    idx = np.floor(eps / BUCKET).astype(np.int64)
    points = np.where(idx < n_buckets, 0.5 ** np.minimum(idx, 60), 0.0)
    return float(points.mean())


@dataclass(frozen=True)
class ChallengeResult:
    epsilons: np.ndarray
    score: float
    num_models: int
    max_epsilon: int


def challenge_score(unlearned: np.ndarray, retrained: np.ndarray, *, delta: float = DELTA) -> float:
    """The official forget score of unlearned against retrained confidences ``(N, n)`` (see module)."""
    u = np.asarray(unlearned, dtype=np.float64)
    return score_from_epsilons(challenge_epsilons(u, retrained, delta=delta), u.shape[0])
