"""The current model's predictions on the validation set, cached in the run store.

The stitch guard compares a candidate with the current model on every validation sample. The
current model's predicted labels are written once (at the end of training, and by every forget
commit for the new model), keyed by the final snapshot's hash, so a forget request evaluates only
its candidate instead of evaluating the current model again.

>>> import tempfile
>>> from obliviate.training import RunConfig, train_run
>>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}), tempfile.mkdtemp() + "/r")
>>> pred = validation_predictions(run)
>>> bool(cached_validation_predictions(run) is not None), pred.shape == run.validation.y.shape
(True, True)
"""

from __future__ import annotations

from typing import Any

import torch

from ..store import RunStore

KEY = "validation_predictions"


def final_key(manifest: dict[str, Any]) -> str | None:
    """What the cache is keyed by: the final snapshot's content hash."""
    blocks = manifest.get("blocks") or []
    snap = blocks[-1].get("snapshot") if blocks else None
    return snap["sha256"] if snap else None


def predictions_entry(store: RunStore, manifest: dict[str, Any], predicted: torch.Tensor) -> dict[str, Any]:
    """The manifest entry for ``predicted`` (labels of the model ``manifest`` ends with)."""
    ref = store.put("validation-predictions", {"predicted": predicted.to(torch.int64).contiguous()})
    return {"final_sha256": final_key(manifest), "ref": ref}


def cached_validation_predictions(run: Any) -> torch.Tensor | None:
    entry = run.manifest.get(KEY)
    if not entry or entry.get("final_sha256") != final_key(run.manifest):
        return None
    return run.store.get(entry["ref"])["predicted"]


def validation_predictions(run: Any) -> torch.Tensor:
    """Predicted labels of the run's current model on its validation set (cached when available)."""
    cached = cached_validation_predictions(run)
    if cached is not None and len(cached) == len(run.validation):
        return cached
    from .block import predict_logits

    if len(run.validation) == 0:
        return torch.zeros(0, dtype=torch.int64)
    return predict_logits(run.final_model(), run.validation.x).argmax(1)
