"""The current model's predictions on the validation set, cached in the run store.

The stitch guard compares a candidate with the current model on every validation sample. The
current model's predicted labels are written once (at the end of training, and by every forget
commit for the new model), keyed by the final snapshot's hash, so a forget request evaluates only
its candidate instead of evaluating the current model again.

>>> import tempfile
>>> from obliviate.training import RunConfig, train_run
>>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}), tempfile.mkdtemp() + "/r")
>>> pred, margin, screened = validation_predictions(run)
>>> cached_validation_predictions(run) is not None, pred.shape == run.validation.y.shape, screened
(True, True, 0)
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


def margins(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 logit per row (how far each prediction is from flipping)."""
    if logits.shape[1] < 2:
        return torch.full((len(logits),), float("inf"))
    top = logits.topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]).float()


def predictions_entry(store: RunStore, manifest: dict[str, Any], predicted: torch.Tensor,
                      margin: torch.Tensor, *, screened: int = 0) -> dict[str, Any]:
    """The manifest entry for the predicted labels and margins of the model ``manifest`` ends with.
    ``screened``: how many commits in a row carried rows over instead of evaluating them all."""
    ref = store.put("validation-predictions", {"predicted": predicted.to(torch.int64).contiguous(),
                                               "margin": margin.to(torch.float32).contiguous()})
    return {"final_sha256": final_key(manifest), "ref": ref, "screened": int(screened)}


def cached_validation_predictions(run: Any) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """(predicted labels, margins, screened count) of the current model, when cached for it."""
    entry = run.manifest.get(KEY)
    if not entry or entry.get("final_sha256") != final_key(run.manifest):
        return None
    t = run.store.get(entry["ref"])
    if len(t["predicted"]) != len(run.validation) or "margin" not in t:
        return None
    return t["predicted"], t["margin"], int(entry.get("screened", 0))


def validation_predictions(run: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(predicted labels, margins, screened count) of the run's current model on its validation set,
    from the cache when it is for the current model, else evaluated (screened count 0)."""
    cached = cached_validation_predictions(run)
    if cached is not None:
        return cached
    from .block import predict_logits

    if len(run.validation) == 0:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0), 0
    logits = predict_logits(run.final_model(), run.validation.x)
    return logits.argmax(1), margins(logits), 0
