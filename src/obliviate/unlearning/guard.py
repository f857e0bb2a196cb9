"""The stitch guard: validate a stitched model before it is committed.

Stitching ``theta'_t + (theta_B - theta_t)`` can break a model when the retrained trajectory has
diverged from the stored one (measured: momentum SGD at a high rate loses up to 35 points). The guard
compares the stitched model on held-out validation data with the original model and with the last
retrained model; a stitch that fails makes the engine keep retraining toward the exact result.

>>> g = StitchGuard()
>>> v = g.check(stitched=(0.90, 0.40), original=(0.95, 0.20), retrained=(0.50, 1.0), n_validation=1000)
>>> v.passed, v.reasons[0]
(False, 'validation accuracy 0.9000 is below the original 0.9500 minus tolerance 0.0100')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass
class GuardVerdict:
    block: int
    passed: bool
    reasons: list[str]
    stitched_accuracy: float
    stitched_loss: float
    original_accuracy: float
    original_loss: float
    retrained_accuracy: float
    retrained_loss: float
    accuracy_tolerance: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StitchGuard:
    """Pass when the stitched model's validation accuracy is within ``accuracy_tolerance`` of the
    original's and of the last retrained model's, and its loss at most ``1 + loss_tolerance`` times
    the original's. The accuracy tolerance is never finer than ``min_samples`` validation samples,
    so a tiny validation set does not turn noise into failures."""

    accuracy_tolerance: float = 0.01
    loss_tolerance: float = 0.10
    min_samples: int = 2
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.accuracy_tolerance <= 1:
            raise ConfigError(f"Expected accuracy_tolerance in [0, 1], but got {self.accuracy_tolerance}")
        if self.loss_tolerance < 0:
            raise ConfigError(f"Expected loss_tolerance >= 0, but got {self.loss_tolerance}")

    def check(self, *, stitched: tuple[float, float], original: tuple[float, float],
              retrained: tuple[float, float], n_validation: int, block: int = 0) -> GuardVerdict:
        tol = max(self.accuracy_tolerance, self.min_samples / max(n_validation, 1))
        reasons = []
        if self.enabled and n_validation == 0:
            reasons.append("the run has no validation data to check a stitch with "
                           "(set data.validation_fraction > 0), so the engine retrains to the exact result")
        elif self.enabled:
            if stitched[0] < original[0] - tol:
                reasons.append(f"validation accuracy {stitched[0]:.4f} is below the original {original[0]:.4f} "
                               f"minus tolerance {tol:.4f}")
            if stitched[0] < retrained[0] - tol:
                reasons.append(f"validation accuracy {stitched[0]:.4f} is below the last retrained model's "
                               f"{retrained[0]:.4f} minus tolerance {tol:.4f}")
            if stitched[1] > original[1] * (1 + self.loss_tolerance) + 1e-6:
                reasons.append(f"validation loss {stitched[1]:.4f} exceeds the original {original[1]:.4f} "
                               f"by more than {self.loss_tolerance:.0%}")
        return GuardVerdict(block, not reasons, reasons, stitched[0], stitched[1], original[0], original[1],
                            retrained[0], retrained[1], tol)
