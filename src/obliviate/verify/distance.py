"""How close is an unlearned model to the exact retrain, and is that closer than retraining noise?

The project's yardstick (design note "How quality is judged"): the reference is the exact retrain; a
candidate is good when it is as close to it as two exact retrains differing only in their data-order
seed are to each other (the noise floor). :func:`model_distance` measures one pair;
:class:`NoiseFloor` compares the candidate's distance with the floor's, metric by metric.

>>> import torch
>>> from obliviate.data import IndexedDataset
>>> test = IndexedDataset(torch.arange(2), torch.eye(2), torch.tensor([0, 1]), 2)
>>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
>>> d = model_distance(a, a, {"test": test})
>>> d.agreement["test"], d.js_divergence["test"], d.parameter_l2
(1.0, 0.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError
from .outputs import _check_batch_size, model_confidences
from .metrics import js_divergence, parameter_distance, prediction_agreement

__all__ = ["FloorCheck", "ModelDistance", "NoiseFloor", "NoiseFloorComparison", "model_distance"]


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {k: _clean(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class ModelDistance:
    """A candidate model against a reference, per named dataset (e.g. ``forget``, ``retain``, ``test``).

    ``accuracy`` / ``reference_accuracy``: each model's accuracy on the dataset's labels;
    ``agreement``: fraction of identical predictions; ``js_divergence``: mean Jensen-Shannon divergence
    (nats) between the predicted distributions; ``parameter_l2`` (and ``parameter_l2_relative``, divided
    by the reference's norm): None when the two models' state dicts do not match.
    """

    accuracy: dict[str, float]
    reference_accuracy: dict[str, float]
    agreement: dict[str, float]
    js_divergence: dict[str, float]
    parameter_l2: float | None
    parameter_l2_relative: float | None

    @property
    def accuracy_gap(self) -> dict[str, float]:
        """Candidate accuracy minus reference accuracy, per dataset."""
        return {k: self.accuracy[k] - self.reference_accuracy[k] for k in self.accuracy}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _clean({
            "accuracy": dict(self.accuracy), "reference_accuracy": dict(self.reference_accuracy),
            "accuracy_gap": self.accuracy_gap, "agreement": dict(self.agreement),
            "js_divergence": dict(self.js_divergence), "parameter_l2": self.parameter_l2,
            "parameter_l2_relative": self.parameter_l2_relative})
        return out


def _check_datasets(datasets: Mapping[str, IndexedDataset]) -> None:
    if not isinstance(datasets, Mapping) or not datasets:
        raise ConfigError("Expected `datasets` to be a non-empty mapping of names to IndexedDataset, e.g. "
                          "{'forget': ..., 'retain': ..., 'test': ...}")
    for name, ds in datasets.items():
        if not isinstance(ds, IndexedDataset):
            raise ConfigError(f"Expected datasets[{name!r}] to be an IndexedDataset, but got {type(ds).__name__}")
        if len(ds) == 0:
            raise ConfigError(f"datasets[{name!r}] is empty; drop it or give it samples")


def model_distance(candidate: nn.Module, reference: nn.Module, datasets: Mapping[str, IndexedDataset], *,
                   batch_size: int = 512, parameters: bool = True) -> ModelDistance:
    """Distance of ``candidate`` to ``reference`` (the exact retrain) on each named dataset, and in
    parameter space when ``parameters`` and the state dicts match. Models keep their train/eval mode."""
    _check_datasets(datasets)
    _check_batch_size(batch_size)
    acc, ref_acc, agree, js = {}, {}, {}, {}
    for name, ds in datasets.items():
        oc = model_confidences(candidate, ds, batch_size)
        orf = model_confidences(reference, ds, batch_size)
        acc[name] = float(np.mean(oc.predictions == oc.labels))
        ref_acc[name] = float(np.mean(orf.predictions == orf.labels))
        agree[name] = prediction_agreement(oc.predictions, orf.predictions)
        js[name] = float(js_divergence(oc.logits, orf.logits, from_logits=True))
    l2 = rel = None
    if parameters:
        try:
            l2 = parameter_distance(candidate, reference)
            rel = parameter_distance(candidate, reference, relative=True)
        except ConfigError:  # different architectures: no parameter distance
            l2 = rel = None
    return ModelDistance(acc, ref_acc, agree, js, l2, rel)


@dataclass(frozen=True)
class FloorCheck:
    """One metric on one dataset: the candidate's value, the floor's, the allowed bound, and whether the
    candidate is within it."""

    metric: str
    dataset: str
    candidate: float
    floor: float
    bound: float
    within: bool

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _clean({"metric": self.metric, "dataset": self.dataset, "candidate": self.candidate,
                                      "floor": self.floor, "bound": self.bound, "within": self.within})
        return out


@dataclass(frozen=True)
class NoiseFloorComparison:
    """The candidate's distance to the reference, the floor (second reference to reference), and the
    per-metric checks. ``within_floor`` is True when every check is."""

    candidate: ModelDistance
    floor: ModelDistance
    checks: list[FloorCheck] = field(default_factory=list)

    @property
    def within_floor(self) -> bool:
        return all(c.within for c in self.checks)

    def failed(self) -> list[FloorCheck]:
        return [c for c in self.checks if not c.within]

    def to_dict(self) -> dict[str, Any]:
        return {"within_floor": self.within_floor, "candidate": self.candidate.to_dict(),
                "floor": self.floor.to_dict(), "checks": [c.to_dict() for c in self.checks]}


class NoiseFloor:
    """Compare a candidate with the noise floor measured between two independent exact retrains
    (``reference`` and ``second_reference``, e.g. differing only in their data-order seed).

    Per dataset, the candidate is within the floor when
    - accuracy: ``|acc(candidate) - acc(reference)| <= max(|acc(second) - acc(reference)|, accuracy_tolerance)``
      (the design's "within 0.5 points" is the default tolerance);
    - agreement with the reference ``>= floor agreement - agreement_slack``;
    - JS divergence to the reference ``<= floor JS + js_slack``;
    and, when ``check_parameters``, parameter L2 to the reference ``<= floor L2 * (1 + parameter_slack)``
    (off by default: weight-space distance between retrains mostly measures symmetries and seeds).

    >>> NoiseFloor(accuracy_tolerance=0.01).accuracy_tolerance
    0.01
    """

    def __init__(self, *, accuracy_tolerance: float = 0.005, agreement_slack: float = 0.0, js_slack: float = 0.0,
                 check_parameters: bool = False, parameter_slack: float = 0.0, batch_size: int = 512) -> None:
        for name, v in (("accuracy_tolerance", accuracy_tolerance), ("agreement_slack", agreement_slack),
                        ("js_slack", js_slack), ("parameter_slack", parameter_slack)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ConfigError(f"Expected argument `{name}` to be a float >= 0, but got {v!r}")
        self.accuracy_tolerance = float(accuracy_tolerance)
        self.agreement_slack = float(agreement_slack)
        self.js_slack = float(js_slack)
        self.check_parameters = bool(check_parameters)
        self.parameter_slack = float(parameter_slack)
        self.batch_size = _check_batch_size(batch_size)

    def compare(self, candidate: nn.Module, reference: nn.Module, second_reference: nn.Module,
                datasets: Mapping[str, IndexedDataset]) -> NoiseFloorComparison:
        """Measure candidate-to-reference and floor (second reference-to-reference) and check each metric."""
        cand = model_distance(candidate, reference, datasets, batch_size=self.batch_size,
                              parameters=self.check_parameters)
        floor = model_distance(second_reference, reference, datasets, batch_size=self.batch_size,
                               parameters=self.check_parameters)
        return self.compare_distances(cand, floor)

    def compare_distances(self, cand: ModelDistance, floor: ModelDistance) -> NoiseFloorComparison:
        """The checks on precomputed distances (candidate's and the floor's, against the same reference)."""
        if set(cand.accuracy) != set(floor.accuracy):
            raise ConfigError("Expected the candidate's and the floor's distances on the same datasets")
        checks: list[FloorCheck] = []
        for name in cand.accuracy:
            c_gap, f_gap = abs(cand.accuracy_gap[name]), abs(floor.accuracy_gap[name])
            bound = max(f_gap, self.accuracy_tolerance)
            checks.append(FloorCheck("accuracy_gap", name, c_gap, f_gap, bound, c_gap <= bound + 1e-12))
            bound = floor.agreement[name] - self.agreement_slack
            checks.append(FloorCheck("agreement", name, cand.agreement[name], floor.agreement[name], bound,
                                     cand.agreement[name] >= bound - 1e-12))
            bound = floor.js_divergence[name] + self.js_slack
            checks.append(FloorCheck("js_divergence", name, cand.js_divergence[name], floor.js_divergence[name],
                                     bound, cand.js_divergence[name] <= bound + 1e-12))
        if self.check_parameters:
            if cand.parameter_l2 is None or floor.parameter_l2 is None:
                raise ConfigError("check_parameters=True needs models with matching state dicts")
            bound = floor.parameter_l2 * (1.0 + self.parameter_slack)
            checks.append(FloorCheck("parameter_l2", "parameters", cand.parameter_l2, floor.parameter_l2, bound,
                                     cand.parameter_l2 <= bound + 1e-12))
        return NoiseFloorComparison(cand, floor, checks)
