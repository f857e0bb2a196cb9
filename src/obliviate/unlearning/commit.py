"""Atomic commit of a forget request, and the purge of everything the new chain no longer needs.

Order: every new payload is written (most of them by the engine's background writer while it was
still training or validating, and for a stitch made durable there while the guard runs), then the rest
made durable with one barrier, then the manifest is replaced
with one rename, then every payload file the new manifest does not name is deleted (durably) before
the call returns. Killed before the rename: the old chain is intact and the new files are orphans
that the next writer removes. Killed after it: the new chain is in force and the next writer
finishes the purge (``RunStore.collect_garbage``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from .._faults import crash_point
from ..training.chain import State, stitch
from ..training.manifest import need
from ..training.predictions import KEY as PREDICTIONS_KEY, predictions_entry
from ..training.run import Run, partition_payload
from ..training.writer import BackgroundWriter
from .result import ForgetResult


@dataclass
class PendingChain:
    """The new chain's payloads as they are produced; written in the background, in order."""

    run: Run
    enabled: bool = True  # False: compute only, write nothing (``ForgetOptions(commit=False)``)
    writer: BackgroundWriter = field(default_factory=lambda: BackgroundWriter(maxsize=4))
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)  # block -> record with payload refs
    rebased: dict[int, dict[str, Any]] = field(default_factory=dict)  # stitched area: new refs by block

    def add_block(self, record: dict[str, Any], update: State, optimizer: tuple[State, dict[str, str]],
                  snapshot: State | None) -> None:
        store, k = self.run.store, record["index"]
        opt_t, opt_meta = optimizer
        if not self.enabled:
            self.blocks[k] = dict(record)
            return

        def job() -> None:
            refs = {"update": store.put(f"b{k:04d}-update", update),
                    "optimizer": store.put(f"b{k:04d}-optimizer", opt_t, opt_meta),
                    "snapshot": store.put(f"b{k:04d}-snapshot", snapshot) if snapshot is not None else None}
            self.blocks[k] = {**record, **refs}

        self.writer.submit(job)

    def add_stitch(self, t: int, new_t: State, old_t: State, damping: float, final: State) -> None:
        """Queue the stitched area's payloads: the snapshots after ``t`` re-based onto the new
        trajectory (``theta''_j = theta_j + a (theta'_t - theta_t)``; no stored state of the old blocks
        ``d..t`` survives), the final model, and with damping ``a != 1`` block ``t+1``'s update
        corrected so that the chain still sums to every re-based state. Written speculatively while
        the guard runs; a rejected stitch leaves orphans that the commit's purge deletes."""
        store, blocks = self.run.store, self.run.record.blocks
        B = len(blocks)
        self.rebased = {}
        if not self.enabled:
            return

        def job() -> None:
            out: dict[int, dict[str, Any]] = {}
            for j in range(t + 1, B + 1):
                ref = blocks[j - 1].snapshot
                if j == B:
                    out[j] = {"snapshot": store.put(f"b{j:04d}-snapshot", final)}
                elif ref:
                    out[j] = {"snapshot": store.put(f"b{j:04d}-snapshot",
                                                    stitch(store.get(ref), new_t, old_t, damping))}
            if damping != 1.0:
                stored = store.get(need(blocks[t].update, f"update of block {t + 1}"))
                corrected = {k: stored[k] + (old_t[k] - new_t[k]) * (1.0 - damping)
                             if stored[k].is_floating_point() else stored[k] for k in stored}
                out.setdefault(t + 1, {})["update"] = store.put(f"b{t + 1:04d}-update", corrected)
            self.rebased = out

        self.writer.submit(job)
        # the barrier for everything written so far runs on the writer while the guard evaluates, so
        # the commit's own barrier has only the partition, the predictions and the manifest left
        self.writer.submit(store.sync_payloads)

    def finish(self) -> None:
        self.writer.close()


def commit_request(run: Run, result: ForgetResult, pending: PendingChain, *, stitched: bool,
                   validation: dict[str, Any], metrics: dict[str, float | None]) -> None:
    """Replace the retrained blocks, re-base the stitched area, record the request, purge."""
    store = run.store
    pending.finish()
    old = store.manifest
    blocks = [dict(b) for b in old["blocks"]]
    for k, record in sorted(pending.blocks.items()):
        blocks[k - 1] = record
    t = max(pending.blocks)
    if stitched:
        request_no = len(old.get("requests", [])) + 1
        for j in range(t + 1, len(blocks) + 1):
            blocks[j - 1].update(pending.rebased.get(j, {}))
            blocks[j - 1]["stitched_by_request"] = request_no
    u = np.asarray(result.ids_deleted, dtype=np.int64)
    members = [ids[~np.isin(ids, u)].astype(np.int64) for ids in run.all_block_ids()]
    partition = store.put("partition", partition_payload(members, store.get(old["partition"])["validation"].numpy(),
                                                         run.all_recorded_block_ids()))
    request: dict[str, Any] = {
        "request_id": len(old.get("requests", [])) + 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": result.method, "outcome": result.outcome, "summary": result.summary,
        "ids_requested": result.ids_requested, "ids_deleted": result.ids_deleted,
        "ids_already_deleted": result.ids_already_deleted, "n_deleted": len(result.ids_deleted),
        "d": result.d, "m": result.m, "t": result.t, "blocks_retrained": result.blocks_retrained,
        "damping": result.damping, "memorised": result.memorised,
        "stopping_rule": result.stopping_rule, "decisions": result.decisions, "guard": result.guard,
        "plan": result.plan, "residuals": result.residuals, "wall_time_s": result.wall_time_s,
        "retrain_time_s": result.retrain_time_s,
        "accuracy_before": result.accuracy_before, "accuracy_after": result.accuracy_after,
        "chain_sha256": [b["update"]["sha256"] for b in blocks],
        "canary": result.canary,
        "subject_hashes": result.subject_hashes, "client_ref": result.client_ref,
    }
    manifest = {**old, "blocks": blocks, "partition": partition, "metrics": metrics,
                "requests": [*old.get("requests", []), request]}
    manifest.pop(PREDICTIONS_KEY, None)
    if validation.get("predicted") is not None and len(validation["predicted"]):
        manifest[PREDICTIONS_KEY] = predictions_entry(store, manifest, validation["predicted"], validation["margin"],
                                                      screened=validation["screened"])
    crash_point("forget:payloads-written")
    store.commit(manifest)
    crash_point("forget:manifest-committed")
    result.request_id = request["request_id"]
    result.chain_sha256 = request["chain_sha256"]
    result.purged_files = store.collect_garbage()
