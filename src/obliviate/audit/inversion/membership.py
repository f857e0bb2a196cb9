"""Membership inference in the audit: a wrapper over the verification package's loss-threshold attack
(Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in Machine Learning", CSF 2018).

The attack itself lives in :mod:`obliviate.verify.membership` (shared with verification); it is imported
when the wrapper runs, so the audit works without it until then.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..base import Attack, AuditData, ThreatModel
from ..registry import register_attack


@register_attack("membership_loss")
class MembershipLoss(Attack):
    """Loss-threshold membership inference on ``max_samples`` training samples (members) against as many
    held-out samples (non-members), balanced; reports AUC, TPR at 1% and 0.1% FPR and advantage.
    ``threshold`` is passed to :class:`obliviate.verify.membership.LossThresholdAttack`.

    >>> MembershipLoss(max_samples=100).threat_model().knowledge
    'score-based'
    """

    family = "inversion"
    knowledge = "score-based"

    def __init__(self, *, threshold: str | float = "mean_member_loss",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = 1000) -> None:
        super().__init__(bounds=bounds, seed=seed, max_samples=max_samples)
        self.threshold = threshold

    def threat_model(self) -> ThreatModel:
        return ThreatModel("score-based", "confidentiality", {"members": self.max_samples})

    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            from ...verify.membership import LossThresholdAttack
        except ImportError as exc:
            raise ConfigError("the membership attack needs obliviate.verify.membership, which this "
                              f"installation lacks ({exc}); drop `membership_loss` from the attacks") from exc
        n = min(len(data.train), len(data.test))
        if self.max_samples is not None:
            n = min(n, self.max_samples)
        g = torch.Generator().manual_seed(self.seed)
        members = data.train.take(torch.randperm(len(data.train), generator=g)[:n])
        nonmembers = data.test.take(torch.randperm(len(data.test), generator=g)[:n])
        attack = LossThresholdAttack(threshold=self.threshold)
        result = attack.score(model, members, nonmembers)
        metrics = {"auc": float(result.auc), "tpr_at_1pct_fpr": float(result.tpr_at_1pct_fpr),
                   "tpr_at_0_1pct_fpr": float(result.tpr_at_0_1pct_fpr), "advantage": float(result.advantage),
                   "members": n}
        return metrics, {"membership": result}
