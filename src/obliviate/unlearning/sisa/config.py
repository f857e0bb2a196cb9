"""SISA settings and the epoch budget over a shard's slices.

The paper's budget (Bourtoule et al., S&P 2021; reference code ``cleverhans-lab/machine-unlearning``,
``sisa.py``, where ``avg_epochs_per_slice = 2 R / (R + 1) * e / R`` and slice ``sl`` trains
``int((sl + 1) * avg) - int(sl * avg)`` epochs): an unsliced shard model would train ``e`` epochs; sliced, it
trains ``e' = 2R/(R+1) e`` epochs in all, spread over the ``R`` slices. Slice ``r`` trains on the union of
slices ``1..r`` (``r/R`` of the shard), so the total work is ``sum_r (r/R) e'/R = e`` epochs of the shard:
slicing costs what unsliced training costs (exactly when every slice gets the same whole number of epochs;
with the per-slice flooring within one epoch of it, e.g. e = 12, R = 4: 4/5/5/5 epochs, 12.25 of work).
The reference uses a constant learning rate (no scheduler); here the rate comes from ``training.schedule``
(default constant), whose progress spans a shard's ``R`` slices.

>>> SisaConfig(slices=4, epochs=5).slice_epochs()
(2, 2, 2, 2)
>>> SisaConfig(slices=3, epochs=5).slice_epochs()  # e' = 7.5 epochs, floored per slice as the reference does
(2, 3, 2)
>>> SisaConfig(slices=4, epochs=5, epochs_per_slice=5).slice_epochs()  # every slice 5 epochs: 12.5 epochs of work
(5, 5, 5, 5)
>>> SisaConfig(slices=4, epochs=5).speedup_ceiling()  # S (R + 1) / 2: a deletion in a last slice
12.5
>>> SisaConfig(shards=0)
Traceback (most recent call last):
...
obliviate.errors.ConfigError: Expected `shards` to be an int >= 1, but got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...training.config import RunConfig, TrainingConfig
from .prediction import check_aggregation


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and small non-negative integers, stable across platforms."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


# salts of the derived seeds: one stream per purpose and shard
SALT_INIT, SALT_ORDER = 2, 3


def _constant_training() -> TrainingConfig:
    return TrainingConfig(schedule="constant")


@dataclass(frozen=True)
class SisaConfig:
    """Settings of a SISA ensemble.

    ``epochs`` is ``e``, the epochs an unsliced shard model would train; with ``epochs_per_slice = 0`` (the
    default) the shard trains the paper's ``e' = 2R/(R+1) e`` epochs spread over its slices
    (:meth:`slice_epochs`), so slicing costs what unsliced training costs. ``epochs_per_slice = n >= 1``
    trains every slice ``n`` epochs instead (``(R+1)/2 n`` epochs of work: the costlier variant docs/sisa.md
    compares). ``training`` supplies the optimizer, learning rate and its schedule (default constant, as in
    the reference code), batch size and weight decay; its ``blocks``, ``epochs_per_block``, ``partition``,
    ``order_file`` and ``seed`` are not used: ``slices``, the epoch budget and ``seed`` take their place.
    Every shard has its own seeds (initial weights, minibatch order) derived from ``(seed, shard)``; a
    ``model_factory`` that seeds itself (``build_model(..., seed=...)``) overrides the init seed and gives
    every shard the same initial weights, so pass an unseeded one.
    """

    shards: int = 5
    slices: int = 4
    epochs: int = 5
    epochs_per_slice: int = 0
    aggregation: str = "vote"
    training: TrainingConfig = field(default_factory=_constant_training)
    seed: int = 0

    def __post_init__(self) -> None:
        for key, low in (("shards", 1), ("slices", 1), ("epochs", 1), ("epochs_per_slice", 0), ("seed", 0)):
            value = getattr(self, key)
            if not is_int(value) or value < low:
                raise ConfigError(f"Expected `{key}` to be an int >= {low}, but got {value!r}")
        if not self.epochs_per_slice and 2 * self.epochs < self.slices + 1:
            raise ConfigError(f"Expected `epochs` to be at least (slices + 1) / 2 = {(self.slices + 1) / 2:g} so "
                              f"that every slice trains at least one epoch of the paper's budget, but got "
                              f"{self.epochs}; raise `epochs` or lower `slices`")
        check_aggregation(self.aggregation)
        if not isinstance(self.training, TrainingConfig):
            raise ConfigError(f"Expected `training` to be an obliviate.training.config.TrainingConfig, "
                              f"but got {type(self.training).__name__}")
        # the run config's checks of the training keys, in the same words (keys SISA ignores neutralised)
        RunConfig(training=dataclasses.replace(self.training, blocks=1, partition="random", order_file=""))

    def slice_epochs(self) -> tuple[int, ...]:
        """Epochs trained on each slice ``1..R`` (on the union of slices ``1..r``)."""
        R = self.slices
        if self.epochs_per_slice:
            return (self.epochs_per_slice,) * R
        # floor(r * a) - floor((r - 1) * a) with a = 2e / (R + 1), in exact integer arithmetic
        return tuple((2 * r * self.epochs) // (R + 1) - (2 * (r - 1) * self.epochs) // (R + 1)
                     for r in range(1, R + 1))

    def speedup_ceiling(self) -> float:
        """The analytical ceiling ``S (R + 1) / 2`` of one deletion's speedup against training the whole
        ensemble from scratch: the deletion lies in a last slice, and only that slice is retrained (exact for
        equal-sized shards and slices and equal epochs per slice; :meth:`analytical_speedup` gives any
        position under the actual epochs)."""
        return self.shards * (self.slices + 1) / 2

    def analytical_speedup(self, slice_index: int) -> float:
        """Sample-epochs of training the whole ensemble over those of retraining one shard from
        ``slice_index`` (1-based), for equal-sized shards and slices."""
        epochs = self.slice_epochs()
        cost = [r * e for r, e in enumerate(epochs, 1)]  # in units of (slice size x epoch)
        return self.shards * sum(cost) / sum(cost[slice_index - 1:])

    def shard_training(self, shard: int, slice_index: int) -> TrainingConfig:
        """The :class:`TrainingConfig` that ``train_block`` gets for ``shard``'s slice ``slice_index``."""
        return dataclasses.replace(self.training, blocks=self.slices,
                                   epochs_per_block=self.slice_epochs()[slice_index - 1],
                                   seed=derive_seed(self.seed, SALT_ORDER, shard))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SisaConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise ConfigError(f"unknown SISA key(s) {unknown}; allowed keys: {', '.join(names)}")
        values = dict(raw)
        if isinstance(values.get("training"), dict):
            tnames = {f.name for f in dataclasses.fields(TrainingConfig)}
            bad = sorted(set(values["training"]) - tnames)
            if bad:
                raise ConfigError(f"unknown key(s) {bad} in `training`; allowed keys: {', '.join(sorted(tnames))}")
            values["training"] = TrainingConfig(**values["training"])
        return cls(**values)
