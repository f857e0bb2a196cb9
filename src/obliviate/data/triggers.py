"""Backdoor triggers stamped on images: shared by canaries (verification) and poisoning (audit).

>>> import torch
>>> x = torch.zeros(2, 1, 8, 8)
>>> stamped = PatchTrigger(size=2).apply(x)
>>> float(stamped[0, 0, -1, -1]), float(stamped[0, 0, 0, 0])
(1.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class PatchTrigger:
    """A solid square of ``value`` in a corner (BadNets, Gu et al. 2017); ``corner`` is one of
    ``"br"``, ``"bl"``, ``"tr"``, ``"tl"``."""

    size: int = 2
    value: float = 1.0
    corner: str = "br"
    pattern: str = "solid"  # "solid" or "checker" (alternating value and 0: rarer in natural images)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"Expected trigger size to be a positive int, but got {self.size}")
        if self.corner not in ("br", "bl", "tr", "tl"):
            raise ConfigError(f"Expected corner in br, bl, tr, tl, but got {self.corner!r}")
        if self.pattern not in ("solid", "checker"):
            raise ConfigError(f"Expected pattern in solid, checker, but got {self.pattern!r}")

    def mask(self, shape: tuple[int, ...]) -> torch.Tensor:
        """1 where the trigger sits, for an input of shape ``(C, H, W)``."""
        _, h, w = shape[-3:]
        if self.size > min(h, w):
            raise ConfigError(f"trigger size {self.size} does not fit inputs of size {h}x{w}")
        m = torch.zeros(shape[-3:])
        rows = slice(h - self.size, h) if self.corner[0] == "b" else slice(0, self.size)
        cols = slice(w - self.size, w) if self.corner[1] == "r" else slice(0, self.size)
        m[:, rows, cols] = 1.0
        return m

    def stamp(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The trigger's pixel values (zero outside the mask)."""
        m = self.mask(shape)
        if self.pattern == "checker":
            h, w = m.shape[-2:]
            checker = ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 0).float()
            return m * checker * self.value
        return m * self.value

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        m = self.mask(shape)
        return x * (1 - m) + self.stamp(shape).to(x)


@dataclass(frozen=True)
class BlendTrigger:
    """Blend a fixed random pattern into the whole input: ``(1 - alpha) x + alpha p`` (Chen et al. 2017)."""

    alpha: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ConfigError(f"Expected argument `alpha` to be a float in (0, 1], but got {self.alpha}")

    def pattern(self, shape: tuple[int, ...]) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        return torch.rand(shape, generator=g)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pattern(tuple(x.shape[1:])).to(x)
        return (1 - self.alpha) * x + self.alpha * p


def plant_backdoor(dataset, ids, trigger, target: int):  # type: ignore[no-untyped-def]
    """Stamp ``trigger`` on the samples with the given ids and relabel them to ``target``.

    Returns a new :class:`~obliviate.data.base.IndexedDataset`; every other sample is untouched.

    >>> import torch
    >>> from obliviate.data.base import IndexedDataset
    >>> ds = IndexedDataset(torch.arange(3), torch.zeros(3, 1, 4, 4), torch.tensor([1, 2, 3]), 4, "toy")
    >>> out = plant_backdoor(ds, [1], PatchTrigger(size=1), target=0)
    >>> out.y.tolist(), float(out.x[1].sum()), float(out.x[0].sum())
    ([1, 0, 3], 1.0, 0.0)
    """
    if not 0 <= target < dataset.num_classes:
        raise ConfigError(f"Expected canary target in [0, {dataset.num_classes}), but got {target}")
    pos = dataset.positions(ids)
    x, y = dataset.x.clone(), dataset.y.clone()
    x[pos] = trigger.apply(x[pos])
    y[pos] = target
    return dataset.with_data(x, y)
