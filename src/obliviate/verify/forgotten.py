"""The *forgotten* verdict: is ``U``'s influence still detectable, in either direction, and could it be?

Per example ``u`` of ``U``: the candidate's logit-scaled confidence ``phi(u) = log(p_y / (1 - p_y))``
(Carlini et al. 2022, LiRA) against the ``N`` oracles' ``phi(u)``, as a predictive t-score
``t = (phi - mean) / (sd sqrt(1 + 1/N))`` (oracle mean and standard deviation on that example).
``t > 0``: more confident than a model that never saw ``u`` (member-like); ``t < 0``: less confident
(over-forgotten, which reveals the deletion just as surely: a plain 1-block stitch of a memorised
user sits far above the oracles' loss).

All statistics work on ``asinh(phi)``, linear near 0 and logarithmic in the tails: a memorised
(mislabelled) sample's confidence varies multiplicatively from oracle to oracle (loss 11 +- 2.5 on
digits), which the log-like scale turns into an additive, roughly Gaussian spread; measured on
digits it doubles the test's power on such users and leaves well-classified samples (``|phi| < 5``)
nearly untouched.

User level, two statistics: ``S1 = mean_u phi(u)``, the user's mean confidence (a shift of the whole
user, either sign: a scalar per model, so the oracles give ``N`` independent draws of it), and
``S2 = log mean_u t(u)^2`` (examples atypical in either direction, even when their shifts cancel).
The null comes from the oracles themselves: ``S1`` of every oracle, and ``S2`` of each oracle scored
against the other ``N - 1`` exactly as the candidate is against all ``N``. The candidate's value is
then a new draw from that null under H0 ("the candidate is one more model that never saw ``U``"): a
predictive t-test with ``N - 1`` degrees of freedom (``S1`` two-sided, its spread at least ``MIN_SD``, the
resolution of one example; ``S2`` upper tail), Bonferroni over the two. Because the null is built from
whole models, the strong correlation between examples (one model is more or less confident on all of
them) is in it.

Power: the same test on the original model (trained with ``U``). When the original itself is not
rejected, nothing the model learnt from ``U`` is measurable, and a candidate that is not rejected
either is reported "nothing measurable to forget", never "yes".

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> oracles = rng.normal(-6.0, 1.0, size=(8, 5))
>>> kept = forgotten_test(oracles[0] + 9.0, oracles[1:], original_phi=oracles[0] + 9.0)
>>> kept.verdict, kept.direction
('no', 'member')
>>> forgotten_test(rng.normal(-6.0, 1.0, size=5), oracles, original_phi=oracles[0] + 9.0).verdict
'yes'
>>> forgotten_test(rng.normal(-6.0, 1.0, size=5), oracles, original_phi=rng.normal(-6.0, 1.0, size=5)).verdict
'nothing measurable to forget'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["ForgottenTest", "NOTHING", "UserTest", "forgotten_test", "per_example_t", "user_test"]

NOTHING = "nothing measurable to forget"
#: asinh(phi) units: oracles that agree to this precision on an example, or on a user's mean ``S1``, are
#: treated as this spread. Under a recipe whose rate decays to 0 the oracles replay the last blocks at a
#: rate near 0 and collapse onto one point; without a floor on ``S1`` the test then rejects shifts of a
#: few thousandths (a loss of 15 moved by 0.04), far below anything the original itself shows.
MIN_SD = 0.02


def scale(phi: np.ndarray) -> np.ndarray:
    """The scale every statistic of the forgotten test works on: ``asinh(phi)``."""
    return np.arcsinh(np.asarray(phi, dtype=np.float64))


def per_example_t(phi: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictive t-scores of ``phi`` (n,) against reference rows ``ref`` (m, n): mean, sd, t."""
    m = ref.shape[0]
    mu = ref.mean(axis=0)
    sd = np.maximum(ref.std(axis=0, ddof=1), MIN_SD)
    return mu, sd, (phi - mu) / (sd * math.sqrt(1.0 + 1.0 / m))


def _s2(t: np.ndarray) -> float:
    return math.log(max(float(np.mean(t ** 2)), 1e-12))


def _predictive(value: float, null: np.ndarray, tail: str, floor_sd: float = 1e-6) -> tuple[float, float]:
    """t and p of ``value`` as a new draw from the Gaussian fitted to ``null`` (``N - 1`` dof), its spread
    at least ``floor_sd``."""
    from scipy.stats import t as student

    n = null.size
    sd = max(float(null.std(ddof=1)), floor_sd)
    t = (value - float(null.mean())) / (sd * math.sqrt(1.0 + 1.0 / n))
    if tail == "two":
        return t, float(min(1.0, 2.0 * student.sf(abs(t), n - 1)))
    return t, float(student.sf(t, n - 1))


@dataclass
class UserTest:
    """One model's user-level test: ``S1``, ``S2``, their predictive t and p, and the combined p."""

    s1: float
    s2: float
    t1: float
    t2: float
    p1: float
    p2: float
    p_value: float  # Bonferroni over the two statistics

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def user_test(phi: np.ndarray, ref: np.ndarray, null: np.ndarray) -> UserTest:
    """The user-level test of ``phi`` against reference rows ``ref``, with null statistics ``null``
    (rows ``(S1, S2)``, one per oracle scored against the others)."""
    _, _, t = per_example_t(phi, ref)
    s1, s2 = float(np.mean(phi)), _s2(t)
    t1, p1 = _predictive(s1, null[:, 0], "two", MIN_SD)  # the user's mean is resolved no finer than an example
    t2, p2 = _predictive(s2, null[:, 1], "upper")
    return UserTest(s1, s2, t1, t2, p1, p2, float(min(1.0, 2.0 * min(p1, p2))))


def null_statistics(ref: np.ndarray) -> np.ndarray:
    """``(S1, S2)`` of each oracle (``S2`` scored against the other ``N - 1``), shape ``(N, 2)``."""
    return np.stack([[float(np.mean(ref[j])), _s2(per_example_t(ref[j], np.delete(ref, j, axis=0))[2])]
                     for j in range(ref.shape[0])])


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (valid under any dependence)."""
    n = p.size
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (n - np.arange(n))))
    out = np.empty(n)
    out[order] = adj
    return out


@dataclass
class ForgottenTest:
    """The membership part of the forgotten verdict (see the module docstring)."""

    verdict: str  # "yes", "no" or NOTHING
    direction: str  # "member", "over-forgotten" or "typical": where the candidate sits
    candidate: UserTest
    original: UserTest | None
    has_power: bool | None
    alpha: float
    t: np.ndarray
    p_example: np.ndarray
    p_example_holm: np.ndarray
    oracle_mean: np.ndarray
    oracle_sd: np.ndarray
    null: np.ndarray
    reasons: list[str] = field(default_factory=list)

    def directions(self) -> list[str]:
        """Per example: member / over-forgotten when its Holm-adjusted two-sided p is at most alpha."""
        sig = self.p_example_holm <= self.alpha
        return ["member" if s and t > 0 else "over-forgotten" if s else "typical" for s, t in zip(sig, self.t)]


def forgotten_test(phi: np.ndarray, oracles: np.ndarray, *, original_phi: np.ndarray | None,
                   alpha: float = 0.01) -> ForgottenTest:
    """The candidate's ``phi`` (n,) on ``U`` against the oracles' ``(N, n)`` and, for the power, the
    original's. ``original_phi=None``: power unknown (a rejection still says "no")."""
    from scipy.stats import t as student

    phi = scale(phi).reshape(-1)
    ref = scale(oracles)
    if ref.ndim != 2 or ref.shape[1] != phi.size or ref.shape[0] < 4:
        raise ConfigError(f"Expected oracle outputs (N >= 4, {phi.size}), but got shape {ref.shape}")
    null = null_statistics(ref)
    cand = user_test(phi, ref, null)
    orig = None if original_phi is None else user_test(scale(original_phi).reshape(-1), ref, null)
    mu, sd, t = per_example_t(phi, ref)
    p_ex = 2.0 * student.sf(np.abs(t), ref.shape[0] - 1)
    holm = _holm(p_ex)
    rejected = cand.p_value <= alpha
    shift = cand.s1 - float(null[:, 0].mean())
    direction = ("member" if shift > 0 else "over-forgotten") if rejected else "typical"
    has_power = None if orig is None else orig.p_value <= alpha
    reasons = []
    if rejected:
        verdict = "no"
        reasons.append(f"the candidate is {'more' if shift > 0 else 'less'} confident on U than models that never "
                       f"saw it (mean asinh(phi) {shift:+.2f} from the oracles', p = {cand.p_value:.2g} <= {alpha}): "
                       + ("U's data is still detectable" if shift > 0 else
                          "over-forgotten, which reveals the deletion as surely as remembering would"))
    elif has_power is False and orig is not None:  # has_power is False only when orig exists
        verdict = NOTHING
        reasons.append(f"the original model itself is indistinguishable from the oracles on U (p = "
                       f"{orig.p_value:.2g} > {alpha}): the test has no power here, so passing it shows nothing")
    else:
        verdict = "yes"
        power = "" if orig is None else f"; the original is rejected (p = {orig.p_value:.2g}), so the test has power"
        reasons.append(f"the candidate is typical of the oracles on U (p = {cand.p_value:.2g} > {alpha}){power}")
    return ForgottenTest(verdict, direction, cand, orig, has_power, alpha, t, p_ex, holm, mu, sd, null, reasons)
