"""Clean-label poisoning by feature collision (Shafahi et al., "Poison Frogs! Targeted Clean-Label
Poisoning Attacks on Neural Networks", NeurIPS 2018)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...data.base import IndexedDataset
from ...errors import ConfigError
from .._train import fit, fresh_copy
from ..base import AuditData, ThreatModel, check_choice, check_float, check_int, model_device
from ..metrics import accuracy
from ..registry import register_attack
from ._base import PoisoningAttack, _on

FC_MODES = ("head", "finetune")


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ConfigError("feature collision needs a model whose last layer is nn.Linear (its input is the "
                          "feature space the poisons collide in)")
    return last


class _Features:
    """The input of the model's last linear layer (the penultimate features), via a forward hook."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.head = _last_linear(model)
        self._out: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
            self._out = inp[0]
        handle = self.head.register_forward_pre_hook(hook)
        try:
            self.model(x)
        finally:
            handle.remove()
        out, self._out = self._out, None
        return out  # type: ignore[return-value]


@register_attack("feature_collision")
class FeatureCollision(PoisoningAttack):
    """Poison frogs: for each of ``n_targets`` correctly classified test inputs, take ``poisons_per_target``
    training inputs of another (``base_class`` or random) class nearest to it, and move them to collide
    with the target in feature space while staying close to themselves:
    ``min_p ||f(p) - f(t)||^2 + beta ||p - b||^2`` by forward-backward splitting (``steps`` steps of rate
    ``lr``). The poisons keep their correct labels and replace their bases. The victim then retrains its
    last layer on the poisoned set (``mode="head"``, the paper's transfer-learning case) or fine-tunes
    all layers (``"finetune"``) for ``epochs``; success is the fraction of targets classified as the base
    class, robust accuracy the fraction still correct; the clean accuracy drop is averaged over targets.
    ``feature_distance_ratio`` is the poisons' mean feature distance to their target over their bases'
    (how well they collide). ``lr`` suits inputs in [0, 1]; the victim's recipe is ``epochs`` of Adam
    at ``fit_lr``.

    >>> FeatureCollision(n_targets=2).threat_model().goal
    'integrity'
    """

    goal = "integrity"

    def __init__(self, *, n_targets: int = 5, poisons_per_target: int = 10, base_class: int | None = None,
                 beta: float = 0.25, steps: int = 200, lr: float = 0.003, epochs: int = 20, batch_size: int = 64,
                 fit_lr: float = 1e-2, mode: str = "head",
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        super().__init__(poison_rate=1.0, epochs=epochs, batch_size=batch_size, lr=fit_lr, mode="finetune",
                         bounds=bounds, seed=seed, max_samples=max_samples)
        self.n_targets = check_int("n_targets", n_targets, 1)
        self.poisons_per_target = check_int("poisons_per_target", poisons_per_target, 1)
        self.base_class = None if base_class is None else check_int("base_class", base_class, 0)
        self.beta = check_float("beta", beta, 0.0, None)
        self.steps = check_int("steps", steps, 1)
        self.lr = check_float("lr", lr, 0.0, None, lo_open=True)
        self.fit_lr = check_float("fit_lr", fit_lr, 0.0, None, lo_open=True)
        self.mode = check_choice("mode", mode, FC_MODES)
        self.poison_rate = None  # type: ignore[assignment]  # poisons_per_target / len(train), known at call time

    def threat_model(self) -> ThreatModel:
        return ThreatModel("white-box", "integrity", {"poisons_per_target": self.poisons_per_target,
                                                      "targets": self.n_targets})

    def poison(self, train: IndexedDataset) -> tuple[IndexedDataset, torch.Tensor]:  # pragma: no cover
        raise ConfigError("feature collision poisons per target; call the attack instead")

    def evaluate(self, poisoned: nn.Module, clean: nn.Module, test: IndexedDataset) -> tuple[float, float]:
        raise ConfigError("feature collision evaluates per target; call the attack instead")  # pragma: no cover

    def craft(self, feats: _Features, bases: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Forward-backward splitting (Shafahi et al., Algorithm 1) for a batch of ``(base, target)`` pairs."""
        lo, hi = self.bounds
        with torch.no_grad():
            ft = feats(targets)
        # the paper scales beta by (feature dim / input dim)^2 so the two terms weigh alike
        beta = self.beta * (ft[0].numel() / bases[0].numel()) ** 2
        p = bases.clone()
        for _ in range(self.steps):
            p.requires_grad_(True)
            loss = (feats(p) - ft).pow(2).sum()
            (g,) = torch.autograd.grad(loss, p)
            with torch.no_grad():
                p = p - self.lr * g
                p = ((p + self.lr * beta * bases) / (1 + self.lr * beta)).clamp(lo, hi)
        return p.detach()

    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        dev = model_device(model)
        train = _on(data.train, dev)
        test = _on(self._subset(data.test), dev)
        k = train.num_classes
        feats = _Features(model)
        with torch.no_grad():
            pred = model(test.x).argmax(1)
        right = (pred == test.y).nonzero().squeeze(1)
        targets = right[torch.randperm(len(right), device=dev)[: self.n_targets]]
        if len(targets) == 0:
            raise ConfigError("the model classifies no test input correctly; feature collision needs targets")
        before = accuracy(model, test.x, test.y)
        # choose every target's base class and bases first, then craft all poisons in one batch
        plans = []
        for t in targets.tolist():
            t_cls = int(test.y[t])
            base_cls = self.base_class if self.base_class is not None else int(
                (t_cls + torch.randint(1, k, ()).item()) % k)
            if base_cls == t_cls or base_cls >= k:
                raise ConfigError(f"Expected `base_class` to differ from the target's class {t_cls} and be "
                                  f"below {k}, but got {base_cls}")
            cand = (train.y == base_cls).nonzero().squeeze(1)
            d = (train.x[cand] - test.x[t]).flatten(1).norm(dim=1)
            plans.append((t, t_cls, base_cls, cand[d.argsort()[: self.poisons_per_target]]))
        all_pos = torch.cat([p[3] for p in plans])
        all_targets = torch.cat([test.x[p[0]:p[0] + 1].expand(len(p[3]), *test.x.shape[1:]) for p in plans])
        crafted = self.craft(feats, train.x[all_pos], all_targets)
        with torch.no_grad():
            ft = feats(all_targets)
            ratio = float((feats(crafted) - ft).norm(dim=1).mean()
                          / (feats(train.x[all_pos]) - ft).norm(dim=1).mean().clamp_min(1e-12))
        successes, robust, drops, positions = [], [], [], []
        start = 0
        for t, t_cls, base_cls, pos in plans:
            poisons = crafted[start:start + len(pos)]
            start += len(pos)
            x = train.x.clone()
            x[pos] = poisons
            victim = self._retrain(model, feats, x, train.y)
            with torch.no_grad():
                p_t = int(victim(test.x[t:t + 1]).argmax(1))
            successes.append(float(p_t == base_cls))
            robust.append(float(p_t == t_cls))
            others = torch.ones(len(test), dtype=torch.bool, device=dev)
            others[t] = False
            drops.append(before - accuracy(victim, test.x[others], test.y[others]))
            positions.append(pos)
        n = len(targets)
        metrics = {"poison_rate": self.poisons_per_target / len(train), "poisoned": self.poisons_per_target,
                   "targets": n, "attack_success": sum(successes) / n, "robust_accuracy": sum(robust) / n,
                   "clean_accuracy_before": before, "clean_accuracy": before - sum(drops) / n,
                   "clean_accuracy_drop": sum(drops) / n, "feature_distance_ratio": ratio}
        return metrics, {"targets": targets, "positions": positions}

    def _retrain(self, model: nn.Module, feats: _Features, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
        victim = fresh_copy(model, reinit=False)
        if self.mode == "finetune":
            return fit(victim, x, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.fit_lr)
        head = _last_linear(victim)
        victim.requires_grad_(False)
        head.requires_grad_(True)
        with torch.no_grad():
            f = _Features(victim)(x)
        # train only the head, on precomputed features (the frozen body gives the same features)
        fit(head, f, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.fit_lr)
        victim.eval()
        return victim
