"""Model-agnostic metrics for verification: ROC analysis of membership scores, the NeurIPS 2023 unlearning
challenge's per-example epsilon and forgetting quality, and distances between models' predictions and
parameters. numpy and torch only.

Conventions: ``labels`` are 1 for members (positives) and 0 for non-members; a higher score means
"more likely a member". Inputs may be numpy arrays, torch tensors or sequences.

>>> scores, labels = [0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]
>>> roc_auc(scores, labels), tpr_at_fpr(scores, labels, 0.0), membership_advantage(scores, labels)
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]

__all__ = [
    "RocCurve", "epsilon_from_rates", "forgetting_quality", "js_divergence", "membership_advantage",
    "parameter_distance", "prediction_agreement", "roc_auc", "roc_curve", "tpr_at_fpr",
    "unlearning_epsilons",
]


def _to_numpy(x: Any, name: str, *, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Expected argument `{name}` to be numeric array-like, but got {type(x).__name__}") from exc
    return arr


def _scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = _to_numpy(scores, "scores").reshape(-1)
    raw = _to_numpy(labels, "labels").reshape(-1)
    if s.shape != raw.shape:
        raise ConfigError(f"Expected `scores` and `labels` of the same length, but got {s.size} and {raw.size}")
    if not np.all(np.isfinite(s)):
        raise ConfigError("Expected argument `scores` to be finite, but it holds NaN or infinite values; "
                          "clip or drop them first")
    if not np.all((raw == 0) | (raw == 1)):
        raise ConfigError("Expected argument `labels` to hold only 0 (non-member) and 1 (member)")
    y = raw.astype(bool)
    if y.all() or not y.any():
        raise ConfigError("Expected `labels` to hold both members (1) and non-members (0); a ROC curve "
                          "needs both")
    return s, y


@dataclass(frozen=True)
class RocCurve:
    """ROC points at every distinct score threshold, highest threshold first.

    ``fpr[i]`` and ``tpr[i]`` are the rates of the rule "member when score >= thresholds[i]"; the first
    point is ``(0, 0)`` at threshold ``+inf``, the last ``(1, 1)``.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        thr = [float(t) if math.isfinite(t) else None for t in self.thresholds]  # JSON has no inf
        return {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(), "thresholds": thr}


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> RocCurve:
    """All ROC points of ``scores`` against membership ``labels`` (1 = member), without interpolation.

    Equals ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    >>> curve = roc_curve([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    >>> curve.fpr.tolist(), curve.tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    s, y = _scores_labels(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # the last index of each run of equal scores: a threshold admits a whole tie group at once
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return RocCurve(fpr, tpr, thresholds)


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (trapezoids; ties count one half), as ``sklearn.metrics.roc_auc_score``.

    >>> roc_auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    0.875
    """
    c = roc_curve(scores, labels)
    return float(np.sum(np.diff(c.fpr) * (c.tpr[1:] + c.tpr[:-1]) / 2.0))


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """True-positive rate of the most permissive threshold whose false-positive rate is at most ``fpr``.

    This is the TPR of the last ROC point (lowest threshold) with FPR <= ``fpr``, read off the exact ROC
    points with no interpolation: what Carlini et al. (2022, "Membership Inference Attacks From First
    Principles") report as "TPR at low FPR". Agrees with ``tpr[fpr_curve <= fpr].max()`` on scikit-learn's
    ``roc_curve(..., drop_intermediate=False)`` (its default also drops collinear points, which can
    lower that reading). With ``n`` non-members, FPRs below ``1/n`` can only be met by flagging no
    non-member.

    >>> tpr_at_fpr([0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0], 0.5)
    1.0
    >>> tpr_at_fpr([0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0], 0.0)
    0.3333333333333333
    """
    if not (isinstance(fpr, (int, float)) and 0.0 <= float(fpr) <= 1.0):
        raise ConfigError(f"Expected argument `fpr` to be a float in [0, 1], but got {fpr!r}")
    c = roc_curve(scores, labels)
    # fpr is non-decreasing along the curve: the last admissible point has the largest TPR
    idx = int(np.searchsorted(c.fpr, float(fpr), side="right")) - 1
    return float(c.tpr[idx])


def membership_advantage(scores: ArrayLike, labels: ArrayLike) -> float:
    """Membership advantage ``max over thresholds of TPR - FPR`` (Yeom et al. 2018, "Privacy Risk in
    Machine Learning: Analyzing the Connection to Overfitting"); 0 for a useless attack, 1 for a perfect one.

    >>> membership_advantage([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    0.5
    """
    c = roc_curve(scores, labels)
    return float(np.max(c.tpr - c.fpr))


# --------------------------------------------------------------------------------------------------
# NeurIPS 2023 machine unlearning challenge: per-example epsilon and forgetting quality.
#
# Source: the challenge's evaluation document ("Evaluation for the NeurIPS Machine Unlearning
# Competition", the organizers, August 2023, https://unlearning-challenge.github.io/) and its write-up,
# Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS unlearning
# competition", arXiv 2406.09073 (2024). For each forget example, many unlearned models and many models
# retrained without the forget set each give one scalar output; attacks that tell the two output
# distributions apart have a FPR and FNR; the example's epsilon is the (epsilon, delta)-unlearning bound
# implied by the strongest attack, binned into a score 2 / 2**bin (bins of width 0.5 from 0), averaged
# into the forgetting quality F. The challenge multiplies F by utility ratios (retain and test accuracy
# of unlearned over retrained models); that product is left to the caller.
#
# Simplifications at small scale, stated:
# - the attacks are all single-threshold rules on one scalar (both directions), fitted and evaluated on
#   the same samples (the challenge also used cross-validated classifiers; in-sample thresholds can only
#   overestimate epsilon, so the score errs on the strict side);
# - a handful of models per side instead of 512: rates come in steps of 1/N, so a finite epsilon is at
#   most about log(N) and an example is resolved into fewer bins;
# - a threshold with one zero rate is discarded (as the challenge's code does); a perfect separation
#   (both rates zero) gets ``max_epsilon`` instead of infinity, so results stay finite.
# Consequence, measured: for identical output distributions, 16-64 models a side give mean epsilons of
# about 1.3 (F about 0.25-0.3) at delta = 0.01, 512 a side about 0.55 (F about 0.77): tail thresholds with
# rates of 1/N are not covered by delta < 1/N. Read a candidate's F against a floor computed the same way
# between two sets of retrained models, never against 1.
# --------------------------------------------------------------------------------------------------


def epsilon_from_rates(fpr: ArrayLike, fnr: ArrayLike, *, delta: float = 0.01,
                       max_epsilon: float = 20.0) -> float:
    """The (epsilon, delta) bound implied by attacks with these FPR/FNR pairs (NeurIPS 2023 unlearning
    challenge; see the module notes): the largest ``log((1 - delta - FPR) / FNR)`` or
    ``log((1 - delta - FNR) / FPR)``, at least 0; a perfect attack gives ``max_epsilon``.

    >>> round(epsilon_from_rates([0.1], [0.5], delta=0.0), 4)  # log(0.9 / 0.5) vs log(0.5 / 0.1)
    1.6094
    >>> epsilon_from_rates([0.5], [0.5])
    0.0
    """
    a = _to_numpy(fpr, "fpr").reshape(-1)
    b = _to_numpy(fnr, "fnr").reshape(-1)
    if a.shape != b.shape:
        raise ConfigError(f"Expected `fpr` and `fnr` of the same length, but got {a.size} and {b.size}")
    if np.any((a < 0) | (a > 1) | (b < 0) | (b > 1)) or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ConfigError("Expected `fpr` and `fnr` to be rates in [0, 1]")
    if not 0.0 <= delta < 1.0:
        raise ConfigError(f"Expected argument `delta` to be a float in [0, 1), but got {delta}")
    if not max_epsilon > 0:
        raise ConfigError(f"Expected argument `max_epsilon` to be positive, but got {max_epsilon}")
    if np.any((a == 0) & (b == 0)):
        return float(max_epsilon)
    keep = (a > 0) & (b > 0)  # one zero rate: the bound is undefined; the challenge discards the attack
    a, b = a[keep], b[keep]
    best = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for num, den in ((1.0 - delta - a, b), (1.0 - delta - b, a)):
            ok = num > 0
            if ok.any():
                best = max(best, float(np.max(np.log(num[ok] / den[ok]))))
    return float(min(best, max_epsilon))


def _threshold_rates(u: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and FNR of every rule "unlearned when value >= t" and "unlearned when value <= t"."""
    cuts = np.unique(np.r_[u, r])
    u_s, r_s = np.sort(u), np.sort(r)
    # rule "value >= t" says unlearned: FPR = retrained at or above t, FNR = unlearned below t
    fpr_hi = 1.0 - np.searchsorted(r_s, cuts, side="left") / r_s.size
    fnr_hi = np.searchsorted(u_s, cuts, side="left") / u_s.size
    # rule "value <= t" says unlearned
    fpr_lo = np.searchsorted(r_s, cuts, side="right") / r_s.size
    fnr_lo = 1.0 - np.searchsorted(u_s, cuts, side="right") / u_s.size
    return np.r_[fpr_hi, fpr_lo], np.r_[fnr_hi, fnr_lo]


def unlearning_epsilons(unlearned: ArrayLike, retrained: ArrayLike, *, delta: float = 0.01,
                        max_epsilon: float = 20.0) -> np.ndarray:
    """Per-example epsilon of the NeurIPS 2023 unlearning challenge (see the module notes).

    ``unlearned`` has shape ``(K, n)`` and ``retrained`` ``(M, n)``: one scalar per model (rows) and forget
    example (columns), e.g. the logit-scaled confidence of
    :func:`obliviate.verify.membership.model_confidences`. Each column's epsilon comes from every
    single-threshold attack separating the unlearned values from the retrained ones.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = rng.normal(size=(16, 3))
    >>> unlearning_epsilons(same, same).tolist()  # identical outputs: no attack does better than chance
    [0.0, 0.0, 0.0]
    >>> unlearning_epsilons(same + 100.0, same).tolist()  # perfectly separated: capped
    [20.0, 20.0, 20.0]
    """
    u = _to_numpy(unlearned, "unlearned")
    r = _to_numpy(retrained, "retrained")
    if u.ndim == 1:
        u = u[:, None]
    if r.ndim == 1:
        r = r[:, None]
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ConfigError(f"Expected `unlearned` (K, n) and `retrained` (M, n) with the same n, but got "
                          f"shapes {u.shape} and {r.shape}")
    if u.shape[0] < 2 or r.shape[0] < 2:
        raise ConfigError("Expected at least 2 unlearned and 2 retrained models (rows): epsilon compares "
                          "two output distributions")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        raise ConfigError("Expected finite model outputs in `unlearned` and `retrained`")
    out = np.empty(u.shape[1])
    for j in range(u.shape[1]):
        fpr, fnr = _threshold_rates(u[:, j], r[:, j])
        out[j] = epsilon_from_rates(fpr, fnr, delta=delta, max_epsilon=max_epsilon)
    return out


def forgetting_quality(epsilons: ArrayLike, *, bin_width: float = 0.5, num_bins: int = 13) -> float:
    """The challenge's forgetting quality F: mean over examples of ``2 / 2**b``, ``b`` the epsilon's bin
    (bin 1 is ``[0, bin_width)``, the last bin holds everything from ``(num_bins - 1) * bin_width``).
    F is 1 for perfect unlearning and tends to 0 as epsilons grow.

    >>> forgetting_quality([0.0, 0.2]), forgetting_quality([0.7]), forgetting_quality([100.0])
    (1.0, 0.5, 0.000244140625)
    """
    e = _to_numpy(epsilons, "epsilons").reshape(-1)
    if e.size == 0 or np.any(np.isnan(e)) or np.any(e < 0):
        raise ConfigError("Expected a non-empty array of non-negative `epsilons`")
    if not bin_width > 0 or num_bins < 1:
        raise ConfigError(f"Expected positive `bin_width` and `num_bins`, but got {bin_width}, {num_bins}")
    edges = np.arange(num_bins) * bin_width
    bins = np.digitize(e, edges)  # 1 .. num_bins
    return float(np.mean(2.0 / 2.0 ** bins))


# --------------------------------------------------------------------------------------------------
# Distances between models' predictions and parameters
# --------------------------------------------------------------------------------------------------


def _as_probs(x: Any, name: str, from_logits: bool) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ConfigError(f"Expected `{name}` of shape (n, classes), but got {a.shape}")
    if from_logits:
        a = a - a.max(axis=1, keepdims=True)
        a = np.exp(a)
    elif np.any(a < 0) or not np.allclose(a.sum(axis=1), 1.0, atol=1e-4):
        raise ConfigError(f"Expected `{name}` rows to be probability vectors (non-negative, summing to 1); "
                          "pass from_logits=True for logits")
    probs: np.ndarray = a / a.sum(axis=1, keepdims=True)
    return probs


def js_divergence(p: ArrayLike, q: ArrayLike, *, from_logits: bool = False,
                  reduction: str = "mean") -> float | np.ndarray:
    """Jensen-Shannon divergence (natural log, so in ``[0, ln 2]``) between rows of two prediction
    distributions of shape ``(n, classes)``; ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``.

    >>> round(js_divergence([[1.0, 0.0]], [[0.0, 1.0]]), 6)  # ln 2
    0.693147
    >>> js_divergence([[0.3, 0.7]], [[0.3, 0.7]])
    0.0
    """
    a = _as_probs(p, "p", from_logits)
    b = _as_probs(q, "q", from_logits)
    if a.shape != b.shape:
        raise ConfigError(f"Expected `p` and `q` of the same shape, but got {a.shape} and {b.shape}")
    m = 0.5 * (a + b)

    def kl(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * (np.log(x) - np.log(m)), 0.0)
        row_sums: np.ndarray = terms.sum(axis=1)
        return row_sums

    per_row = np.clip(0.5 * kl(a) + 0.5 * kl(b), 0.0, math.log(2.0))
    if reduction == "none":
        return per_row
    if reduction == "mean":
        return float(per_row.mean()) if per_row.size else 0.0
    if reduction == "sum":
        return float(per_row.sum())
    raise ConfigError(f"Expected argument `reduction` to be one of 'mean', 'sum', 'none', but got {reduction!r}")


def _labels_of(x: Any, name: str) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 2:
        labels: np.ndarray = a.argmax(axis=1)
        return labels
    if a.ndim == 1:
        return a
    raise ConfigError(f"Expected `{name}` to be predicted labels (n,) or scores (n, classes), but got {a.shape}")


def prediction_agreement(a: ArrayLike, b: ArrayLike) -> float:
    """Fraction of inputs on which two models predict the same class. Each argument is either predicted
    labels ``(n,)`` or per-class scores ``(n, classes)`` (logits or probabilities, arg-maxed).

    >>> prediction_agreement([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    >>> prediction_agreement([[2.0, 1.0], [0.0, 3.0]], [1, 1])
    0.5
    """
    x, y = _labels_of(a, "a"), _labels_of(b, "b")
    if x.shape != y.shape:
        raise ConfigError(f"Expected predictions for the same inputs, but got {x.shape[0]} and {y.shape[0]}")
    if x.size == 0:
        raise ConfigError("Expected at least one prediction to compare")
    return float(np.mean(x == y))


def _state(x: Any, name: str) -> Mapping[str, torch.Tensor]:
    if isinstance(x, nn.Module):
        return x.state_dict()
    if isinstance(x, Mapping):
        return x
    raise ConfigError(f"Expected `{name}` to be an nn.Module or a state dict, but got {type(x).__name__}")


def parameter_distance(a: nn.Module | Mapping[str, torch.Tensor], b: nn.Module | Mapping[str, torch.Tensor],
                       *, ord: float = 2, relative: bool = False) -> float:
    """Norm of the difference between two models' floating-point state entries (parameters and float
    buffers such as BatchNorm statistics; integer counters are skipped), flattened into one vector.

    ``ord`` is 1, 2 or ``inf``; with ``relative=True`` the result is divided by the norm of ``b``. Both
    must have the same keys and shapes. Parameter distance is not invariant to weight symmetries
    (permuted hidden units), so compare it with a noise floor, never against zero.

    >>> import torch
    >>> parameter_distance({"w": torch.tensor([3.0, 0.0])}, {"w": torch.tensor([0.0, 4.0])})
    5.0
    """
    sa, sb = _state(a, "a"), _state(b, "b")
    if set(sa) != set(sb):
        diff = sorted(set(sa) ^ set(sb))
        raise ConfigError(f"Expected state dicts with the same keys; these are in only one of them: {diff[:10]}")
    if ord not in (1, 2, math.inf):
        raise ConfigError(f"Expected argument `ord` to be 1, 2 or inf, but got {ord!r}")
    diff_parts, ref_parts = [], []
    for k in sorted(sa):
        ta, tb = sa[k], sb[k]
        if not (torch.is_floating_point(ta) and torch.is_floating_point(tb)):
            continue
        if ta.shape != tb.shape:
            raise ConfigError(f"Expected entry {k!r} to have the same shape, but got {tuple(ta.shape)} and "
                              f"{tuple(tb.shape)}")
        ta64 = ta.detach().to("cpu", torch.float64).reshape(-1)
        tb64 = tb.detach().to("cpu", torch.float64).reshape(-1)
        diff_parts.append(ta64 - tb64)
        ref_parts.append(tb64)
    if not diff_parts:
        return 0.0
    d = torch.linalg.vector_norm(torch.cat(diff_parts), ord=ord).item()
    if relative:
        ref = torch.linalg.vector_norm(torch.cat(ref_parts), ord=ord).item()
        return float(d / ref) if ref > 0 else (0.0 if d == 0 else math.inf)
    return float(d)
