"""Reference models by name, and any ``nn.Module`` the user brings.

>>> import torch
>>> model = build_model("lenet5", (1, 28, 28), 10, seed=0)
>>> model(torch.zeros(1, 1, 28, 28)).shape
torch.Size([1, 10])
>>> sorted(model_names())
['lenet5', 'mlp', 'resnet18', 'small_cnn', 'softmax_regression']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._registry import Registry
from ..errors import ConfigError
from .zoo import ResNet18, lenet5, mlp, resnet18, small_cnn, softmax_regression

_MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
_MODELS.register("mlp", mlp)
_MODELS.register("small_cnn", small_cnn)
_MODELS.register("lenet5", lenet5)
_MODELS.register("resnet18", resnet18)
_MODELS.register("softmax_regression", softmax_regression)


def register_model(name: str, builder: Callable[..., nn.Module], *, force: bool = False) -> None:
    """Make ``builder(input_shape, num_classes, **options)`` available under ``name``; a name already
    registered raises unless ``force=True``."""
    _MODELS.register(name, builder, force=force)


def model_names() -> list[str]:
    return _MODELS.names()


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int | None = None,
                **options: Any) -> nn.Module:
    """Build a registered model; with ``seed`` its initial weights are deterministic."""
    builder = _MODELS.get(name)
    allowed = [p for p in inspect.signature(builder).parameters][2:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r} does not take option(s) {unknown}; it takes: {allowed or 'none'}")
    if seed is None:
        return builder(tuple(input_shape), num_classes, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(tuple(input_shape), num_classes, **options)


__all__ = ["ResNet18", "build_model", "lenet5", "mlp", "model_names", "register_model", "resnet18",
           "small_cnn", "softmax_regression"]
