"""The extraction family base: the victim only through a counting query function; copies measured.

A concrete attack writes :meth:`ExtractionAttack.extract`, which sees a :class:`QueryFunction` (never
the model), the attacker's pool and a copy template, and returns the copy. The base then measures the
copy's accuracy and its fidelity (agreement with the victim) on held-out data the attacker never
queried, and the queries used.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from ...data.base import IndexedDataset
from ...models import build_model
from ..base import Attack, AuditData, ThreatModel, check_choice, check_int, model_device
from ..metrics import accuracy, agreement
from .query import OUTPUTS, QueryFunction


class ExtractionAttack(Attack):
    """Base of the extraction attacks: ``output`` (what the victim's API returns: one of ``scores``,
    ``rounded``, ``topk``, ``labels``), ``k`` and ``decimals`` for those modes, ``queries`` (the budget)
    and ``architecture`` (a registered model name for the copy; ``None`` = the victim's own architecture,
    freshly initialised)."""

    family = "extraction"
    knowledge = "score-based"
    needs_scores = False

    def __init__(self, *, queries: int | None = 1000, output: str = "scores", k: int = 1, decimals: int = 2,
                 architecture: str | None = None,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(bounds=bounds, seed=seed, max_samples=max_samples)
        self.queries = None if queries is None else check_int("queries", queries, 1)
        self.output = check_choice("output", output, OUTPUTS)
        if self.needs_scores and self.output == "labels":
            from ...errors import ConfigError

            raise ConfigError(f"attack {self.name!r} needs scores from the victim; choose output "
                              f"among {', '.join(o for o in OUTPUTS if o != 'labels')}")
        self.k = check_int("k", k, 1)
        self.decimals = check_int("decimals", decimals, 0)
        self.architecture = architecture

    def threat_model(self) -> ThreatModel:
        know = "label-only" if self.output == "labels" else "score-based"
        return ThreatModel(know, "confidentiality", {"queries": self.queries, "output": self.output})

    @abc.abstractmethod
    def extract(self, query: QueryFunction, pool: IndexedDataset, template: nn.Module) -> nn.Module:
        """Build and return a copy of the victim using only ``query`` and the attacker's ``pool``."""

    def _split(self, data: AuditData) -> tuple[IndexedDataset, IndexedDataset]:
        if data.pool is not None:
            return data.pool, self._subset(data.test)
        g = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(len(data.test), generator=g)
        half = len(perm) // 2
        return data.test.take(perm[:half]), self._subset(data.test.take(perm[half:]))

    def _template(self, model: nn.Module, data: AuditData) -> nn.Module:
        if self.architecture is None:
            return model
        return build_model(self.architecture, data.input_shape, data.num_classes, seed=self.seed)

    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        pool, held_out = self._split(data)
        dev = model_device(model)
        pool = IndexedDataset(pool.ids, pool.x.to(dev), pool.y.to(dev), pool.num_classes, pool.name)
        query = QueryFunction(model, output=self.output, k=self.k, decimals=self.decimals, budget=self.queries)
        copy = self.extract(query, pool, self._template(model, data))
        copy.eval()
        x, y = held_out.x.to(dev), held_out.y.to(dev)
        metrics: dict[str, Any] = {
            "queries": query.queries, "query_calls": query.calls,
            "copy_accuracy": accuracy(copy, x, y), "victim_accuracy": accuracy(model, x, y),
            "fidelity": agreement(copy, model, x), "output": query.describe(), "n": len(held_out)}
        metrics.update(self.extra_metrics(model, copy))
        return metrics, {"copy": copy}

    def extra_metrics(self, model: nn.Module, copy: nn.Module) -> dict[str, Any]:
        """Owner-side measurements beyond the family's (e.g. parameter error); none by default."""
        return {}
