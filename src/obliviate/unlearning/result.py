"""The result of a forget request."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..training.manifest import PaperNames


@dataclass
class ForgetResult(PaperNames):  # readable names beside the paper's d, m, t
    """What a forget request did. ``speedup_vs_recorded`` divides the run's recorded full-training time
    by this request's wall time; benchmarks and the demo time a real retrain beside it instead."""

    request_id: int | None
    method: str
    ids_requested: list[int]
    ids_deleted: list[int]
    ids_already_deleted: list[int]
    d: int | None  # first block holding a sample of U (1-based)
    m: int | None  # last block holding a sample of U
    t: int | None  # last retrained block; blocks after it are stitched from stored updates
    blocks_total: int
    blocks_retrained: int
    stitched: bool
    outcome: str  # "stitched", "exact", "retrained", "no-op"
    stopping_rule: str
    decisions: list[dict[str, Any]] = field(default_factory=list)
    residuals: list[dict[str, Any]] = field(default_factory=list)
    guard: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0
    retrain_time_s: float = 0.0  # time spent training blocks inside this request
    report_time_s: float = 0.0  # test-set and canary evaluation for the report, excluded from wall_time_s
    recorded_train_s: float = 0.0
    speedup_vs_recorded: float = float("nan")
    accuracy_before: dict[str, float] = field(default_factory=dict)
    accuracy_after: dict[str, float] = field(default_factory=dict)
    chain_sha256: list[str] = field(default_factory=list)
    purged_files: list[str] = field(default_factory=list)
    canary: dict[str, list[int]] | None = None  # canary (successes, trials) before and after, if U holds it
    plan: dict[str, Any] = field(default_factory=dict)  # the planner's predictions, attempts and actual cost
    damping: float | None = None  # a in theta_B + a (theta'_t - theta_t), when stitched
    memorised: dict[str, Any] | None = None  # U's loss gap between the retrained and stored trajectories
    # keyed hashes of the subjects asked for (obliviate.subjects)
    subject_hashes: list[str] = field(default_factory=list)
    client_ref: str | None = None  # the caller's own reference (the deletion service's application id)
    # the unlearned model's state dict (also when the request was not committed); not serialised
    model_state: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, model_state=None))  # do not deep-copy the tensors
        out.pop("model_state")
        out["summary"] = self.summary
        return out

    @property
    def noop(self) -> bool:
        return self.outcome == "no-op"

    @property
    def summary(self) -> str:
        """The outcome in words: ``stitched after r of B-d+1 blocks``, ``exact``, ..."""
        if self.outcome == "stitched" and self.d is not None:
            return f"stitched after {self.blocks_retrained} of {self.blocks_total - self.d + 1} blocks"
        if self.outcome == "exact" and self.d is not None:
            return f"exact ({self.blocks_retrained} of {self.blocks_total - self.d + 1} blocks replayed)"
        return self.outcome

