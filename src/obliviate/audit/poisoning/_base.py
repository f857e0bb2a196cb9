"""The poisoning family base: corrupt the training data, train the victim on it, measure.

A concrete attack writes :meth:`PoisoningAttack.poison` (the corrupted training set) and
:meth:`PoisoningAttack.evaluate` (attack success and robust accuracy of the poisoned model). The base
trains a copy of the given model on the poisoned data with the attack's recipe (``mode="retrain"``: from
fresh weights, the same architecture; ``"finetune"``: from the given weights) and measures the clean
accuracy drop against the given model.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from ...data.base import IndexedDataset
from .._train import fit, fresh_copy
from ..base import Attack, AuditData, ThreatModel, check_choice, check_float, check_int, model_device
from ..metrics import accuracy

MODES = ("retrain", "finetune")


class PoisoningAttack(Attack):
    """Base of the poisoning attacks: ``poison_rate`` (fraction of the training set changed), the
    victim's training recipe (``epochs``, ``batch_size``, ``lr``: Adam) and ``mode``."""

    family = "poisoning"
    knowledge = "white-box"  # the attacker writes training data; it needs no access to the model
    goal = "backdoor"

    def __init__(self, *, poison_rate: float = 0.05, epochs: int = 15, batch_size: int = 64, lr: float = 1e-3,
                 mode: str = "retrain",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(bounds=bounds, seed=seed, max_samples=max_samples)
        self.poison_rate = check_float("poison_rate", poison_rate, 0.0, 1.0, lo_open=True)
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.lr = check_float("lr", lr, 0.0, None, lo_open=True)
        self.mode = check_choice("mode", mode, MODES)

    def threat_model(self) -> ThreatModel:
        return ThreatModel(self.knowledge, self.goal, {"poison_rate": self.poison_rate})

    @abc.abstractmethod
    def poison(self, train: IndexedDataset) -> tuple[IndexedDataset, torch.Tensor]:
        """The poisoned training set (same ids) and the positions of the poisoned samples."""

    @abc.abstractmethod
    def evaluate(self, poisoned: nn.Module, clean: nn.Module, test: IndexedDataset) -> tuple[float, float]:
        """``(attack_success, robust_accuracy)`` of the poisoned model on ``test``."""

    def n_poison(self, n: int) -> int:
        return max(1, round(self.poison_rate * n))

    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        dev = model_device(model)
        train = _on(data.train, dev)
        test = _on(self._subset(data.test), dev)
        poisoned_set, positions = self.poison(train)
        victim = fresh_copy(model, reinit=self.mode == "retrain")
        fit(victim, poisoned_set.x, poisoned_set.y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        before = accuracy(model, test.x, test.y)
        after = accuracy(victim, test.x, test.y)
        success, robust = self.evaluate(victim, model, test)
        metrics = {"poison_rate": len(positions) / len(train), "poisoned": len(positions),
                   "attack_success": success, "clean_accuracy": after, "clean_accuracy_before": before,
                   "clean_accuracy_drop": before - after, "robust_accuracy": robust}
        return metrics, {"poisoned_model": victim, "poisoned_train": poisoned_set, "positions": positions}


def _on(ds: IndexedDataset, dev: torch.device) -> IndexedDataset:
    return IndexedDataset(ds.ids, ds.x.to(dev), ds.y.to(dev), ds.num_classes, ds.name)


class BackdoorAttack(PoisoningAttack):
    """A trigger stamped on ``poison_rate`` of the training set (samples not of ``target_class``), relabelled
    ``target_class``. Success: triggered test inputs of other classes classified as the target; robust
    accuracy: triggered test inputs of other classes still on their true label."""

    trigger: Any

    def __init__(self, *, target_class: int = 0, poison_rate: float = 0.05, epochs: int = 15,
                 batch_size: int = 64, lr: float = 1e-3, mode: str = "retrain",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                 max_samples: int | None = None) -> None:
        super().__init__(poison_rate=poison_rate, epochs=epochs, batch_size=batch_size, lr=lr, mode=mode,
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.target_class = check_int("target_class", target_class, 0)

    def _check_target(self, k: int) -> None:
        if self.target_class >= k:
            check_int("target_class", self.target_class, 0, k - 1)

    def poison(self, train: IndexedDataset) -> tuple[IndexedDataset, torch.Tensor]:
        self._check_target(train.num_classes)
        candidates = (train.y != self.target_class).nonzero().squeeze(1)
        n = min(self.n_poison(len(train)), len(candidates))
        pos = candidates[torch.randperm(len(candidates), device=candidates.device)[:n]]
        x, y = train.x.clone(), train.y.clone()
        x[pos] = self.trigger.apply(x[pos])
        y[pos] = self.target_class
        return train.with_data(x, y), pos

    def evaluate(self, poisoned: nn.Module, clean: nn.Module, test: IndexedDataset) -> tuple[float, float]:
        keep = test.y != self.target_class
        xt = self.trigger.apply(test.x[keep])
        with torch.no_grad():
            pred = poisoned(xt).argmax(1)
        return float((pred == self.target_class).float().mean()), float((pred == test.y[keep]).float().mean())
