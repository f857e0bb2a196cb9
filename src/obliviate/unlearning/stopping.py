"""Stopping rules: when to stop retraining affected blocks and try a stitch. One small interface.

A rule sees the residual series of the blocks retrained after the last deleted block ``m`` and
answers whether to try stitching now. :class:`Bounds` wraps every rule with a minimum and maximum
number of affected blocks. The guard (``guard.py``) then decides whether the stitch is shipped.

Registered rules (``stopping_rule_names()``):

- ``immediate`` (default): try the stitch as soon as the minimum number of affected blocks is met.
  Chosen from measurements (docs/unlearning.md): with a decaying learning rate, stitching right
  after the deleted block agrees with the exact retrain best, and retraining further lets the new
  trajectory drift from the stored updates that get added back.
- ``fitted-decay``: the paper-style rule: fit ``a * j^(-h) + b`` to the relative parameter residual
  over the affected blocks and stop once the fitted slope ``|a h j^(-h-1)|`` is below ``eps`` times the
  first residual (made scale-free by that normalisation).
- ``scale-free``: stop once the predicted residual of the next block, from the same fit, is below
  ``tau`` times the first retrained block's residual.

>>> rule = make_stopping_rule("immediate")
>>> rule.decide([], affected=0).stop
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import ConfigError, UnknownNameError
from .residual import BlockResidual


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str
    fit: dict[str, float] | None = None


class StoppingRule(Protocol):
    @property
    def name(self) -> str: ...  # read-only, so frozen dataclasses match

    def decide(self, series: Sequence[BlockResidual], *, affected: int) -> Decision:
        """``series``: residuals of every retrained block so far; ``affected``: blocks retrained after m."""
        ...


def fit_power_decay(values: Sequence[float]) -> dict[str, float] | None:
    """Least-squares fit of ``a * j^(-h) + b`` (j = 1, 2, ...) over a grid of ``h``; None if too short."""
    y = np.asarray(values, dtype=float)
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return None
    j = np.arange(1, len(y) + 1, dtype=float)
    best: tuple[float, float, float, float] | None = None
    for h in np.linspace(0.05, 4.0, 80):
        A = np.stack([j ** -h, np.ones_like(j)], 1)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        err = float(((A @ coef - y) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, float(coef[0]), float(h), float(coef[1]))
    assert best is not None  # the grid is never empty
    _, a, h, b = best
    return {"a": a, "h": h, "b": b, "sse": best[0]}


@dataclass(frozen=True)
class Immediate:
    name: str = "immediate"

    def decide(self, series: Sequence[BlockResidual], *, affected: int) -> Decision:
        return Decision(True, "immediate rule: try the stitch now (the guard validates it)")


def _fit_affected(series: Sequence[BlockResidual], min_points: int,
                  rule: str) -> tuple[list[float], dict[str, float] | Decision]:
    """The affected blocks' relative residuals and their power-decay fit, or a "keep going" Decision."""
    vals = [r.rel_l1 for r in series if r.area == "affected"]
    if len(vals) < min_points:
        return vals, Decision(False, f"{rule}: {len(vals)} of {min_points} points needed for a fit")
    fit = fit_power_decay(vals)
    if fit is None:
        return vals, Decision(False, f"{rule}: residuals not finite")
    return vals, fit


@dataclass(frozen=True)
class FittedDecay:
    eps: float = 0.05
    min_points: int = 4
    name: str = "fitted-decay"

    def decide(self, series: Sequence[BlockResidual], *, affected: int) -> Decision:
        vals, fit = _fit_affected(series, self.min_points, self.name)
        if isinstance(fit, Decision):
            return fit
        j = len(vals)
        slope = abs(fit["a"] * fit["h"] * j ** (-fit["h"] - 1))
        threshold = self.eps * max(vals[0], 1e-12)
        fit = {**fit, "slope": slope, "threshold": threshold}
        return Decision(slope < threshold, f"fitted-decay: slope {slope:.3g} vs threshold {threshold:.3g}", fit)


@dataclass(frozen=True)
class ScaleFree:
    tau: float = 0.25
    min_points: int = 3
    name: str = "scale-free"

    def decide(self, series: Sequence[BlockResidual], *, affected: int) -> Decision:
        vals, fit = _fit_affected(series, self.min_points, self.name)
        if isinstance(fit, Decision):
            return fit
        nxt = fit["a"] * (len(vals) + 1) ** (-fit["h"]) + fit["b"]
        ratio = nxt / max(vals[0], 1e-12)
        return Decision(ratio < self.tau, f"scale-free: predicted next residual {ratio:.3g} of the first "
                                          f"(threshold {self.tau})", {**fit, "predicted_ratio": ratio})


_RULES: dict[str, Callable[..., StoppingRule]] = {"immediate": Immediate, "fitted-decay": FittedDecay,
                                                  "scale-free": ScaleFree}


def stopping_rule_names() -> list[str]:
    return sorted(_RULES)


def register_stopping_rule(name: str, factory: Callable[..., StoppingRule]) -> None:
    """Make a rule of your own available by name to :func:`make_stopping_rule` (in this process).

    >>> @dataclass(frozen=True)
    ... class AfterThree:
    ...     name: str = "after-three"
    ...     def decide(self, series, *, affected):
    ...         return Decision(affected >= 3, f"after-three: {affected} affected blocks")
    >>> register_stopping_rule("after-three", AfterThree)
    >>> make_stopping_rule("after-three").decide([], affected=3).stop
    True
    """
    _RULES[name] = factory


def make_stopping_rule(name: str, **options: float) -> StoppingRule:
    if name not in _RULES:
        raise UnknownNameError(f"unknown stopping rule {name!r}; choose one of: {', '.join(stopping_rule_names())}")
    try:
        return _RULES[name](**options)
    except TypeError as exc:
        raise ConfigError(f"stopping rule {name!r}: {exc}") from None


@dataclass(frozen=True)
class Bounds:
    """Minimum and maximum number of affected blocks (retrained after the last deleted block)."""

    min_affected: int = 0
    max_affected: int | None = None

    def __post_init__(self) -> None:
        if self.min_affected < 0:
            raise ConfigError(f"Expected min_affected >= 0, but got {self.min_affected}")
        if self.max_affected is not None and self.max_affected < self.min_affected:
            raise ConfigError(f"Expected max_affected >= min_affected ({self.min_affected}), "
                              f"but got {self.max_affected}")

    def decide(self, rule: StoppingRule, series: Sequence[BlockResidual], affected: int) -> Decision:
        if affected < self.min_affected:
            return Decision(False, f"{affected} of at least {self.min_affected} affected blocks retrained")
        if self.max_affected is not None and affected >= self.max_affected:
            return Decision(True, f"reached max_affected = {self.max_affected}")
        return rule.decide(series, affected=affected)
