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


def inspect_run(path: str | Path, *, check_payloads: bool = True) -> dict[str, Any]:
    """A JSON-able report: blocks, sizes, hashes, storage bytes, accuracy, integrity problems."""
    store = RunStore.open(path)
    with store.lock(exclusive=False, timeout=30.0):
        store.reload()
        m = store.manifest
        problems: list[str] = []
        blocks = m.get("blocks", [])
        total = m["config"]["training"]["blocks"]
        for i, b in enumerate(blocks, 1):
            if b["index"] != i:
                problems.append(f"block record {i} has index {b['index']}")
        if check_payloads:
            from ..store import iter_refs

            seen: set[str] = set()
            for ref in iter_refs(m):
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
        if m.get("status") == "complete" and len(blocks) != total:
            problems.append(f"status is complete but {len(blocks)} of {total} blocks are recorded")
    return {
        "path": str(store.root),
        "format_version": m["format_version"],
        "status": m.get("status"),
        "consistent": not problems,
        "problems": problems,
        "blocks_total": total,
        "blocks_done": len(blocks),
        "blocks": [{"index": b["index"], "size": b["size"], "origin": b.get("origin"),
                    "wall_time_s": b.get("wall_time_s"),
                    "update_sha256": b["update"]["sha256"], "optimizer_sha256": b["optimizer"]["sha256"],
                    "snapshot_sha256": (b.get("snapshot") or {}).get("sha256")} for b in blocks],
        "storage_bytes": store.storage_bytes(),
        "unreferenced_files": orphans,
        "metrics": m.get("metrics", {}),
        "test_accuracy": m.get("metrics", {}).get("test_accuracy"),
        "timing": m.get("timing", {}),
        "data": m.get("data", {}),
        "config": m.get("config", {}),
        "trainer": m.get("trainer", {"name": "default"}),
        "requests": [{k: r[k] for k in ("request_id", "method", "n_deleted", "blocks_retrained", "created")
                      if k in r} for r in m.get("requests", [])],
        "library_versions": m.get("library_versions", {}),
    }
