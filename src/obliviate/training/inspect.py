"""What a run store holds, and whether it is consistent (used by ``obliviate inspect``).

>>> import tempfile
>>> from obliviate.training import RunConfig, train_run
>>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}), tempfile.mkdtemp() + "/r")
>>> report = inspect_run(run.path)
>>> report["consistent"], report["blocks_done"], report["blocks_total"]
(True, 2, 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..store import RunStore
from ..store.run_store import PAYLOADS
from .manifest import need, typed


def inspect_run(path: str | Path, *, check_payloads: bool = True) -> dict[str, Any]:
    """A JSON-able report: blocks, sizes, hashes, storage bytes, accuracy, integrity problems."""
    store = RunStore.open(path)
    with store.lock(exclusive=False, timeout=30.0):
        store.reload()
        m = typed(store.manifest)
        problems: list[str] = []
        blocks = m.blocks
        total = m.config["training"]["blocks"]
        for i, b in enumerate(blocks, 1):
            if b.index != i:
                problems.append(f"block record {i} has index {b.index}")
        if check_payloads:
            from ..store import iter_refs

            seen: set[str] = set()
            for ref in iter_refs(store.manifest):
                if ref["file"] in seen:
                    continue
                seen.add(ref["file"])
                err = store.check_ref(ref)
                if err:
                    problems.append(err)
        referenced = store.referenced_files()
        folder = store.root / PAYLOADS
        orphans = sorted(p.name for p in folder.iterdir() if f"{PAYLOADS}/{p.name}" not in referenced) \
            if folder.is_dir() else []
        if m.status == "complete" and len(blocks) != total:
            problems.append(f"status is complete but {len(blocks)} of {total} blocks are recorded")
    return {
        "path": str(store.root),
        "format_version": m.format_version,
        "status": m.status or None,
        "consistent": not problems,
        "problems": problems,
        "blocks_total": total,
        "blocks_done": len(blocks),
        "blocks": [{"index": b.index, "size": b.size, "origin": b.origin, "wall_time_s": b.wall_time_s,
                    "update_sha256": need(b.update, f"update of block {b.index}")["sha256"],
                    "optimizer_sha256": need(b.optimizer, f"optimizer of block {b.index}")["sha256"],
                    "snapshot_sha256": b.snapshot["sha256"] if b.snapshot else None} for b in blocks],
        "storage_bytes": store.storage_bytes(),
        "unreferenced_files": orphans,
        "metrics": m.metrics,
        "test_accuracy": m.metrics.get("test_accuracy"),
        "timing": m.timing,
        "data": m.data,
        "config": m.config,
        "trainer": m.trainer if m.trainer is not None else {"name": "default"},
        "requests": [{"request_id": r.request_id, "method": r.method, "n_deleted": r.n_deleted,
                      "blocks_retrained": r.blocks_retrained, "created": r.created} for r in m.requests],
        "library_versions": m.library_versions,
    }
