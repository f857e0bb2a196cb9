"""Datasets by name. Every "allowed values" message is derived from this registry.

>>> "digits" in dataset_names()
True
>>> load_dataset("digits").train.name
'digits'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, UnknownNameError
from .base import DatasetSplits

_LOADERS: dict[str, Callable[..., DatasetSplits]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., DatasetSplits]], Callable[..., DatasetSplits]]:
    """Decorator: make a loader available to configs and the command line under ``name``."""

    def deco(fn: Callable[..., DatasetSplits]) -> Callable[..., DatasetSplits]:
        _LOADERS[name] = fn
        return fn

    return deco


def dataset_names() -> list[str]:
    return sorted(_LOADERS)


def load_dataset(name: str, **options: Any) -> DatasetSplits:
    """Load a registered dataset; unknown names and unknown options are rejected with the allowed ones."""
    if name not in _LOADERS:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())}")
    fn = _LOADERS[name]
    params = inspect.signature(fn).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"dataset {name!r} does not take option(s) {unknown}; it takes: "
                          f"{', '.join(p for p in params) or 'none'}")
    return fn(**options)
