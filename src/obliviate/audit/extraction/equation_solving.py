"""Equation-solving extraction of softmax and logistic regression (Tramer, Zhang, Juels, Reiter and
Ristenpart, "Stealing Machine Learning Models via Prediction APIs", USENIX Security 2016, section 4.1)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from ...data.base import IndexedDataset
from ..base import check_float
from ..registry import register_attack
from ._base import ExtractionAttack
from .query import QueryFunction


@register_attack("equation_solving")
class EquationSolving(ExtractionAttack):
    """Recover a softmax (or logistic) regression from its probability outputs by solving linear equations.

    With scores ``p``, ``log p_k - log p_0 = (w_k - w_0) . x + (b_k - b_0)``: each query gives ``K - 1``
    equations in the ``(K - 1)(d + 1)`` identifiable unknowns (softmax does not change when every class
    gets the same added vector), so ``d + 1`` linearly independent queries suffice: the input at the lower
    bound and one step of ``scale`` along each feature. That is the minimum and the default
    (``queries=None``); a larger budget adds random inputs and solves by least squares (useful with
    ``rounded`` outputs). The copy is a softmax regression with class 0's parameters at zero. For a
    victim made of one linear layer, ``param_rel_error`` reports the relative error of the recovered
    parameter differences; any other victim gets a ``UserWarning`` (the method does not apply) and
    ``linear_victim`` false.

    >>> import torch
    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> victim = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> r = EquationSolving()(victim, load_dataset("digits"))
    >>> r.metrics["queries"], r.metrics["fidelity"], r.metrics["param_rel_error"] < 1e-4
    (65, 1.0, True)
    """

    needs_scores = True

    def __init__(self, *, queries: int | None = None, output: str = "scores", k: int = 1, decimals: int = 2,
                 scale: float = 1.0,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(queries=queries, output=output, k=k, decimals=decimals, architecture=None,
                         bounds=bounds, seed=seed,
                         max_samples=max_samples)
        self.scale = check_float("scale", scale, 0.0, 1.0, lo_open=True)

    def extract(self, query: QueryFunction, pool: IndexedDataset, template: nn.Module) -> nn.Module:
        shape = pool.input_shape
        d = math.prod(shape)
        lo, hi = self.bounds
        dev = pool.x.device
        n = d + 1 if self.queries is None else max(self.queries, d + 1)
        if query.budget is not None and query.budget < d + 1:
            from ...errors import ConfigError

            raise ConfigError(f"equation solving needs at least d + 1 = {d + 1} queries for inputs of "
                              f"{d} features, but the budget is {query.budget}")
        basis = torch.cat([torch.zeros(1, d), torch.eye(d) * self.scale]) + lo
        extra = torch.rand(n - (d + 1), d) * (hi - lo) + lo
        xs = torch.cat([basis, extra]).clamp(lo, hi).to(dev)
        p = query(xs.view(n, *shape)).double()
        floor = 0.5 * 10.0 ** (-self.decimals) if self.output == "rounded" else 1e-300
        logp = p.clamp_min(floor).log()
        rhs = logp[:, 1:] - logp[:, :1]  # (n, K - 1)
        a = torch.cat([xs.double(), torch.ones(n, 1, dtype=torch.float64, device=dev)], 1)  # (n, d + 1)
        theta = torch.linalg.lstsq(a.cpu(), rhs.cpu()).solution  # (d + 1, K - 1)
        k = p.shape[1]
        linear = nn.Linear(d, k)
        copy = nn.Sequential(nn.Flatten(), linear).to(dev)  # moves `linear` in place
        with torch.no_grad():
            linear.weight.zero_()
            linear.bias.zero_()
            linear.weight[1:] = theta[:d].T.to(linear.weight)
            linear.bias[1:] = theta[d].to(linear.bias)
        self._theta = theta
        return copy

    def extra_metrics(self, model: nn.Module, copy: nn.Module) -> dict[str, Any]:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        others = [m for m in model.modules() if not isinstance(m, nn.Linear) and any(
            True for _ in m.parameters(recurse=False))]
        theta = getattr(self, "_theta", None)
        if len(linears) != 1 or others or theta is None or linears[0].bias is None:
            warnings.warn(f"equation solving assumes a softmax or logistic regression victim (one linear layer "
                          f"with bias), but the victim has {len(linears)} linear layer(s) and "
                          f"{len(others)} other parametrised module(s): the copy is a linear approximation "
                          "(expect low fidelity; no parameter error); use knockoff or jacobian for this victim",
                          UserWarning, stacklevel=2)
            return {"param_rel_error": math.nan, "linear_victim": False}
        w = linears[0].weight.detach().double().cpu()
        b = linears[0].bias.detach().double().cpu()
        if w.shape[0] == 1:  # logistic: the single logit is class 1 against class 0
            true = torch.cat([w, b[:, None]], 1)
        else:
            true = torch.cat([w[1:] - w[:1], (b[1:] - b[:1])[:, None]], 1)
        est = torch.cat([theta[:-1].T, theta[-1:].T], 1)
        return {"param_rel_error": float((est - true).norm() / true.norm().clamp_min(1e-300)),
                "linear_victim": True}
