"""The trainer seam: what trains one minibatch, supplied by the user; the loop around it is the library's.

The library owns the block order, the seeds, the minibatch order of every ``(seed, block, epoch)``,
the learning rate of every step, recording and the chain; a :class:`Trainer` says how one minibatch
is trained, and the same trainer is called for recording, replay, ``exact``, the oracles and SISA.
Give it either

- ``loss``: a *per-sample* loss ``loss(logits, y) -> tensor of shape (batch,)`` for the built-in step
  (zero the gradients, forward, reduce, backward, step), or
- ``step``: a function ``step(model, optimizer, batch, info) -> loss`` doing the whole step itself
  (gradient clipping, several forward passes, ...). It must reduce its per-sample losses with
  :meth:`Batch.reduce`, which implements the deletion rule,

plus ``optimizer``: a factory ``params -> torch.optim.Optimizer`` (its ``lr`` is overwritten before
every step by the run's schedule). ``Trainer()`` is the built-in loop: cross-entropy and the optimizer
named in the config.

The deletion rule: a replay after a deletion draws minibatches over the block's *recorded* members
and leaves deleted samples out of theirs; the loss of such a minibatch keeps the recorded batch's
normaliser, ``sum of per-sample losses / recorded batch size`` (:attr:`Batch.normaliser`), so each
minibatch changes by exactly the deleted samples' terms.

A trainer given as an import path ``"pkg.mod:attr"`` (a :class:`Trainer`, or a function returning one)
is recorded in the manifest, and :func:`~obliviate.training.open_run` rebuilds it; one given as a Python
object must be passed again to ``open_run``.

>>> import torch, torch.nn.functional as F
>>> smooth = Trainer(loss=lambda logits, y: F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1),
...                  optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=False),
...                  name="smoothed-adamw")
>>> smooth.describe()["name"], Trainer().is_default, smooth.is_default
('smoothed-adamw', True, False)
>>> Batch(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([7, 9]), normaliser=4).reduce(torch.tensor([1., 3.]))
tensor(1.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .._imports import resolve_object
from ..errors import ConfigError

if TYPE_CHECKING:
    from .config import TrainingConfig


@dataclass(frozen=True)
class StepInfo:
    """Where a step stands: ``block`` (1-based) of ``num_blocks``, ``epoch`` of ``epochs`` (0-based),
    ``step`` of ``steps`` minibatch slots in the epoch (0-based, counted over the recorded members),
    the learning rate ``lr`` the library set for it and the run's ``seed``."""

    block: int
    num_blocks: int
    epoch: int
    epochs: int
    step: int
    steps: int
    lr: float
    seed: int


@dataclass(frozen=True)
class Batch:
    """One minibatch: samples ``x``, labels ``y``, their stable ``ids`` and ``normaliser``, the size of
    the minibatch as recorded (larger than ``len(batch)`` when deleted samples were left out)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    normaliser: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def complete(self) -> bool:
        """True when no sample of the recorded minibatch was left out."""
        return len(self) == self.normaliser

    def reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        """The minibatch loss from per-sample losses: their sum over :attr:`normaliser` (the deletion rule)."""
        check_per_sample(per_sample, len(self), "the per-sample losses given to Batch.reduce")
        return per_sample.sum() / self.normaliser


PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


class StepFunction(Protocol):
    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
                 info: StepInfo) -> torch.Tensor | float: ...


def check_per_sample(loss: Any, n: int, what: str = "the trainer's loss") -> None:
    """Refuse anything but one floating loss per sample, in one line that says how to fix it."""
    if not isinstance(loss, torch.Tensor):
        raise ConfigError(f"Expected {what} to be a tensor of shape ({n},), one loss per sample, but got "
                          f"{type(loss).__name__}")
    if tuple(loss.shape) != (n,) or not loss.is_floating_point():
        got = "a scalar" if loss.dim() == 0 else f"shape {tuple(loss.shape)}"
        hint = ("; pass reduction=\"none\" to the loss function (the library reduces with the deletion rule)"
                if loss.dim() == 0 else "")
        raise ConfigError(f"Expected {what} to be a float tensor of shape ({n},), one loss per sample, but got "
                          f"{got} ({loss.dtype}){hint}")


def _name_of(fn: object) -> str:
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{mod}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


@dataclass(frozen=True, kw_only=True)
class Trainer:
    """How one minibatch is trained (see the module docstring). All arguments keyword-only."""

    loss: PerSampleLoss | None = None
    step: StepFunction | None = None
    optimizer: OptimizerFactory | None = None
    name: str = ""
    path: str = ""  # the import path it was resolved from, if any (recorded in the manifest)

    def __post_init__(self) -> None:
        if self.loss is not None and self.step is not None:
            raise ConfigError("give a Trainer either loss= (the built-in step) or step= (your own), not both")
        for key in ("loss", "step", "optimizer"):
            value = getattr(self, key)
            if value is not None and not callable(value):
                raise ConfigError(f"Expected Trainer `{key}` to be callable, but got {type(value).__name__}")

    @property
    def is_default(self) -> bool:
        """The built-in loop (cross-entropy, the config's optimizer)?"""
        return self.loss is None and self.step is None and self.optimizer is None

    def describe(self) -> dict[str, str]:
        """What the manifest records of this trainer."""
        out = {"name": self.name or ("default" if self.is_default else "custom"),
               "loss": _name_of(self.loss) if self.loss is not None else
               ("" if self.step is not None else "cross_entropy"),
               "step": _name_of(self.step) if self.step is not None else "built-in",
               "optimizer": _name_of(self.optimizer) if self.optimizer is not None else "config"}
        if self.path:
            out["path"] = self.path
        return out

    def make_optimizer(self, model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
        """The optimizer over ``model``'s parameters: the factory's, else the one the config names."""
        if self.optimizer is None:
            from .block import make_optimizer

            return make_optimizer(model, cfg)
        optimizer = self.optimizer(list(model.parameters()))
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(f"Expected the trainer's optimizer factory to return a torch.optim.Optimizer, but got "
                              f"{type(optimizer).__name__}")
        return optimizer

    def run_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
                 info: StepInfo) -> torch.Tensor:
        """Train one minibatch (the lr is already set); returns the minibatch loss, detached."""
        if self.step is not None:
            return _as_loss(self.step(model, optimizer, batch, info))
        optimizer.zero_grad(set_to_none=True)
        if self.loss is None:  # the built-in loop, computed exactly as it always was
            if batch.complete:
                loss = F.cross_entropy(model(batch.x), batch.y)
            else:
                loss = F.cross_entropy(model(batch.x), batch.y, reduction="sum") / batch.normaliser
        else:
            loss = batch.reduce(_checked(self.loss(model(batch.x), batch.y), len(batch)))
        loss.backward()
        optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def check(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Try the loss on a couple of samples (eval mode, no gradient, RNG untouched) before anything is
        stored, so a loss that reduces or returns the wrong shape fails before training starts."""
        if self.loss is None or not len(y):
            return
        was = {m: m.training for m in model.modules()}
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                _checked(self.loss(model(x), y), len(y))
        finally:
            for m, mode in was.items():
                m.training = mode


def _checked(loss: Any, n: int) -> torch.Tensor:
    check_per_sample(loss, n)
    return loss  # type: ignore[no-any-return]


def _as_loss(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.detach().reshape(())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value))
    raise ConfigError(f"Expected the trainer's step function to return the minibatch loss (a float or a one-element "
                      f"tensor), but got {type(value).__name__}"
                      f"{' of shape ' + str(tuple(value.shape)) if isinstance(value, torch.Tensor) else ''}")


DEFAULT = Trainer()


def resolve_trainer(trainer: Trainer | str | None) -> Trainer:
    """A :class:`Trainer` from what a caller gives: ``None`` (the built-in loop), a Trainer, or an import
    path ``"pkg.mod:attr"`` naming a Trainer or a function of no arguments that returns one."""
    if trainer is None:
        return DEFAULT
    if isinstance(trainer, Trainer):
        return trainer
    if not isinstance(trainer, str):
        raise ConfigError(f"Expected `trainer` to be an obliviate Trainer or an import path \"pkg.mod:attr\", but got "
                          f"{type(trainer).__name__}")
    obj = resolve_object(trainer, example="mypkg.training:trainer")
    if not isinstance(obj, Trainer) and callable(obj):
        obj = obj()
    if not isinstance(obj, Trainer):
        raise ConfigError(f"Expected {trainer!r} to be a Trainer (or a function returning one), but got "
                          f"{type(obj).__name__}")
    return Trainer(loss=obj.loss, step=obj.step, optimizer=obj.optimizer, name=obj.name, path=trainer)


def trainer_for_run(recorded: dict[str, str] | None, given: Trainer | str | None, where: object) -> Trainer:
    """The trainer to reopen a run with: the one given (checked against the record), else the recorded
    import path, else the built-in loop; a run trained with a trainer given in Python needs it again."""
    if recorded is None or recorded.get("step") is None:  # runs recorded before the seam: the built-in loop
        recorded = DEFAULT.describe()
    if given is None:
        if recorded.get("path"):
            given = recorded["path"]
        elif recorded != DEFAULT.describe():
            raise ConfigError(f"{where} was trained with the trainer {recorded['name']!r} given in Python "
                              f"(loss {recorded['loss'] or '-'}, step {recorded['step']}); pass trainer= to open_run "
                              f"(the CLI reopens only runs whose trainer was given as an import path \"pkg.mod:attr\")")
    trainer = resolve_trainer(given)
    have = {k: v for k, v in trainer.describe().items() if k != "path"}
    want = {k: v for k, v in recorded.items() if k != "path"}
    if have != want:
        raise ConfigError(f"the trainer passed ({have}) is not the one {where} was trained with ({want}); pass the "
                          f"same trainer, or replays will not reproduce the run")
    return trainer
