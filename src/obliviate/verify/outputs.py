"""Model outputs for membership tests: logits, logit-scaled confidences, and the result type every
membership attack returns (:class:`MembershipResult`).

>>> import torch
>>> from obliviate.data import IndexedDataset
>>> ds = IndexedDataset(torch.arange(4), torch.eye(4), torch.tensor([0, 1, 0, 1]), 2)
>>> model = torch.nn.Linear(4, 2)
>>> out = model_confidences(model, ds)
>>> out.logits.shape, out.phi.shape, model.training
((4, 2), (4,), True)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError
from .metrics import membership_advantage, roc_auc, tpr_at_fpr

__all__ = ["MembershipResult", "ModelOutputs", "eval_mode", "logit_scaled_confidence", "membership_result",
           "model_confidences"]


# --------------------------------------------------------------------------------------------------
# Model outputs
# --------------------------------------------------------------------------------------------------


def logit_scaled_confidence(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """``phi = log(p_y / (1 - p_y))`` of the true class ``y`` (Carlini et al. 2022), computed stably as
    ``z_y - logsumexp_{j != y} z_j`` from logits ``z`` of shape ``(n, classes)``.

    >>> import numpy as np
    >>> logit_scaled_confidence(np.log([[0.8, 0.2]]), np.array([0])).round(6).tolist()  # log(0.8 / 0.2)
    [1.386294]
    """
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits.detach().cpu(),
                        dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels.detach().cpu(),
                        dtype=torch.int64)
    if z.ndim != 2 or z.shape[1] < 2 or y.shape != (z.shape[0],):
        raise ConfigError(f"Expected logits (n, classes >= 2) and labels (n,), but got {tuple(z.shape)} and "
                          f"{tuple(y.shape)}")
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], -math.inf)
    return (true - torch.logsumexp(others, dim=1)).numpy()


@dataclass(frozen=True)
class ModelOutputs:
    """One model's logits on a dataset, with the dataset's labels and ids (float64 numpy)."""

    logits: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return probs

    @property
    def phi(self) -> np.ndarray:
        """Logit-scaled confidence of the true class (see :func:`logit_scaled_confidence`)."""
        return logit_scaled_confidence(self.logits, self.labels)

    @property
    def loss(self) -> np.ndarray:
        """Per-sample cross-entropy."""
        z = torch.from_numpy(self.logits)
        return torch.nn.functional.cross_entropy(z, torch.from_numpy(self.labels), reduction="none").numpy()

    @property
    def predictions(self) -> np.ndarray:
        predictions: np.ndarray = self.logits.argmax(axis=1)
        return predictions


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore every submodule's own train/eval flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"Expected argument `batch_size` to be a positive int, but got {batch_size!r}")
    return batch_size


def model_confidences(model: nn.Module, dataset: IndexedDataset, batch_size: int = 512) -> ModelOutputs:
    """Logits of ``model`` on every sample of ``dataset``, in eval mode and without gradients; the
    model's train/eval mode is restored afterwards. Inputs go to the model's device, outputs come back
    as float64 numpy on the CPU.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}")
    if not isinstance(dataset, IndexedDataset):
        raise ConfigError(f"Expected `dataset` to be an IndexedDataset, but got {type(dataset).__name__}")
    _check_batch_size(batch_size)
    device = _device_of(model)
    chunks = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            xb = dataset.x[start:start + batch_size].to(device)
            chunks.append(model(xb).detach().to("cpu", torch.float64))
    logits = torch.cat(chunks).numpy() if chunks else np.zeros((0, dataset.num_classes))
    if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
        raise ConfigError(f"Expected the model to output logits of shape (n, {dataset.num_classes}), but got "
                          f"{logits.shape}")
    return ModelOutputs(logits, dataset.y.numpy().copy(), dataset.ids.numpy().copy())


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def _json_float(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        return _json_float(float(v))
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


@dataclass(frozen=True)
class MembershipResult:
    """Scores of one membership attack (higher = more likely a member) and, when the true membership
    ``labels`` (1 = member) are known, the pivot metrics of the threat audit: ROC AUC, TPR at 1% and 0.1%
    FPR, and membership advantage. Without labels the metrics are NaN."""

    attack: str
    scores: np.ndarray
    labels: np.ndarray | None
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_0_1pct_fpr: float
    advantage: float
    ids: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, include_scores: bool = True) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinities become ``None``)."""
        out: dict[str, Any] = {
            "attack": self.attack, "n": int(self.scores.size),
            "n_members": None if self.labels is None else int(self.labels.sum()),
            "auc": _json_float(self.auc), "tpr_at_1pct_fpr": _json_float(self.tpr_at_1pct_fpr),
            "tpr_at_0_1pct_fpr": _json_float(self.tpr_at_0_1pct_fpr), "advantage": _json_float(self.advantage),
            "details": _jsonable(self.details),
        }
        if include_scores:
            out["scores"] = _jsonable(self.scores)
            out["labels"] = None if self.labels is None else self.labels.astype(int).tolist()
            out["ids"] = None if self.ids is None else self.ids.astype(int).tolist()
        return out


def membership_result(attack: str, scores: Any, labels: Any | None = None, *, ids: Any | None = None,
                      details: Mapping[str, Any] | None = None) -> MembershipResult:
    """Build a :class:`MembershipResult`, computing the metrics from ``scores`` and ``labels``.

    >>> r = membership_result("toy", [0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    >>> r.auc, r.tpr_at_1pct_fpr, r.advantage
    (1.0, 1.0, 1.0)
    """
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64).reshape(-1)
    if labels is None:
        nan = float("nan")
        return MembershipResult(attack, s, None, nan, nan, nan, nan,
                                None if ids is None else np.asarray(ids).reshape(-1), dict(details or {}))
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1).astype(np.int64)
    return MembershipResult(
        attack, s, y, roc_auc(s, y), tpr_at_fpr(s, y, 0.01), tpr_at_fpr(s, y, 0.001),
        membership_advantage(s, y), None if ids is None else np.asarray(ids).reshape(-1), dict(details or {}),
    )


def _membership_labels(membership: Any, n: int) -> np.ndarray | None:
    if membership is None:
        return None
    m = np.asarray(membership.detach().cpu() if isinstance(membership, torch.Tensor) else membership).reshape(-1)
    if m.shape[0] != n:
        raise ConfigError(f"Expected `membership` with one entry per sample ({n}), but got {m.shape[0]}")
    if not np.all((m == 0) | (m == 1)):
        raise ConfigError("Expected `membership` to hold booleans or 0/1")
    return m.astype(np.int64)
