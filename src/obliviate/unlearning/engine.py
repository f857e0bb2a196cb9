"""The unlearning engine: plan, replay, residual memory, stopping, guarded stitch, atomic commit, purge.

Modes (``methods()``):

- ``deepobliviate``: retrain from the first block ``d`` holding a sample of ``U``; from the last such
  block ``m`` on, where the planner says an attempt can pay off (``planner.py``) and the stopping
  rule agrees, try the stitch ``theta_B + a (theta'_t - theta_t)`` (``a = 1``: the paper's
  ``theta'_t + (theta_B - theta_t)``; for users the stored model measurably memorised, ``a`` is matched
  on their loss, see ``damping.py``); the guard's paired tests validate it; a rejected stitch keeps
  retraining, and once no attempt can pay off the engine replays plainly to the exact result.
- ``exact``: never stop early: retrain ``d..B``. Equals retraining from scratch without ``U`` (same
  seeds, same partition) bit for bit on CPU.
- ``retrain``: retrain ``1..B`` from the stored initial model: the naive baseline.

The new chain is committed atomically: new payloads first, then the manifest (one rename), then every
payload the new manifest no longer names is deleted, among them every stored state of blocks ``d..t``
from before the deletion. A crash before the rename leaves the old chain; after it, the new one (the
next writer purges the leftovers). Requests apply in order, each on the chain the previous one left.

>>> import tempfile
>>> from obliviate.training import RunConfig, train_run
>>> run = train_run(RunConfig.from_dict({"training": {"blocks": 4, "epochs_per_block": 1}}), tempfile.mkdtemp() + "/r")
>>> victim = int(run.block_ids(2)[0])
>>> result = forget(run, [victim])
>>> result.d, result.outcome in ("stitched", "exact"), victim in run.block_ids(2)
(2, True, False)
"""


from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .._faults import crash_point
from .._logging import progress
from ..errors import ConfigError, RequestError, UnknownNameError
from ..training.block import predict_logits
from ..training.chain import State, add, advance, load_state, optimizer_payload, optimizer_state_after, \
    snapshot_at_or_before, state_after, stitch
from ..training.manifest import need
from ..training.predictions import cached_validation_predictions, margins, validation_predictions
from ..training.run import Run
from .commit import PendingChain, commit_request
from .damping import median_loss, solve_damping
from .guard import StitchGuard
from .planner import Plan, make_plan
from .request_checks import check_before_forget
from .residual import BlockResidual, function_residual, parameter_residual
from .result import ForgetResult
from .stopping import Bounds, StoppingRule, make_stopping_rule

log = logging.getLogger(__name__)
_T = TypeVar("_T")

METHODS = ("deepobliviate", "exact", "retrain")
MIN_DAMPING = 0.5  # below this, a damped stitch is mostly the stored model: not a deletion
MIN_RATIO_GAP = 0.01  # nats: smaller gaps are never memorisation (ForgetOptions.memorised_ratio)
RATIO_ROWS = 32  # validation rows the memorisation ratio compares the two states on


def methods() -> list[str]:
    return list(METHODS)


@dataclass(frozen=True)
class ForgetOptions:
    """Settings of the engine (defaults chosen from the benchmarks, docs/unlearning.md).

    ``damping``: ``a`` in the stitch; 1.0 is the paper's plain stitch; ``"auto"`` (default) damps
    the stitch of a memorised user so that its loss on U matches the retrained state's
    (``damping.py``), when at most ``memorised_blocks`` blocks remain after ``t`` (only then is the
    retrained state a good proxy of where the exact retrain ends on U), else stitches plainly.
    ``memorised_gap``: nats of loss gap on ``U`` above which a user counts as memorised;
    ``memorised_ratio``: a smaller gap (above ``MIN_RATIO_GAP``) counts too when it is this many times
    the two states' mean per-sample loss difference on validation rows (late in a decaying schedule the
    whole trajectory moves little: canary users' gaps of 0.05-0.07 nats were 20-80 times that shift,
    unremarkable samples' below 2; 0 turns this off); ``memorised_blocks``: blocks retrained past the
    last deleted one before the first stitch attempt for a memorised user (their memory fades in later
    blocks on the stored trajectory, which a stitch right after ``m`` would over-correct).
    ``max_overshoot``: the most a ``deepobliviate`` request may spend on stitch attempts, as a share of
    the exact mode's predicted cost. ``function_residual``:
    measure function-space residuals on a probe set after every retrained block (costs a forward
    pass per block; the default rule does not need it). ``evaluate_test``: also evaluate the test set
    for the report (not part of the request; off by default).
    """

    rule: StoppingRule = field(default_factory=lambda: make_stopping_rule("immediate"))
    bounds: Bounds = field(default_factory=Bounds)
    guard: StitchGuard = field(default_factory=StitchGuard)
    damping: str | float = "auto"
    memorised_gap: float = 0.1
    memorised_ratio: float = 8.0
    memorised_blocks: int = 3
    max_overshoot: float = 0.05
    probe_size: int = 256
    function_residual: bool = False
    evaluate_test: bool = False
    commit: bool = True  # False: compute the unlearned model without touching the store (benchmarks)

    def __post_init__(self) -> None:
        if not (self.damping == "auto" or (isinstance(self.damping, (int, float)) and 0 <= self.damping <= 1)):
            raise ConfigError(f"Expected damping 'auto' or a number in [0, 1], but got {self.damping!r}")
        if self.memorised_gap < 0:
            raise ConfigError(f"Expected memorised_gap >= 0, but got {self.memorised_gap}")
        if self.memorised_ratio < 0:
            raise ConfigError(f"Expected memorised_ratio >= 0 (0: off), but got {self.memorised_ratio}")
        if not 0 <= self.max_overshoot <= 1:
            raise ConfigError(f"Expected max_overshoot in [0, 1], but got {self.max_overshoot}")
        if self.memorised_blocks < 0:
            raise ConfigError(f"Expected memorised_blocks >= 0, but got {self.memorised_blocks}")
        if self.probe_size < 1:
            raise ConfigError(f"Expected probe_size >= 1, but got {self.probe_size}")


def resolve_request(run: Run, ids: Iterable[int]) -> tuple[list[int], list[int]]:
    """Split requested ids into (to delete, already deleted); ids the run never had are an error."""
    requested = sorted({int(i) for i in ids})
    asked = np.asarray(requested, dtype=np.int64)
    blocks = run.all_block_ids()
    present = np.isin(asked, np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)).tolist()
    deleted = run.deleted_ids()
    unknown = [i for i, here in zip(requested, present) if not here and i not in deleted]
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        raise RequestError(f"{len(unknown)} id(s) are not training samples of this run: {shown}; "
                           f"nothing was changed (validation and test samples are never trained on)")
    return [i for i, here in zip(requested, present) if here], [i for i in requested if i in deleted]


def forget(run: Run, ids: Iterable[int], *, method: str = "deepobliviate", options: ForgetOptions | None = None,
           wait: float = 0.0, subject_hashes: Sequence[str] = (), client_ref: str | None = None,
           force: bool = False, strict: bool = False) -> ForgetResult:
    """Delete the samples ``ids`` from the run and commit the unlearned chain. See the module docstring.

    Refused first (:mod:`~obliviate.unlearning.request_checks`): a damaged store; without ``force``, a
    request for more than half the run, all of it or a whole block; with ``strict``, an exact replay under
    other conditions than the run was recorded under. A failure leaves the store as it was.
    ``subject_hashes`` (keyed hashes of the data subjects asked for, never clear keys) and ``client_ref`` (an
    opaque reference of the caller, e.g. the deletion service's application id) are kept in the request record.
    """
    if method not in METHODS:
        raise UnknownNameError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    opts = options or ForgetOptions()
    requested = sorted({int(i) for i in ids})  # read once: ``ids`` may be a generator
    with run.store.lock(exclusive=True, timeout=wait):
        crash_point("forget:locked")
        run.store.reload()
        run.store.collect_garbage()  # finish the purge of an earlier interrupted request
        check_before_forget(run, requested, method, force=force, strict=strict)
        with run.store.discard_on_failure():
            return _Request(run, requested, method, opts, list(subject_hashes), client_ref).run()


def forget_many(run: Run, requests: Sequence[Iterable[int]], *, method: str = "deepobliviate",
                options: ForgetOptions | None = None, coalesce: bool = True, wait: float = 0.0) -> list[ForgetResult]:
    """Apply pending requests: coalesced into one (fewer retrained blocks) or one after another."""
    if coalesce:
        union = sorted({int(i) for r in requests for i in r})
        return [forget(run, union, method=method, options=options, wait=wait)]
    return [forget(run, r, method=method, options=options, wait=wait) for r in requests]


@dataclass
class _Attempt:
    """A stitch candidate after block ``t``."""

    t: int
    state: State
    damping: float
    old_t: State


class _Request:
    """One forget request, holding the lock: replay, attempts, commit. ``run()`` does it all."""

    def __init__(self, run: Run, requested: list[int], method: str, opts: ForgetOptions,
                 subject_hashes: list[str] | None = None, client_ref: str | None = None) -> None:
        self.run_, self.requested, self.method, self.opts = run, requested, method, opts
        self.subject_hashes, self.client_ref = list(subject_hashes or []), client_ref
        self.t_start = time.perf_counter()
        self.report_s = 0.0  # reporting only (test set, canary): excluded from the wall time

    # -- the request -----------------------------------------------------------------------------
    def run(self) -> ForgetResult:
        run, opts = self.run_, self.opts
        if run.status != "complete":
            raise RequestError(f"{run.path} is not fully trained ({len(run.record.blocks)} of {run.num_blocks} "
                               f"blocks); finish it with `obliviate train CONFIG --out {run.path} --resume`")
        to_delete, already = resolve_request(run, self.requested)
        metrics = run.record.metrics
        before = {"validation": metrics.get("validation_accuracy", float("nan")),
                  "test": metrics.get("test_accuracy", float("nan"))}
        base: dict[str, Any]  # mixed values: ForgetResult's shared keyword arguments
        base = dict(request_id=None, method=self.method, ids_requested=self.requested, ids_deleted=to_delete,
                    ids_already_deleted=already, blocks_total=run.num_blocks, stopping_rule=opts.rule.name,
                    accuracy_before=before,
                    recorded_train_s=float(run.record.timing.get("train_wall_s", 0.0)),
                    subject_hashes=self.subject_hashes, client_ref=self.client_ref)
        if not to_delete:
            return ForgetResult(d=None, m=None, t=None, blocks_retrained=0, stitched=False, outcome="no-op",
                                accuracy_after=before, wall_time_s=time.perf_counter() - self.t_start, **base)
        self.u_set = set(to_delete)
        self.plan = make_plan(run, to_delete, self.method, max_overshoot=opts.max_overshoot, guard=opts.guard)
        canary_before = self._report(lambda: run.canary_success(run.final_model())) \
            if set(run.canary_ids()) & self.u_set else None
        try:
            final_state, attempt, val = self._replay()
        except BaseException:
            self._abandon()
            raise
        result = self._result(base, final_state, attempt, val)
        if canary_before is not None:  # kept so verification can later weigh the original's canary memory
            model = self._model(final_state)
            result.canary = {"before": list(canary_before),
                             "after": list(self._report(lambda: run.canary_success(model)))}
        result.report_time_s = self.report_s
        if opts.commit:
            result.wall_time_s = self._elapsed()  # recorded in the manifest: up to the commit
            self._fill_plan(result)
            commit_request(run, result, self.pending, stitched=attempt is not None, validation=val,
                           metrics={"validation_accuracy": _or_none(val["accuracy"]),
                                    "validation_loss": _or_none(val["loss"]),
                                    "test_accuracy": _or_none(result.accuracy_after.get("test", float("nan"))),
                                    "test_loss": _or_none(self.test_loss)})
        else:
            self.pending.finish()
        result.wall_time_s = self._elapsed()
        self._fill_plan(result)
        if result.recorded_train_s:
            result.speedup_vs_recorded = result.recorded_train_s / result.wall_time_s
        return result

    # -- replay with stitch attempts -------------------------------------------------------------
    def _replay(self) -> tuple[State, _Attempt | None, dict[str, Any]]:
        run, opts, plan = self.run_, self.opts, self.plan
        store, cfg, B = run.store, run.config.training, run.num_blocks
        d, m, start = plan.d, plan.m, plan.start
        self.pending = PendingChain(run, enabled=opts.commit)
        model = run.build_model()
        new_prev = state_after(store, start - 1)
        load_state(model, new_prev)
        optimizer = run.trainer.make_optimizer(model, cfg)
        optimizer.load_state_dict(optimizer_state_after(store, start - 1))
        self.model = model
        stitching = self.method == "deepobliviate" and m < B
        if self.method == "deepobliviate" and m == B:
            plan.notes.append(f"block {B}, the last, holds samples of U: nothing is left to stitch, exact replay")
        if stitching:  # the earliest attempt saves the most: if even it cannot pay off, none can
            allowed, why = plan.may_attempt(m, spent=0.0)
            if not allowed:
                plan.notes.append(f"no stitch attempt can pay off ({why}): plain replay from block {d}")
                stitching = False
        old_prev = new_prev
        old_final = state_after(store, B) if stitching else None
        self.residuals: list[BlockResidual] = []
        self.decisions: list[dict[str, Any]] = []
        self.guards: list[dict[str, Any]] = []
        self.memorised: dict[str, Any] | None = None
        self.train_s = 0.0
        self.blocks_done = 0
        spent, next_t = 0.0, m
        every = run.config.store.snapshot_every
        probe = _probe(run, self.u_set, opts.probe_size) if opts.function_residual and stitching else None
        # The stored trajectory is followed block by block from d: one stored update read per block, and
        # the residual of each. When a snapshot s lies past d + 1 (a spread deletion), the chain reaches
        # theta_m in fewer reads (the snapshot, m - s updates, and block m's update for its residual), so
        # the blocks between d and m are skipped: the stopping rules read only the blocks after m.
        skip_interior = stitching and snapshot_at_or_before(run.record, m) > d + 1
        if skip_interior:
            plan.notes.append(f"residuals measured from block {m} on: the stored state after block {m} is "
                              f"read from the chain, not followed through blocks {d}..{m - 1}")
        u_data = run.train.select(torch.tensor(sorted(self.u_set)))
        for k in progress(range(start, B + 1), desc=f"forget ({self.method})", total=B - start + 1):
            data = run.block_data(k, self.u_set)
            t0 = time.perf_counter()
            update, new_prev, loss = advance(model, optimizer, new_prev, run.rows(data.positions), block=k,
                                             num_blocks=B, cfg=cfg, trainer=run.trainer, slots=data.slots,
                                             num_slots=data.num_slots)
            wall = time.perf_counter() - t0
            self.train_s += wall
            self.blocks_done += 1
            plan.calibrate(k, wall)
            snapshot = new_prev if (k % every == 0 or k == B) else None
            self.pending.add_block({"index": k, "size": len(data), "loss": loss, "wall_time_s": wall,
                                    "origin": "retrained"}, update, optimizer_payload(optimizer), snapshot)
            if not stitching or k < d or (skip_interior and k < m):
                continue
            stored_update = store.get(need(run.record.blocks[k - 1].update, f"update of block {k}"))
            old_prev = state_after(store, m) if skip_interior and k == m else add(old_prev, stored_update)
            self.residuals.append(self._residual(k, "deleted" if k <= m else "affected", stored_update, update,
                                                 old_prev, probe, u_data))
            if k < m:
                continue
            if k == m:
                self.memorised = self._memorisation(old_prev, u_data)
                if self.memorised["memorised"] and opts.memorised_blocks:
                    next_t = min(m + opts.memorised_blocks, B - 1)
                    plan.notes.append(f"U is memorised ({self.memorised['why']}): first stitch attempt "
                                      f"after block {next_t}")
                    allowed, why = plan.may_attempt(next_t, spent=spent)
                    if not allowed:  # later points save less for the same cost: none can pay off either
                        plan.notes.append(f"no stitch attempt from block {next_t} on can pay off ({why}); "
                                          f"plain replay to block {B}")
                        stitching = False
                        continue
            if k < next_t:
                continue
            decision = opts.bounds.decide(opts.rule, self.residuals, k - m)
            self.decisions.append({"block": k, "stop": decision.stop, "reason": decision.reason, "fit": decision.fit})
            if not decision.stop:
                continue
            allowed, why = plan.may_attempt(k, spent=spent)
            if not allowed:
                plan.notes.append(f"after block {k}: no stitch attempt ({why}); plain replay to block {B}")
                stitching = False
                continue
            if old_final is None:  # pragma: no cover - loaded whenever stitching is possible
                raise RuntimeError("internal error: the stored final state was not loaded")
            t_attempt = time.perf_counter()
            attempt = self._candidate(k, new_prev, old_prev, old_final, u_data)
            if attempt is None:
                plan.notes.append(f"after block {k}: the damped stitch would keep most of U's memory "
                                  f"(a < {MIN_DAMPING}); retraining on")
                next_t = k + 1
                continue
            self.pending.add_stitch(k, new_prev, old_prev, attempt.damping, attempt.state)
            verdict, val = self._guard(attempt, model)
            cost = time.perf_counter() - t_attempt
            spent += cost
            plan.attempts.append({"block": k, "passed": verdict.passed, "damping": attempt.damping,
                                  "seconds": cost, "predicted_s": plan.guard_cost()})
            if plan.eval_s > 0:  # follow the measured guard cost
                plan.eval_s = 0.5 * (plan.eval_s + cost / max(plan.speed * plan.guard_passes, 1e-9))
            self.guards.append(verdict.to_dict())
            if verdict.passed:
                return attempt.state, attempt, val
            log.info("stitch after block %d rejected: %s; retraining on", k, "; ".join(verdict.reasons))
            next_t = plan.next_attempt(k)
        if not len(run.validation):
            return new_prev, None, _no_validation()
        v = self._validate(model, for_guard=False)  # screened like the guard: a late replay changes few rows
        if v.screen is not None:
            plan.notes.append(f"validation of the replayed model: {v.screening['rows_evaluated']} of "
                              f"{v.screening['of']} rows evaluated, the others carried over from the current "
                              f"model (no random row changed); the loss is not measured")
        acc = float((v.predicted == run.validation.y).float().mean())
        return new_prev, None, {"predicted": v.predicted, "margin": v.margin, "screened": v.screened,
                                "accuracy": acc, "loss": v.loss}

    def _candidate(self, t: int, new_t: State, old_t: State, old_final: State, u_data: Any) -> _Attempt | None:
        """The stitch after block ``t``, damped for memorised users (``damping.py``)."""
        opts = self.opts
        a = 1.0
        if isinstance(opts.damping, (int, float)):
            a = float(opts.damping)
        elif self.memorised and self.memorised["memorised"] and \
                self.run_.num_blocks - t <= max(opts.memorised_blocks, 1):
            target = median_loss(self.model, u_data.x, u_data.y)  # theta'_t: never saw U

            def loss_at(a_: float) -> float:
                return median_loss(self._model(stitch(old_final, new_t, old_t, a_)), u_data.x, u_data.y)

            a = solve_damping(loss_at, target=target)
            if a < MIN_DAMPING:  # the match would keep most of the stored model's memory of U: replay on
                self.memorised.update({"target_loss": target, "damping": a, "refused": f"damping {a:.2f} < "
                                                                                       f"{MIN_DAMPING}"})
                return None
            self.memorised.update({"target_loss": target, "damping": a, "stitched_loss": loss_at(a),
                                   "plain_stitch_loss": loss_at(1.0), "stored_loss": loss_at(0.0)})
        return _Attempt(t, stitch(old_final, new_t, old_t, a), a, old_t)

    def _guard(self, attempt: _Attempt, model: torch.nn.Module) -> tuple[Any, dict[str, Any]]:
        """The guard's verdict on the candidate, and its validation predictions (screened, see guard.py)."""
        run, guard = self.run_, self.opts.guard
        vx, vy = run.validation.x, run.validation.y
        if len(vy) == 0:
            return guard.check(labels=vy, candidate=vy, current=vy, block=attempt.t), _no_validation()
        v = self._validate(self._model(attempt.state), for_guard=True)
        screen = v.screen
        ref_rows = guard.reference_subset(len(vy)) if screen is None else \
            torch.cat([screen[1], screen[0][:max(0, guard.reference_samples - len(screen[1]))]])
        reference = predict_logits(model, vx[ref_rows]).argmax(1) if len(ref_rows) else None  # theta'_t, fresh
        assert v.current is not None, "the guard's validation always has the current model's predictions"
        verdict = guard.check(labels=vy, candidate=v.predicted, current=v.current, reference=reference,
                              reference_rows=ref_rows, block=attempt.t, candidate_loss=v.loss)
        verdict.screening = v.screening
        info = {"predicted": v.predicted, "margin": v.margin, "screened": v.screened,
                "accuracy": verdict.candidate_accuracy, "loss": v.loss}
        return verdict, info

    def _validate(self, candidate: torch.nn.Module, *, for_guard: bool) -> _Validation:
        """``candidate``'s validation predictions, screened (``StitchGuard.screen_rows``): the rows with
        the smallest margins under the current model and some random others are evaluated, the rest
        carried over from the current model's cached predictions; a random row that flipped shows the
        carry-over is unsafe, and then every row is evaluated. The loss is known only when every row was.
        Without cached predictions the guard (``for_guard``) evaluates the current model first, since its
        tests compare with it; a plain replay then evaluates every row of ``candidate`` instead."""
        run, vx, vy = self.run_, self.run_.validation.x, self.run_.validation.y
        cached = cached_validation_predictions(run)
        if cached is None and not for_guard:  # nothing to carry over: evaluating the current model costs more
            logits = predict_logits(candidate, vx)
            loss = float(F.cross_entropy(logits, vy).item())
            return _Validation(logits.argmax(1), margins(logits), None, None, 0, loss,
                               {"rows_evaluated": len(vy), "of": len(vy)})
        current, margin, screened = cached if cached is not None else validation_predictions(run)
        screen = self.opts.guard.screen_rows(margin, screened)
        rows = torch.arange(len(vy)) if screen is None else torch.cat(screen).sort().values
        logits = predict_logits(candidate, vx[rows])
        pred, new_margin = current.clone(), margin.clone()
        pred[rows], new_margin[rows] = logits.argmax(1), margins(logits)
        screening: dict[str, Any] = {"rows_evaluated": len(rows), "of": len(vy)}
        if screen is not None and bool((pred[screen[1]] != current[screen[1]]).any()):
            rest = torch.from_numpy(np.setdiff1d(np.arange(len(vy)), rows.numpy()))
            more = predict_logits(candidate, vx[rest])
            pred[rest], new_margin[rest] = more.argmax(1), margins(more)
            screening.update(rows_evaluated=len(vy), fallback="a random row flipped: every row evaluated")
            logits, rows, screen = torch.cat([logits, more]), torch.cat([rows, rest]), None
        loss = float(F.cross_entropy(logits, vy[rows]).item()) if screen is None else float("nan")
        return _Validation(pred, new_margin, current, screen, 0 if screen is None else screened + 1, loss, screening)

    def _memorisation(self, old_m: State, u_data: Any) -> dict[str, Any]:
        """How differently the retrained and stored states after block ``m`` treat ``U``: their loss gap
        on ``U``, against ``memorised_gap`` and, when smaller, against how much the two states differ on
        validation rows (``memorised_ratio``)."""
        opts = self.opts
        new_loss = median_loss(self.model, u_data.x, u_data.y)
        old_model = self._model(old_m)
        old_loss = median_loss(old_model, u_data.x, u_data.y)
        gap = new_loss - old_loss
        out: dict[str, Any] = {"block": self.plan.m, "retrained_loss": new_loss, "stored_loss": old_loss, "gap": gap,
                               "threshold": opts.memorised_gap, "memorised": bool(gap > opts.memorised_gap)}
        if out["memorised"]:
            out["why"] = f"loss gap {gap:.2f} nats > {opts.memorised_gap}"
        elif gap > MIN_RATIO_GAP and opts.memorised_ratio and len(self.run_.validation):
            vx, vy = self.run_.validation.x, self.run_.validation.y
            rows = torch.linspace(0, len(vy) - 1, min(RATIO_ROWS, len(vy))).round().to(torch.int64).unique()
            with torch.no_grad():
                old_rows = F.cross_entropy(predict_logits(old_model, vx[rows]), vy[rows], reduction="none")
                new_rows = F.cross_entropy(predict_logits(self.model, vx[rows]), vy[rows], reduction="none")
            noise = float((new_rows - old_rows).abs().mean())
            out.update(validation_shift=noise, ratio_threshold=opts.memorised_ratio,
                       memorised=bool(gap > opts.memorised_ratio * noise))
            if out["memorised"]:
                out["why"] = (f"loss gap {gap:.3f} nats, {gap / max(noise, 1e-12):.0f} times the mean shift of "
                              f"{len(rows)} validation samples ({noise:.2g}) > {opts.memorised_ratio:g}")
        return out

    def _residual(self, k: int, area: str, stored_update: State, update: State, old_state: State, probe: Any,
                  u_data: Any) -> BlockResidual:
        r = BlockResidual(k, area, **parameter_residual(stored_update, update))
        if probe is None:
            return r
        old_model = self._model(old_state)
        r.probe_tv = function_residual(predict_logits(old_model, probe.x), predict_logits(self.model, probe.x))
        with torch.no_grad():
            lu_new = F.cross_entropy(predict_logits(self.model, u_data.x), u_data.y).item()
            lu_old = F.cross_entropy(predict_logits(old_model, u_data.x), u_data.y).item()
        r.forget_loss_gap = lu_new - lu_old
        return r

    # -- result ----------------------------------------------------------------------------------
    def _result(self, base: dict[str, Any], final_state: State, attempt: _Attempt | None,
                val: dict[str, Any]) -> ForgetResult:
        run, plan = self.run_, self.plan
        test = (float("nan"), float("nan"))
        if self.opts.evaluate_test:
            model = self._model(final_state)
            test = self._report(lambda: run.evaluate(model, "test"))
        self.test_loss = test[1]
        stitched = attempt is not None
        outcome = "stitched" if stitched else ("retrained" if self.method == "retrain" else "exact")
        result = ForgetResult(
            d=plan.d, m=plan.m, t=attempt.t if attempt else run.num_blocks, blocks_retrained=self.blocks_done,
            stitched=stitched, outcome=outcome, decisions=self.decisions,
            residuals=[r.to_dict() for r in self.residuals], guard=self.guards, retrain_time_s=self.train_s,
            accuracy_after={"validation": val["accuracy"], "test": test[0]},
            damping=attempt.damping if attempt else None,
            memorised=self.memorised, **base)
        result.model_state = final_state
        return result

    def _fill_plan(self, result: ForgetResult) -> None:
        plan: Plan = self.plan
        result.plan = {**plan.to_dict(), "actual_s": result.wall_time_s,
                       "chosen": "stitch" if result.stitched else "replay"}

    # -- helpers ---------------------------------------------------------------------------------
    def _abandon(self) -> None:
        """Stop the background writer before the error propagates (its files are then discarded)."""
        pending = getattr(self, "pending", None)
        if pending is not None:
            try:
                pending.finish()
            except Exception:  # the original error is the one to report
                log.debug("the background writer failed too", exc_info=True)
    def _model(self, state: State) -> torch.nn.Module:
        """The scratch model (built once per request) holding ``state``: valid until the next call."""
        if getattr(self, "_scratch", None) is None:
            self._scratch = copy.deepcopy(self.model) if getattr(self, "model", None) is not None \
                else self.run_.build_model()
        load_state(self._scratch, state)
        return self._scratch

    def _report(self, fn: Callable[[], _T]) -> _T:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.report_s += time.perf_counter() - t0

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t_start - self.report_s


@dataclass
class _Validation:
    """A model's screened validation predictions (``_Request._validate``)."""

    predicted: torch.Tensor
    margin: torch.Tensor
    current: torch.Tensor | None  # the current model's predictions they were screened against, if any
    screen: tuple[torch.Tensor, torch.Tensor] | None  # (low-margin rows, random rows); None: every row evaluated
    screened: int  # commits in a row that carried rows over, this one included
    loss: float
    screening: dict[str, Any]


def _no_validation() -> dict[str, Any]:
    return {"predicted": None, "margin": None, "screened": 0, "accuracy": float("nan"), "loss": float("nan")}


def _or_none(x: float) -> float | None:
    """Manifest metrics: a value not measured is null, never a stale number."""
    return None if x != x else float(x)


def _probe(run: Run, u_set: set[int], size: int) -> Any:
    ids = [i for i in run.train.ids.tolist() if i not in u_set]
    rng = np.random.default_rng(0xB0B)
    chosen = sorted(rng.choice(ids, size=min(size, len(ids)), replace=False).tolist())
    return run.train.select(torch.tensor(chosen, dtype=torch.int64))
