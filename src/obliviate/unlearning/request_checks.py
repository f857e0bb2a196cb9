"""Checks a forget request passes before any work: an intact store, a sane size, replayable conditions.

- **Integrity**: every payload the manifest names (so everything the new chain keeps or replays from)
  matches its hash; a damaged store is refused listing the damaged payloads
  (:func:`obliviate.store.integrity.require_intact`; hashes known from the write or a first check are not recomputed).
- **Size**: deleting more than ``max_share`` (default 50%) of the samples still in the run, or all of
  them, or every sample of a block, needs ``force=True`` (``--force``): the message says what the model
  will lose.
- **Determinism**: ``exact`` and ``retrain`` promise the bits of a retrain from scratch; under other
  conditions than the run was recorded under they warn, or with ``strict=True`` refuse
  (:mod:`obliviate.training.determinism`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import RequestError
from ..store.integrity import require_intact
from ..training.determinism import check_conditions
from ..training.run import Run

DEFAULT_MAX_SHARE = 0.5


def check_request_size(run: Run, to_delete: Sequence[int], *, force: bool = False,
                       max_share: float = DEFAULT_MAX_SHARE) -> None:
    """Refuse (unless ``force``) a request deleting more than ``max_share`` of the run, all of it, or a whole block."""
    if force or not to_delete:
        return
    blocks = run.all_block_ids()
    remaining = sum(len(b) for b in blocks)
    n = len(to_delete)
    advice = "split it into smaller requests, or pass --force (force=True in Python) if this is intended"
    if n >= remaining:
        raise RequestError(f"the request deletes all {remaining} training samples left in {run.path}: the model "
                           f"would keep nothing it learned (its test accuracy {_acc(run)} would fall to chance, "
                           f"the untrained initial weights); train a new run instead, or pass --force")
    if n > max_share * remaining:
        raise RequestError(f"the request deletes {n} of the {remaining} training samples left in {run.path} "
                           f"({n / remaining:.0%}, more than the {max_share:.0%} allowed without --force): the "
                           f"model loses what it learned from them, expect its test accuracy ({_acc(run)}) to "
                           f"drop; {advice}")
    u = np.asarray(sorted(int(i) for i in to_delete), dtype=np.int64)
    emptied = [k for k, ids in enumerate(blocks, 1) if 0 < len(ids) <= n and bool(np.isin(ids, u).all())]
    if emptied:
        raise RequestError(f"the request deletes every sample of block(s) {emptied[:10]}: those blocks would "
                           f"train on nothing; {advice}")


def _acc(run: Run) -> str:
    acc = run.manifest.get("metrics", {}).get("test_accuracy")
    return f"{acc:.3f}" if isinstance(acc, float) else "unknown"


def check_before_forget(run: Run, ids: Sequence[int], method: str, *, force: bool = False,
                        strict: bool = False) -> None:
    """Every check above, in order (call it holding the run's exclusive lock, after reloading)."""
    from .engine import resolve_request

    require_intact(run.store, "forget will not commit onto it")
    to_delete, _ = resolve_request(run, ids)
    check_request_size(run, to_delete, force=force)
    if to_delete and method in ("exact", "retrain"):
        check_conditions(run.manifest, f"forget --method {method}", strict=strict)
