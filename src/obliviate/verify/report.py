"""The verification report: two verdicts (forgotten, faithful), the overall one, and the data the HTML
report draws (ROC of the membership test, per-example p-values, the oracle cloud with the candidate).

``to_dict()`` keys (stable; the HTML report and ``obliviate verify --json`` use them):

- ``roc``: ``{"fpr", "tpr", "auc"}`` of the membership score (the predictive t of ``phi``) on ``U``
  (positives) against held-out test samples (negatives), for a log-scale plot;
- ``per_example``: ``[{"id", "p_value", "loss", "oracle_loss_mean", "direction", ...}]``;
- ``oracle_cloud``: ``{"oracles": [{"accuracy", "agreement"}], "candidate": {"accuracy", "agreement"}}``;
- ``forgotten``: ``{"verdict": "yes" | "no" | "nothing measurable to forget", ...}``;
- ``faithful``: ``{"verdict": "yes" | "no", "p_value", ...}``;
- ``verdict``: ``"pass"`` (forgotten yes and fidelity not rejected), ``"fail"`` or ``"inconclusive"``
  (nothing measurable to forget, fidelity not rejected), with ``failed``: which verdicts failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EXIT_CODES", "VerificationReport", "clean"]

#: CLI exit status per overall verdict (2 is bad input).
EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}


def clean(v: Any) -> Any:
    """JSON-ready: numpy to Python, NaN and infinities to None."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return clean(v.tolist())
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


@dataclass
class VerificationReport:
    """The verdicts on one candidate for a set ``U`` of ids of a run, with every number behind them."""

    run: str
    ids: list[int]
    model: str  # what was verified: "current", "given" or a caller's label
    forgotten: dict[str, Any]
    faithful: dict[str, Any]
    roc: dict[str, Any]
    per_example: list[dict[str, Any]]
    oracle_cloud: dict[str, Any]
    oracles: dict[str, Any]
    settings: dict[str, Any]
    canary: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def failed(self) -> list[str]:
        """The verdicts that failed: ``"forgotten"`` and/or ``"faithful"``."""
        out = []
        if self.forgotten["verdict"] == "no":
            out.append("forgotten")
        if self.faithful["verdict"] == "no":
            out.append("faithful")
        return out

    @property
    def verdict(self) -> str:
        if self.failed:
            return "fail"
        return "pass" if self.forgotten["verdict"] == "yes" else "inconclusive"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def reasons(self) -> list[str]:
        return [f"forgotten: {r}" for r in self.forgotten.get("reasons", [])] + \
               [f"faithful: {r}" for r in self.faithful.get("reasons", [])]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = clean({
            "run": self.run, "ids": list(self.ids), "model": self.model, "verdict": self.verdict,
            "passed": self.passed, "failed": self.failed, "reasons": self.reasons,
            "forgotten": self.forgotten, "faithful": self.faithful, "roc": self.roc,
            "per_example": self.per_example, "oracle_cloud": self.oracle_cloud,
            "canary": self.canary, "oracles": self.oracles, "request": self.request,
            "settings": self.settings, "wall_time_s": self.wall_time_s})
        return out
