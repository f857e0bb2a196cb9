"""The *faithful* verdict: is the candidate a plausible member of the cloud of models retrained without ``U``?

Statistics, each for the candidate and for every oracle:

- utility: test accuracy;
- agreement: mean test prediction agreement with the oracles (an oracle with the other ``N - 1``, the
  candidate with all ``N``): how close to the cloud's centre a model sits;
- retained fit (when given): on retained training samples of the blocks after ``d``, which every
  honest deletion still learnt, the candidate must be typical of the oracles: the forgotten test's
  user-level statistics (:func:`obliviate.verify.forgotten.user_test`, two-sided) on those samples.
  It catches a model whose general fit of the later blocks is off.
- later-blocks fit (when given): on the retained samples of blocks ``d+1..B`` that the shared start
  (the stored state after block ``d - 1``, where every oracle begins) fits worst, the candidate's mean
  ``asinh(phi)`` against the oracles' ``N`` means (predictive t-test, lower tail). Only training on
  those blocks fits them, so a model missing the later blocks' training (the deleted block retrained
  and returned without the later updates) is less confident on them than the oracles, where accuracy,
  agreement and a random retained sample barely move (most samples generalise). One-sided: it asks
  only "did the candidate learn what the later blocks taught"; the retained fit covers both directions.
  The choice depends on the start and the data only, never on a replay's seed, so under H0 the
  candidate is exchangeable with the oracles on it as on everything else.

H0: "the candidate is no worse than one more oracle, up to a tolerance" (``accuracy_tolerance``,
``agreement_tolerance``: half a point by default, the yardstick of docs/deepobliviate.md). Each
statistic is tested as a new draw from the Gaussian fitted to the oracles' values (predictive t-test,
``N - 1`` degrees of freedom, lower tail, the candidate's value raised by the tolerance). The
oracles' leave-one-out agreements share terms, which shrinks their spread by about
``(N - 2) / (N - 1)``; the spread is inflated back by that factor. Bonferroni over the statistics: the
fidelity p-value is ``min(1, k min(p_accuracy, p_agreement, p_retained, p_later))`` (``k`` the number of
statistics given), rejected at ``fidelity_alpha``.

This replaces "below the worst oracle", which fails one retrain in ``N + 1`` by construction and
has no level. Also reported: the conformal rank p-values (exact under exchangeability, but never below
``1 / (N + 1)``, so they cannot reject with few oracles).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = rng.integers(0, 3, size=400)
>>> def noisy(p):  # predictions that agree with the labels with probability 1 - p
...     flip = rng.random(400) < p
...     return np.where(flip, (labels + 1) % 3, labels)
>>> oracles = np.stack([noisy(0.05) for _ in range(8)])
>>> faithful_test(noisy(0.05), oracles, labels).verdict, faithful_test(noisy(0.30), oracles, labels).verdict
('yes', 'no')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["FaithfulTest", "faithful_test", "original_centre"]


@dataclass
class FaithfulTest:
    verdict: str  # "yes" or "no"
    p_value: float
    p_accuracy: float
    p_agreement: float
    p_retained: float | None
    p_later: float | None
    candidate: dict[str, float]
    oracles: list[dict[str, float]]
    rank_p_accuracy: float
    rank_p_agreement: float
    tolerances: dict[str, float]
    alpha: float
    worst_oracle: dict[str, float]
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _lower_p(value: float, null: np.ndarray, floor_sd: float, inflate: float = 1.0) -> float:
    from scipy.stats import t as student

    n = null.size
    sd = max(float(null.std(ddof=1)) * inflate, floor_sd)
    t = (value - float(null.mean())) / (sd * math.sqrt(1.0 + 1.0 / n))
    return float(student.cdf(t, n - 1))


def _fit_p(phi: np.ndarray | None, oracle_phi: np.ndarray | None, centre: np.ndarray | None = None) -> float | None:
    """The forgotten test's user-level p-value of ``phi`` (m,) against the oracles' ``(N, m)`` (each sample's
    oracle values moved to ``centre``'s, keeping their spread, when given); None when absent."""
    if phi is None or oracle_phi is None or not np.size(phi):
        return None
    from .forgotten import null_statistics, scale, user_test

    ref = scale(oracle_phi)
    if centre is not None:
        ref = ref - ref.mean(axis=0, keepdims=True) + scale(np.asarray(centre)).reshape(1, -1)
    return user_test(scale(phi).reshape(-1), ref, null_statistics(ref)).p_value


def _learnt_p(phi: np.ndarray | None, oracle_phi: np.ndarray | None, centre: float | None = None) -> float | None:
    """Lower-tail p of the mean ``asinh(phi)`` (m,) as a new draw of the oracles' ``(N, m)`` means (moved to
    ``centre`` when given, keeping their spread); None when absent."""
    if phi is None or oracle_phi is None or not np.size(phi):
        return None
    from .forgotten import scale

    means = scale(oracle_phi).mean(axis=1)
    if centre is not None:
        means = means - means.mean() + centre
    return _lower_p(float(scale(phi).mean()), means, 1e-6)


def original_centre(original: FaithfulTest, original_later_phi: np.ndarray | None,
                    original_retained_phi: np.ndarray | None = None) -> dict[str, Any]:
    """The original model's accuracy, agreement, retained confidences and later-blocks fit: the ``centre``
    of :func:`faithful_test`."""
    from .forgotten import scale

    out: dict[str, Any] = {"accuracy": float(original.candidate["accuracy"]),
                           "agreement": float(original.candidate["agreement"])}
    if original_later_phi is not None and np.size(original_later_phi):
        out["later"] = float(scale(original_later_phi).mean())
    if original_retained_phi is not None and np.size(original_retained_phi):
        out["retained"] = np.asarray(original_retained_phi, dtype=float).reshape(-1)
    return out


def faithful_test(candidate_pred: np.ndarray, oracle_preds: np.ndarray, labels: np.ndarray, *,
                  alpha: float = 0.01, accuracy_tolerance: float = 0.005,
                  agreement_tolerance: float = 0.005, retained_phi: np.ndarray | None = None,
                  oracle_retained_phi: np.ndarray | None = None, later_phi: np.ndarray | None = None,
                  oracle_later_phi: np.ndarray | None = None,
                  centre: dict[str, Any] | None = None) -> FaithfulTest:
    """Test predicted labels ``candidate_pred`` (n,) against the oracles' ``(N, n)`` on a test set and,
    when given, the confidence on retained samples (``retained_phi`` (m,), ``oracle_retained_phi`` (N, m))
    and on the later blocks' samples the shared start fits worst (``later_phi``, ``oracle_later_phi``).

    ``centre`` (``{"accuracy", "agreement", "retained", "later"}``, the original model's values: see
    :func:`original_centre`) moves the null of every statistic to the original while keeping the oracles'
    spread: "no worse than the original, by more than seeds vary". Used only when the original is itself
    outside the oracle cloud (``obliviate.verify.candidate.judge``)."""
    c = np.asarray(candidate_pred).reshape(-1)
    o = np.asarray(oracle_preds)
    y = np.asarray(labels).reshape(-1)
    if o.ndim != 2 or o.shape[1] != c.size or y.size != c.size or o.shape[0] < 4:
        raise ConfigError(f"Expected oracle predictions (N >= 4, {c.size}) and {c.size} labels, but got "
                          f"{o.shape} and {y.size}")
    n_models, n = o.shape
    acc_o = (o == y).mean(axis=1)
    acc_c = float((c == y).mean())
    pair = (o[:, None, :] == o[None, :, :]).mean(axis=2)
    agree_o = (pair.sum(axis=1) - 1.0) / (n_models - 1)
    agree_c_each = (o == c).mean(axis=1)
    agree_c = float(agree_c_each.mean())
    floor_sd = 1.0 / n  # one prediction: the resolution of both statistics
    null_acc, null_agr = acc_o, agree_o
    if centre is not None:
        null_acc = acc_o - acc_o.mean() + centre["accuracy"]
        null_agr = agree_o - agree_o.mean() + centre["agreement"]
    p_acc = _lower_p(acc_c + accuracy_tolerance, null_acc, floor_sd)
    p_agr = _lower_p(agree_c + agreement_tolerance, null_agr, floor_sd, (n_models - 1) / (n_models - 2))
    ps = [p_acc, p_agr]
    p_ret = _fit_p(retained_phi, oracle_retained_phi, None if centre is None else centre.get("retained"))
    p_later = _learnt_p(later_phi, oracle_later_phi, None if centre is None else centre.get("later"))
    ps += [q for q in (p_ret, p_later) if q is not None]
    k = len(ps)
    p = float(min(1.0, k * min(ps)))
    rank_acc = float((1 + np.sum(acc_o <= acc_c)) / (n_models + 1))
    rank_agr = float((1 + np.sum(agree_o <= agree_c)) / (n_models + 1))
    verdict = "no" if p <= alpha else "yes"
    what = []
    if k * p_acc <= alpha:
        what.append(f"accuracy {acc_c:.4f} against the oracles' {acc_o.mean():.4f} +- {acc_o.std(ddof=1):.4f}")
    if k * p_agr <= alpha:
        what.append(f"agreement with the oracles {agree_c:.4f} against their own {agree_o.mean():.4f} +- "
                    f"{agree_o.std(ddof=1):.4f}")
    if p_ret is not None and k * p_ret <= alpha:
        what.append(f"on retained training samples the candidate is atypical of the oracles (p = {p_ret:.2g}): it "
                    f"did not learn what they learnt")
    if p_later is not None and k * p_later <= alpha:
        what.append(f"on the later blocks' samples that only their training fits, the candidate is less confident "
                    f"than the oracles (p = {p_later:.2g}): it is missing the training of the blocks after the "
                    f"deleted one")
    worst = {"accuracy": float(acc_o.min()), "agreement": float(agree_o.min())}
    if verdict == "no":
        reasons = [f"fidelity rejected (p = {p:.2g} <= {alpha}): " + "; ".join(what)
                   + f" (tolerance {accuracy_tolerance}/{agreement_tolerance})"]
    else:
        below = " (below the worst oracle, within the cloud's spread)" if (acc_c < worst["accuracy"]
                                                                         or agree_c < worst["agreement"]) else ""
        reasons = [f"the candidate is a plausible oracle (fidelity p = {p:.2g} > {alpha}): accuracy {acc_c:.4f} "
                   f"(oracles {acc_o.min():.4f}..{acc_o.max():.4f}), agreement {agree_c:.4f} (oracles "
                   f"{agree_o.min():.4f}..{agree_o.max():.4f}){below}"]
    return FaithfulTest(
        verdict, p, p_acc, p_agr, p_ret, p_later, {"accuracy": acc_c, "agreement": agree_c},
        [{"accuracy": float(a), "agreement": float(g)} for a, g in zip(acc_o, agree_o)], rank_acc, rank_agr,
        {"accuracy": accuracy_tolerance, "agreement": agreement_tolerance}, alpha, worst, reasons)
