"""The victim's prediction API, as an extraction attacker reaches it: a function that counts calls.

Output modes follow the mitigations the survey lists for extraction (Tramer et al. 2016 discuss each):
``scores`` (full probability vectors), ``rounded`` (probabilities rounded to ``decimals``), ``topk``
(only the ``k`` largest probabilities, the rest zero) and ``labels`` (the argmax only).

>>> import torch
>>> q = QueryFunction(torch.nn.Linear(3, 4), output="labels")
>>> q(torch.zeros(5, 3)).shape, q.queries, q.calls
(torch.Size([5]), 5, 1)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..base import check_choice, check_int

OUTPUTS = ("scores", "rounded", "topk", "labels")


class QueryBudgetExceeded(ConfigError):
    """An attack asked the victim more than its query budget allows."""


class QueryFunction:
    """Query ``model`` with a batch; returns labels (int64) or probability rows (float), by ``output``.

    ``queries`` counts samples, ``calls`` batches; with ``budget`` set, a query that would pass it raises
    :class:`QueryBudgetExceeded`.
    """

    def __init__(self, model: nn.Module, *, output: str = "scores", k: int = 1, decimals: int = 2,
                 budget: int | None = None) -> None:
        self._model = model
        self.output = check_choice("output", output, OUTPUTS)
        self.k = check_int("k", k, 1)
        self.decimals = check_int("decimals", decimals, 0)
        self.budget = None if budget is None else check_int("budget", budget, 1)
        self.queries = 0
        self.calls = 0

    @property
    def returns_scores(self) -> bool:
        return self.output != "labels"

    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.queries

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        if self.budget is not None and self.queries + n > self.budget:
            raise QueryBudgetExceeded(f"query budget of {self.budget} exceeded: {self.queries} used, "
                                      f"{n} more asked; raise `budget` or query less")
        self.queries += n
        self.calls += 1
        logits: torch.Tensor = self._model(x)
        if self.output == "labels":
            return logits.argmax(1)
        p = F.softmax(logits, 1)
        if self.output == "rounded":
            scale = 10.0 ** self.decimals
            return torch.round(p * scale) / scale
        if self.output == "topk":
            k = min(self.k, p.shape[1])
            top = p.topk(k, dim=1)
            return torch.zeros_like(p).scatter_(1, top.indices, top.values)
        return p

    def describe(self) -> str:
        extra: dict[str, Any] = {"topk": f"k={self.k}", "rounded": f"decimals={self.decimals}"}
        return self.output + (f"({extra[self.output]})" if self.output in extra else "")
