"""Blended backdoor (Chen, Liu, Li, Lu and Song, "Targeted Backdoor Attacks on Deep Learning Systems
Using Data Poisoning", 2017): a fixed random pattern blended into the whole input."""

from __future__ import annotations

from ...data.triggers import BlendTrigger
from ..registry import register_attack
from ._base import BackdoorAttack


@register_attack("blended")
class Blended(BackdoorAttack):
    """``(1 - alpha) x + alpha p`` with a fixed random pattern ``p`` (the shared
    :class:`~obliviate.data.triggers.BlendTrigger`, pattern seeded by ``pattern_seed``).

    >>> Blended(alpha=0.2).trigger.alpha
    0.2
    """

    def __init__(self, *, alpha: float = 0.2, pattern_seed: int = 0, target_class: int = 0,
                 poison_rate: float = 0.05, epochs: int = 15, batch_size: int = 64, lr: float = 1e-3,
                 mode: str = "retrain",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(target_class=target_class, poison_rate=poison_rate, epochs=epochs,
                         batch_size=batch_size, lr=lr, mode=mode, bounds=bounds, seed=seed, max_samples=max_samples)
        self.trigger = BlendTrigger(alpha=alpha, seed=pattern_seed)
        self.alpha, self.pattern_seed = alpha, pattern_seed
