"""BadNets (Gu, Dolan-Gavitt and Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning
Model Supply Chain", 2017): a patch trigger, poisoned labels."""

from __future__ import annotations

from ...data.triggers import PatchTrigger
from ..registry import register_attack
from ._base import BackdoorAttack


@register_attack("badnets")
class BadNets(BackdoorAttack):
    """A solid ``size`` x ``size`` patch of ``value`` in ``corner`` (the shared
    :class:`~obliviate.data.triggers.PatchTrigger`) on ``poison_rate`` of the training set, relabelled.

    >>> t = BadNets(size=2).trigger
    >>> t.size, t.value, t.corner
    (2, 1.0, 'br')
    """

    def __init__(self, *, size: int = 2, value: float = 1.0, corner: str = "br", target_class: int = 0,
                 poison_rate: float = 0.05, epochs: int = 15, batch_size: int = 64, lr: float = 1e-3,
                 mode: str = "retrain",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(target_class=target_class, poison_rate=poison_rate, epochs=epochs,
                         batch_size=batch_size, lr=lr, mode=mode, bounds=bounds, seed=seed, max_samples=max_samples)
        self.trigger = PatchTrigger(size=size, value=value, corner=corner)
        self.size, self.value, self.corner = size, value, corner
