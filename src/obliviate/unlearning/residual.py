"""Residual memory of deleted data, measured after every retrained block.

Parameter space: ``||Delta_k - Delta'_k||`` (L1 and L2), absolute and relative to ``||Delta_k||``,
where ``Delta_k`` is the stored update of block ``k`` and ``Delta'_k`` the retrained one.
Function space (scale-free, immune to weight symmetries): the mean total-variation distance between
the softmax outputs of ``theta_k`` (stored trajectory) and ``theta'_k`` (retrained) on a fixed probe
set of retained samples (this is also the *drift* between the two trajectories), and the gap in
cross-entropy on the deleted samples ``U``.

>>> import torch
>>> r = parameter_residual({"w": torch.ones(4)}, {"w": torch.zeros(4)})
>>> r["l1"], r["rel_l1"]
(4.0, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

import torch
import torch.nn.functional as F

State = dict[str, torch.Tensor]


class ParameterResidual(TypedDict):
    """What :func:`parameter_residual` returns (the parameter-space fields of :class:`BlockResidual`)."""

    l1: float
    l2: float
    rel_l1: float
    rel_l2: float


def parameter_residual(stored: State, retrained: State) -> ParameterResidual:
    """L1/L2 of ``stored - retrained`` over floating-point entries, absolute and relative to ``stored``
    (the difference in the tensors' own precision, the sums in double; all tensors at once)."""
    names = [k for k, a in stored.items() if a.is_floating_point()]
    if not names:
        return {"l1": 0.0, "l2": 0.0, "rel_l1": 0.0, "rel_l2": 0.0}
    a32 = torch.cat([stored[k].reshape(-1) for k in names])
    diff = (a32 - torch.cat([retrained[k].reshape(-1) for k in names])).double()
    a = a32.double()
    l1, l2sq, n1, n2sq = torch.stack([diff.abs().sum(), diff.dot(diff), a.abs().sum(), a.dot(a)]).tolist()
    l2, n2 = l2sq ** 0.5, n2sq ** 0.5
    return {"l1": l1, "l2": l2, "rel_l1": l1 / n1 if n1 else 0.0, "rel_l2": l2 / n2 if n2 else 0.0}


@torch.no_grad()
def function_residual(logits_stored: torch.Tensor, logits_retrained: torch.Tensor) -> float:
    """Mean total-variation distance between the two models' predictive distributions (0 to 1)."""
    if len(logits_stored) == 0:
        return 0.0
    p, q = F.softmax(logits_stored, 1), F.softmax(logits_retrained, 1)
    return float(0.5 * (p - q).abs().sum(1).mean())


@dataclass
class BlockResidual:
    """Residual memory of ``U`` after retraining block ``block``."""

    block: int
    area: str  # "deleted" (block held samples of U) or "affected" (after the last such block)
    l1: float
    l2: float
    rel_l1: float
    rel_l2: float
    probe_tv: float = float("nan")  # function-space drift on retained probe samples
    forget_loss_gap: float = float("nan")  # CE on U: retrained minus stored (positive: U forgotten)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
