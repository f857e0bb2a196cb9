"""Aggregating the shard models' predictions (the A of SISA), and the latency of a batched prediction.

>>> probs = torch.tensor([[[0.6, 0.4]], [[0.55, 0.45]], [[0.0, 1.0]]])  # 3 shards, 1 input, 2 classes
>>> (aggregate(probs, "vote")[0] * 3).tolist(), aggregate(probs, "mean_proba")[1].argmax(-1).tolist()
([[2.0, 1.0]], [1])
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...training.block import predict_logits

Aggregation = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _vote(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Majority vote: probabilities are vote shares; ties go to the class with the higher mean probability."""
    counts = F.one_hot(probs.argmax(-1), probs.shape[-1]).sum(0).to(probs.dtype)
    # mean probabilities lie in [0, 1], so half of them never outweighs a whole vote: they only break ties
    return counts / probs.shape[0], counts + 0.5 * probs.mean(0)


def _mean_proba(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = probs.mean(0)
    return mean, mean


_AGGREGATIONS: dict[str, Aggregation] = {"vote": _vote, "mean_proba": _mean_proba}


def register_aggregation(name: str, fn: Aggregation) -> None:
    """Make ``fn`` available as an aggregation: it maps the shards' class probabilities ``(S, n, C)`` to
    ``(proba, scores)``, both ``(n, C)``: what ``predict_proba`` returns and what ``predict`` takes the
    argmax of."""
    _AGGREGATIONS[name] = fn


def aggregation_names() -> list[str]:
    return sorted(_AGGREGATIONS)


def check_aggregation(name: Any, key: str = "aggregation") -> str:
    if not isinstance(name, str) or name not in _AGGREGATIONS:
        raise ConfigError(f"Expected `{key}` to be one of {', '.join(aggregation_names())}, but got {name!r}")
    return name


def aggregate(probs: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(proba, scores)`` of the named aggregation over shard probabilities ``(S, n, C)``."""
    return _AGGREGATIONS[check_aggregation(name)](probs)


@torch.no_grad()
def shard_proba(models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Every model's class probabilities on ``x``, shape ``(S, n, C)``, on the CPU."""
    out = []
    for model in models:
        device = next(model.parameters()).device
        out.append(torch.softmax(predict_logits(model, x.to(device)), dim=-1).cpu())
    return torch.stack(out)


def prediction_latency(model: nn.Module, x: torch.Tensor, repeats: int = 20) -> float:
    """Median wall time of one batched prediction (argmax of the logits) of a single ``model`` on ``x``:
    the other side of the SISA latency comparison (measured the same way as
    :meth:`SisaEnsemble.prediction_latency`)."""
    device = next(model.parameters()).device
    return median_time(lambda: predict_logits(model, x.to(device)).argmax(-1).cpu(), repeats)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"Expected `repeats` to be an int >= 1, but got {repeats!r}")
    fn()  # warm-up (allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
