"""Label flipping (Biggio, Nelson and Laskov, "Support Vector Machines Under Adversarial Label Noise",
ACML 2011; Xiao et al. 2015): random flips (availability) or source-to-target flips (integrity)."""

from __future__ import annotations

import torch
from torch import nn

from ...data.base import IndexedDataset
from ...errors import ConfigError
from ..base import ThreatModel, check_int
from ..registry import register_attack
from ._base import PoisoningAttack


@register_attack("label_flip")
class LabelFlip(PoisoningAttack):
    """Flip ``poison_rate`` of the training labels.

    Without ``source``/``target``: each chosen label becomes a random other class (availability); success
    is the fraction of test inputs the given model got right that the poisoned one gets wrong, robust
    accuracy the poisoned model's accuracy. With both: labels of class ``source`` become ``target``
    (integrity); success is the fraction of ``source`` test inputs classified ``target``, robust accuracy
    the fraction still on ``source``.

    >>> LabelFlip(poison_rate=0.1).threat_model().goal
    'availability'
    """

    def __init__(self, *, source: int | None = None, target: int | None = None, poison_rate: float = 0.1,
                 epochs: int = 15, batch_size: int = 64, lr: float = 1e-3, mode: str = "retrain",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = None) -> None:
        super().__init__(poison_rate=poison_rate, epochs=epochs, batch_size=batch_size, lr=lr, mode=mode,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        if (source is None) != (target is None):
            raise ConfigError("Expected arguments `source` and `target` to be given together (a targeted "
                              "flip) or both left out (random flips)")
        self.source = None if source is None else check_int("source", source, 0)
        self.target = None if target is None else check_int("target", target, 0)
        if self.source is not None and self.source == self.target:
            raise ConfigError(f"Expected `source` and `target` to differ, but both are {self.source}")

    def threat_model(self) -> ThreatModel:
        goal = "availability" if self.source is None else "integrity"
        return ThreatModel(self.knowledge, goal, {"poison_rate": self.poison_rate})

    def poison(self, train: IndexedDataset) -> tuple[IndexedDataset, torch.Tensor]:
        k = train.num_classes
        y = train.y.clone()
        if self.source is None:
            n = self.n_poison(len(train))
            pos = torch.randperm(len(train), device=y.device)[:n]
            y[pos] = (y[pos] + torch.randint(1, k, (n,), device=y.device)) % k
        else:
            for name, v in (("source", self.source), ("target", self.target)):
                check_int(name, v, 0, k - 1)
            cand = (y == self.source).nonzero().squeeze(1)
            n = min(self.n_poison(len(train)), len(cand))
            pos = cand[torch.randperm(len(cand), device=y.device)[:n]]
            y[pos] = int(self.target)  # type: ignore[arg-type]
        return train.with_data(train.x, y), pos

    def evaluate(self, poisoned: nn.Module, clean: nn.Module, test: IndexedDataset) -> tuple[float, float]:
        with torch.no_grad():
            p_pred = poisoned(test.x).argmax(1)
            c_pred = clean(test.x).argmax(1)
        if self.source is None:
            was_right = c_pred == test.y
            success = float((p_pred[was_right] != test.y[was_right]).float().mean()) if bool(was_right.any()) else 0.0
            return success, float((p_pred == test.y).float().mean())
        src = test.y == self.source
        if not bool(src.any()):
            return float("nan"), float("nan")
        return float((p_pred[src] == self.target).float().mean()), float((p_pred[src] == self.source).float().mean())
