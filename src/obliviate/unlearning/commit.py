"""Atomic commit of a forget request, and the purge of everything the new chain no longer needs.

Order: write every new payload (content-addressed, each atomically), then replace the manifest with
one rename, then delete every payload file the new manifest does not name. Killed before the rename:
the old chain is intact and the new files are orphans that the next writer removes. Killed after it:
the new chain is in force and the next writer finishes the purge (``RunStore.collect_garbage``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._faults import crash_point
from ..training.chain import State, add, subtract
from ..training.run import Run, partition_payload
from .result import ForgetResult


def commit_request(run: Run, result: ForgetResult, new_blocks: list[dict[str, Any]],
                   payloads: list[tuple[int, State, tuple[State, dict[str, str]], State | None]],
                   *, stitch: tuple[State, State] | None, metrics: dict[str, float]) -> None:
    """Replace the retrained blocks, re-base the stitched area's snapshots, record the request, purge.

    ``stitch`` is ``(theta'_t, theta_t)`` when blocks after ``t`` keep their stored updates.
    """
    store = run.store
    old = store.manifest
    blocks = [dict(b) for b in old["blocks"]]
    u = set(result.ids_deleted)
    for record, (k, update, (opt_t, opt_meta), snapshot) in zip(new_blocks, payloads):
        refs = {"update": store.put(f"b{k:04d}-update", update),
                "optimizer": store.put(f"b{k:04d}-optimizer", opt_t, opt_meta),
                "snapshot": store.put(f"b{k:04d}-snapshot", snapshot) if snapshot is not None else None}
        blocks[k - 1] = {**record, **refs}
    t = new_blocks[-1]["index"]
    if stitch is not None:
        new_t, old_t = stitch
        shift = subtract(new_t, old_t)
        for j in range(t + 1, len(blocks) + 1):
            snap_ref = blocks[j - 1].get("snapshot")
            if snap_ref:  # theta''_j = theta'_t + (theta_j - theta_t): no state of the old d..t survives
                blocks[j - 1]["snapshot"] = store.put(f"b{j:04d}-snapshot", add(store.get(snap_ref), shift))
            blocks[j - 1]["stitched_by_request"] = len(old.get("requests", [])) + 1
    members = [np.array([i for i in run.block_ids(k) if i not in u], dtype=np.int64)
               for k in range(1, len(blocks) + 1)]
    partition = store.put("partition", partition_payload(members, store.get(old["partition"])["validation"].numpy()))
    request = {
        "request_id": len(old.get("requests", [])) + 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": result.method, "outcome": result.outcome,
        "ids_requested": result.ids_requested, "ids_deleted": result.ids_deleted,
        "ids_already_deleted": result.ids_already_deleted, "n_deleted": len(result.ids_deleted),
        "d": result.d, "m": result.m, "t": result.t, "blocks_retrained": result.blocks_retrained,
        "stopping_rule": result.stopping_rule, "decisions": result.decisions, "guard": result.guard,
        "residuals": result.residuals, "wall_time_s": result.wall_time_s, "retrain_time_s": result.retrain_time_s,
        "accuracy_before": result.accuracy_before, "accuracy_after": result.accuracy_after,
        "chain_sha256": [b["update"]["sha256"] for b in blocks],
        "canary": result.canary,
        "subject_hashes": result.subject_hashes, "client_ref": result.client_ref,
    }
    manifest = {**old, "blocks": blocks, "partition": partition, "metrics": metrics,
                "requests": [*old.get("requests", []), request]}
    crash_point("forget:payloads-written")
    store.commit(manifest)
    crash_point("forget:manifest-committed")
    result.request_id = request["request_id"]
    result.chain_sha256 = request["chain_sha256"]
    result.purged_files = store.collect_garbage()


