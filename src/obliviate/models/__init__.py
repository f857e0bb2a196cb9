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

from .._imports import is_import_path, resolve
from .._registry import Registry
from ..errors import ConfigError, UnknownNameError
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
    """Build a registered model, or the user's factory named by an import path ``package.module:attribute``
    (see :func:`model_builder`); with ``seed`` its initial weights are deterministic.

    The builder is called as ``builder(input_shape, num_classes, **options)``; with ``seed`` it runs with
    torch's global generator seeded by ``seed`` inside a forked RNG, so the caller's generator is untouched.

    >>> build_model("obliviate.models.zoo:mlp", (1, 4, 4), 3, seed=0, hidden=[8])[1]
    Linear(in_features=16, out_features=8, bias=True)
    >>> build_model("mlp", (1, 4, 4), 3, widths=[8])
    Traceback (most recent call last):
    ...
    obliviate.errors.ConfigError: model 'mlp' does not take option(s) ['widths']; it takes: ['hidden']
    """
    builder = model_builder(name)
    _check_options(name, builder, options)
    if seed is None:
        model = builder(tuple(input_shape), num_classes, **options)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = builder(tuple(input_shape), num_classes, **options)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {name!r} returned a {type(model).__name__}, not a torch nn.Module; "
                          f"make it return the model")
    return model


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of a registered model name, or the callable an import path ``package.module:attribute``
    names (imported now; :func:`obliviate._imports.resolve` explains a failure in one line)."""
    if is_import_path(name):
        return resolve(name)
    if name not in _MODELS:
        raise UnknownNameError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}, or give "
                               f"your own factory as package.module:function")
    return _MODELS.get(name)


def _check_options(name: str, builder: Callable[..., nn.Module], options: dict[str, Any]) -> None:
    """Refuse options the builder does not take (unless it takes ``**kwargs``), and a builder that cannot
    take ``(input_shape, num_classes)``."""
    try:
        params = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable without a signature: let the call speak
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ConfigError(f"model factory {name!r} must take (input_shape, num_classes, **options); it takes "
                          f"({', '.join(p.name for p in params)})")
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return
    allowed = [p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r} does not take option(s) {unknown}; it takes: {allowed or 'none'}")


__all__ = ["ResNet18", "build_model", "lenet5", "mlp", "model_builder", "model_names", "register_model", "resnet18",
           "small_cnn", "softmax_regression"]
