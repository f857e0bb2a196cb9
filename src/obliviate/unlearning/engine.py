"""The unlearning engine: plan, replay, residual memory, stopping, guarded stitch, atomic commit, purge.

Modes (``methods()``):

- ``deepobliviate``: retrain from the first block ``d`` holding a sample of ``U``; after the last such
  block ``m``, ask the stopping rule whether to try a stitch
  ``theta'_t + (theta_B - theta_t)``; the guard validates it; a failed stitch keeps retraining.
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

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._faults import crash_point
from .._logging import progress
from ..errors import RequestError, UnknownNameError
from ..training.block import evaluate, make_optimizer, predict_logits, train_block
from ..training.chain import State, add, clone_state, load_state, optimizer_payload, optimizer_state_after, \
    state_after, subtract
from ..training.run import Run
from .commit import commit_request
from .guard import StitchGuard
from .request_checks import check_before_forget
from .residual import BlockResidual, function_residual, parameter_residual
from .result import ForgetResult
from .stopping import Bounds, StoppingRule, make_stopping_rule

log = logging.getLogger(__name__)

METHODS = ("deepobliviate", "exact", "retrain")


def methods() -> list[str]:
    return list(METHODS)


@dataclass(frozen=True)
class ForgetOptions:
    """Settings of the engine (defaults chosen from the benchmarks, docs/unlearning.md)."""

    rule: StoppingRule = field(default_factory=lambda: make_stopping_rule("immediate"))
    bounds: Bounds = field(default_factory=Bounds)
    guard: StitchGuard = field(default_factory=StitchGuard)
    probe_size: int = 256
    function_residual: bool = True
    evaluate_test: bool = True  # test accuracy after the request (reporting only: not in its wall time)
    commit: bool = True  # False: compute the unlearned model without touching the store (benchmarks)


def resolve_request(run: Run, ids: Iterable[int]) -> tuple[list[int], list[int]]:
    """Split requested ids into (to delete, already deleted); ids the run never had are an error."""
    requested = sorted({int(i) for i in ids})
    present = set(run.block_of())
    deleted = run.deleted_ids()
    unknown = [i for i in requested if i not in present and i not in deleted]
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        raise RequestError(f"{len(unknown)} id(s) are not training samples of this run: {shown}; "
                           f"nothing was changed (validation and test samples are never trained on)")
    return [i for i in requested if i in present], [i for i in requested if i in deleted]


def forget(run: Run, ids: Iterable[int], *, method: str = "deepobliviate", options: ForgetOptions | None = None,
           wait: float = 0.0, force: bool = False, strict: bool = False) -> ForgetResult:
    """Delete the samples ``ids`` from the run and commit the unlearned chain. See the module docstring.

    Refused first (:mod:`~obliviate.unlearning.request_checks`): a damaged store; without ``force``, a
    request for more than half the run, all of it or a whole block; with ``strict``, an exact replay under
    other conditions than the run was recorded under. A failure leaves the store as it was.
    """
    if method not in METHODS:
        raise UnknownNameError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    opts = options or ForgetOptions()
    ids = list(ids)  # read twice: by the checks and by the request
    with run.store.lock(exclusive=True, timeout=wait):
        crash_point("forget:locked")
        run.store.reload()
        run.store.collect_garbage()  # finish the purge of an earlier interrupted request
        check_before_forget(run, ids, method, force=force, strict=strict)
        with run.store.discard_on_failure():
            return _forget_locked(run, ids, method, opts)


def forget_many(run: Run, requests: Sequence[Iterable[int]], *, method: str = "deepobliviate",
                options: ForgetOptions | None = None, coalesce: bool = True, wait: float = 0.0) -> list[ForgetResult]:
    """Apply pending requests: coalesced into one (fewer retrained blocks) or one after another."""
    if coalesce:
        union = sorted({int(i) for r in requests for i in r})
        return [forget(run, union, method=method, options=options, wait=wait)]
    return [forget(run, r, method=method, options=options, wait=wait) for r in requests]


def _forget_locked(run: Run, ids: Iterable[int], method: str, opts: ForgetOptions) -> ForgetResult:
    t_start = time.perf_counter()
    store, cfg = run.store, run.config.training
    if run.status != "complete":
        raise RequestError(f"{run.path} is not fully trained ({len(run.manifest['blocks'])} of {run.num_blocks} "
                           f"blocks); finish it with `obliviate train CONFIG --out {run.path} --resume`")
    to_delete, already = resolve_request(run, ids)
    B = run.num_blocks
    metrics = run.manifest.get("metrics", {})
    before = {"validation": metrics.get("validation_accuracy", float("nan")),
              "test": metrics.get("test_accuracy", float("nan"))}
    base = dict(request_id=None, method=method, ids_requested=sorted({int(i) for i in ids}),
                ids_deleted=to_delete, ids_already_deleted=already, blocks_total=B,
                stopping_rule=opts.rule.name, accuracy_before=before,
                recorded_train_s=float(run.manifest.get("timing", {}).get("train_wall_s", 0.0)))
    if not to_delete:
        return ForgetResult(d=None, m=None, t=None, blocks_retrained=0, stitched=False, outcome="no-op",
                            accuracy_after=before, wall_time_s=time.perf_counter() - t_start, **base)

    block_of = run.block_of()
    blocks_of_u = sorted({block_of[i] for i in to_delete})
    d, m = blocks_of_u[0], blocks_of_u[-1]
    start = 1 if method == "retrain" else d
    u_set = set(to_delete)
    u_data = run.train.select(torch.tensor(to_delete))
    probe = _probe(run, u_set, opts.probe_size)

    t_report = time.perf_counter()
    canary_before = run.canary_success(run.final_model()) if set(run.canary_ids()) & u_set else None
    t_start += time.perf_counter() - t_report  # reporting only, like the test-set evaluation below
    model = run.build_model()
    new_prev = state_after(store, start - 1)
    old_prev = new_prev
    load_state(model, new_prev)
    optimizer = make_optimizer(model, cfg)
    optimizer.load_state_dict(optimizer_state_after(store, start - 1))
    old_final = state_after(store, B) if method == "deepobliviate" else None
    original_val = (metrics.get("validation_accuracy"), metrics.get("validation_loss"))

    new_blocks: list[dict[str, Any]] = []
    payloads: list[tuple[int, State, tuple[State, dict[str, str]], State | None]] = []
    every = run.config.store.snapshot_every
    residuals: list[BlockResidual] = []
    decisions: list[dict[str, Any]] = []
    guards: list[dict[str, Any]] = []
    stitched_state: State | None = None
    train_time = 0.0
    t = B
    for k in progress(range(start, B + 1), desc=f"forget ({method})", total=B - start + 1):
        members = np.array([i for i in run.block_ids(k) if i not in u_set], dtype=np.int64) if k <= m \
            else run.block_ids(k)
        pos = run.train.positions(torch.from_numpy(members))
        t0 = time.perf_counter()
        loss = train_block(model, optimizer, run.train.x[pos], run.train.y[pos], block=k, num_blocks=B, cfg=cfg)
        train_time += time.perf_counter() - t0
        update = subtract(clone_state(model), new_prev)
        new_prev = add(new_prev, update)
        load_state(model, new_prev)
        snapshot = new_prev if (k % every == 0 or k == B) else None
        payloads.append((k, update, optimizer_payload(optimizer), snapshot))
        new_blocks.append({"index": k, "size": int(len(members)), "loss": loss,
                           "wall_time_s": time.perf_counter() - t0, "origin": "retrained"})
        if method != "deepobliviate" or k < d:
            continue
        stored_update = store.get(run.manifest["blocks"][k - 1]["update"])
        old_prev = add(old_prev, stored_update)
        residuals.append(_residual(run, k, "deleted" if k <= m else "affected", stored_update, update,
                                   old_prev, model, probe, u_data, opts))
        if k < m or k == B:
            continue
        decision = opts.bounds.decide(opts.rule, residuals, k - m)
        decisions.append({"block": k, "stop": decision.stop, "reason": decision.reason, "fit": decision.fit})
        if not decision.stop:
            continue
        if old_final is None:  # pragma: no cover - deepobliviate always loads it
            raise RuntimeError("internal error: final state of the stored chain not loaded")
        candidate = add(old_final, subtract(new_prev, old_prev))  # the formula commit.py stores
        verdict = _guard(run, opts.guard, candidate, model, original_val, k)
        guards.append(verdict.to_dict())
        if verdict.passed:
            stitched_state, t = candidate, k
            break
        log.info("stitch after block %d rejected: %s; retraining on", k, "; ".join(verdict.reasons))

    if stitched_state is not None:
        final_state = stitched_state
    else:
        final_state = new_prev
    load_state(model, final_state)
    if stitched_state is not None:  # the guard already measured it
        val = (guards[-1]["stitched_accuracy"], guards[-1]["stitched_loss"])
    else:
        val = evaluate(model, run.validation.x, run.validation.y)
    t_report = time.perf_counter()
    test = evaluate(model, run.test.x, run.test.y) if opts.evaluate_test else (float("nan"), float("nan"))
    report_s = time.perf_counter() - t_report  # reporting only: excluded from the request's wall time
    outcome = "stitched" if stitched_state is not None else ("retrained" if method == "retrain" else "exact")
    result = ForgetResult(
        d=d, m=m, t=t, blocks_retrained=len(new_blocks), stitched=stitched_state is not None, outcome=outcome,
        decisions=decisions, residuals=[r.to_dict() for r in residuals], guard=guards,
        retrain_time_s=train_time, accuracy_after={"validation": val[0], "test": test[0]}, **base)
    if canary_before is not None:  # kept so verification can later weigh the original's canary memory
        t_report = time.perf_counter()
        result.canary = {"before": list(canary_before), "after": list(run.canary_success(model))}
        report_s += time.perf_counter() - t_report
    result.model_state = final_state
    t_start += report_s
    result.report_time_s = report_s
    if opts.commit:
        result.wall_time_s = time.perf_counter() - t_start  # recorded in the manifest: up to the commit
        commit_request(run, result, new_blocks, payloads,
                       stitch=(new_prev, old_prev) if stitched_state is not None else None,
                       metrics={"validation_accuracy": val[0], "validation_loss": val[1],
                                "test_accuracy": test[0], "test_loss": test[1]})
    result.wall_time_s = time.perf_counter() - t_start
    if result.recorded_train_s:
        result.speedup_vs_recorded = result.recorded_train_s / result.wall_time_s
    return result


def _probe(run: Run, u_set: set[int], size: int) -> Any:
    ids = [i for i in run.train.ids.tolist() if i not in u_set]
    rng = np.random.default_rng(0xB0B)
    chosen = sorted(rng.choice(ids, size=min(size, len(ids)), replace=False).tolist())
    return run.train.select(torch.tensor(chosen, dtype=torch.int64))


def _residual(run: Run, k: int, area: str, stored_update: State, update: State, old_state: State,
              model: torch.nn.Module, probe: Any, u_data: Any, opts: ForgetOptions) -> BlockResidual:
    r = BlockResidual(k, area, **parameter_residual(stored_update, update))
    if not opts.function_residual:
        return r
    old_model = run.build_model()
    load_state(old_model, old_state)
    r.probe_tv = function_residual(predict_logits(old_model, probe.x), predict_logits(model, probe.x))
    with torch.no_grad():
        lu_new = F.cross_entropy(predict_logits(model, u_data.x), u_data.y).item()
        lu_old = F.cross_entropy(predict_logits(old_model, u_data.x), u_data.y).item()
    r.forget_loss_gap = lu_new - lu_old
    return r


def _guard(run: Run, guard: StitchGuard, candidate: State, model: torch.nn.Module,
           original_val: tuple[Any, Any], k: int):  # type: ignore[no-untyped-def]
    vx, vy = run.validation.x, run.validation.y
    retrained = evaluate(model, vx, vy)
    probe_model = run.build_model()
    load_state(probe_model, candidate)
    stitched = evaluate(probe_model, vx, vy)
    return guard.check(stitched=stitched, original=(float(original_val[0]), float(original_val[1])),
                       retrained=retrained, n_validation=len(vy), block=k)
