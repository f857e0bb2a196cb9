"""The planner: what a request will cost under each method, and where a stitch is worth trying.

Costs come from the run's own records: every block's recorded training time (scaled by the share of
its samples that remain), the time of one validation pass (recorded at training, else estimated from
the block times), and the bytes every retrained block writes. While a request runs, the engine feeds
measured times back (``Plan.calibrate``), so the plan follows the machine it runs on.

The rule for ``deepobliviate`` (``Plan.may_attempt``): every retrained block is shared with the exact
mode (both replay ``d..t`` identically), so a stitch attempt only adds its guard (one validation pass,
and a fresh reference on a subset) and saves the blocks after ``t``. An attempt is made only when

- the blocks it would save cost more than the attempt itself, and
- the time already spent on failed attempts plus this one stays within ``max_overshoot`` of the
  exact mode's predicted cost, except for a first attempt that saves at least ``first_attempt_odds``
  times what it costs (worth it unless more than one stitch in that many is rejected; measured
  rejection rates are far lower).

So a ``deepobliviate`` request is slower than ``exact`` by at most ``max_overshoot`` (plus the error
of the estimate), or by one rejected first attempt costing at most a ``1 / first_attempt_odds``
share of what it would have saved, and once no attempt can pay off it replays plainly to the end.
Attempts after a rejected stitch are spaced geometrically (after 1, 2, 4, ... retrained blocks past
the last deleted block), because a rejection is evidence that the nearby stitch points fail too.

>>> plan = Plan(method="deepobliviate", d=5, m=5, num_blocks=10, block_s=[0.1] * 10, eval_s=0.02,
...             write_s=0.001, commit_s=0.02)
>>> round(plan.predicted["exact"], 3), plan.may_attempt(5, spent=0.0)[0]
(0.626, True)
>>> plan.may_attempt(10, spent=0.0)  # a stitch after the last block saves nothing
(False, 'no block left to stitch after block 10')
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..training.run import Run


@dataclass
class Plan:
    method: str
    d: int
    m: int
    num_blocks: int
    block_s: list[float]  # predicted training time of each block (1-based: block_s[k - 1])
    eval_s: float  # one pass over the validation set
    write_s: float  # the payloads of one retrained block
    commit_s: float  # the durable commit and purge
    max_overshoot: float = 0.05
    first_attempt_odds: float = 4.0
    guard_passes: float = 1.0  # a guard's cost in validation passes (screened candidate, fresh reference)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    speed: float = 1.0  # measured / recorded block time, updated while the request runs
    notes: list[str] = field(default_factory=list)

    @property
    def start(self) -> int:
        return 1 if self.method == "retrain" else self.d

    def train_cost(self, first: int, last: int) -> float:
        return self.speed * sum(self.block_s[k - 1] for k in range(first, last + 1)) + \
            self.write_s * max(0, last - first + 1)

    def guard_cost(self) -> float:
        return self.guard_passes * self.eval_s * self.speed

    @property
    def predicted(self) -> dict[str, float]:
        """Predicted wall time of each method for this request, in seconds."""
        B = self.num_blocks
        exact = self.train_cost(self.d, B) + self.commit_s
        stitch = self.train_cost(self.d, self.m) + self.guard_cost() + self.commit_s if self.m < B else exact
        return {"exact": exact, "retrain": self.train_cost(1, B) + self.commit_s,
                "deepobliviate": min(stitch, exact)}

    def may_attempt(self, t: int, *, spent: float) -> tuple[bool, str]:
        """Whether to try a stitch after retraining block ``t`` (``spent``: seconds of earlier attempts)."""
        if t >= self.num_blocks:
            return False, f"no block left to stitch after block {t}"
        saved = self.train_cost(t + 1, self.num_blocks)
        cost = self.guard_cost()
        if saved <= cost:
            return False, (f"the {self.num_blocks - t} block(s) left cost {saved:.3f} s, no more than a "
                           f"stitch attempt ({cost:.3f} s): plain replay is cheaper")
        budget = self.max_overshoot * self.predicted["exact"]
        if not self.attempts and saved >= self.first_attempt_odds * cost:
            return True, f"first attempt: saves about {saved:.3f} s for {cost:.3f} s"
        if spent + cost > budget:
            return False, (f"attempts so far {spent:.3f} s plus {cost:.3f} s would exceed {self.max_overshoot:.0%} "
                           f"of the exact mode's {self.predicted['exact']:.3f} s")
        return True, f"saves about {saved:.3f} s for {cost:.3f} s"

    def next_attempt(self, t: int) -> int:
        """The next stitch point after a rejected one at ``t`` (geometric spacing past ``m``)."""
        gap = t - self.m + 1
        return self.m + 2 * gap - 1

    def calibrate(self, block: int, measured_s: float) -> None:
        """Follow the machine: scale predictions by measured / recorded time (smoothed)."""
        recorded = self.block_s[block - 1]
        if recorded > 0 and measured_s > 0:
            ratio = measured_s / recorded
            self.speed = ratio if not self.attempts and block == self.start else 0.5 * (self.speed + ratio)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("block_s")
        out["predicted_s"] = self.predicted
        return out


def _state_bytes(run: Run) -> int:
    blocks = run.record.blocks
    if not blocks:
        return 0
    b = blocks[-1]
    return sum(int(ref["bytes"]) for ref in (b.update, b.optimizer) if ref is not None)


def make_plan(run: Run, ids: Iterable[int], method: str = "deepobliviate", *,
              max_overshoot: float = 0.05, guard: Any = None) -> Plan:
    """The plan of deleting ``ids`` (current training ids of ``run``) with ``method``."""
    u = np.fromiter({int(i) for i in ids}, dtype=np.int64)
    members = run.all_block_ids()
    hits = np.repeat(np.arange(1, len(members) + 1), [len(b) for b in members])[
        np.isin(np.concatenate(members), u)] if members else np.zeros(0, dtype=np.int64)
    if not len(hits):
        raise ValueError("make_plan needs at least one current training id")
    d, m = int(hits.min()), int(hits.max())
    records = run.record.blocks
    gone = Counter(hits.tolist())  # block -> samples of U in it
    per_block = []
    for k, rec in enumerate(records, start=1):
        size = max(int(rec.size or 1), 1)
        per_block.append(float(rec.wall_time_s or 0.0) * max(size - gone[k], 0) / size)
    timing = run.record.timing
    eval_s = float(timing.get("validation_eval_s", 0.0))
    if eval_s <= 0:  # not recorded: a forward pass costs about a third of a training step per sample
        samples = sum(max(int(r.size or 1), 1) for r in records) * run.config.training.epochs_per_block
        eval_s = sum(per_block) / max(samples, 1) / 3 * len(run.validation)
    write_s = _state_bytes(run) / 400e6 + 0.001
    commit_s = 0.03 + 2 * write_s
    n_val = max(len(run.validation), 1)
    passes = 1.0
    if guard is not None:  # the screened candidate plus the fresh reference (guard.py)
        passes = min(1.0, (math.ceil(guard.screen_fraction * n_val) + guard.screen_random) / n_val) + \
            min(guard.reference_samples, n_val) / n_val
    return Plan(method=method, d=d, m=m, num_blocks=run.num_blocks, block_s=per_block, eval_s=eval_s,
                write_s=write_s, commit_s=commit_s, max_overshoot=max_overshoot, guard_passes=passes)


def predict_cost(run: Run, ids: Iterable[int], method: str = "deepobliviate") -> float:
    """Predicted seconds to delete ``ids`` from ``run`` with ``method`` (for schedulers).

    >>> import tempfile
    >>> from obliviate.training import RunConfig, train_run
    >>> run = train_run(RunConfig.from_dict({"training": {"blocks": 4, "epochs_per_block": 1}}),
    ...                 tempfile.mkdtemp() + "/r")
    >>> early, late = int(run.block_ids(1)[0]), int(run.block_ids(4)[0])
    >>> predict_cost(run, [early], "exact") > predict_cost(run, [late], "exact")
    True
    """
    plan = make_plan(run, ids, method)
    return plan.predicted.get(method, math.nan)
