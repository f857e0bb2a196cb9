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

from ..errors import ConfigError, UnknownNameError
from .zoo import ResNet18, lenet5, mlp, resnet18, small_cnn, softmax_regression

_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp, "small_cnn": small_cnn, "lenet5": lenet5, "resnet18": resnet18,
    "softmax_regression": softmax_regression,
}


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``builder(input_shape, num_classes, **options)`` available under ``name``."""
    _MODELS[name] = builder


def model_names() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int | None = None,
                **options: Any) -> nn.Module:
    """Build a registered model; with ``seed`` its initial weights are deterministic."""
    if name not in _MODELS:
        raise UnknownNameError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
    builder = _MODELS[name]
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
