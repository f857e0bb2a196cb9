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

from .._registry import Registry
from ..errors import ConfigError
from .base import DatasetSplits

Loader = Callable[..., DatasetSplits]
_LOADERS: Registry[Loader] = Registry("dataset")


def register_dataset(name: str, *, force: bool = False) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available to configs and the command line under ``name``; a name already
    registered raises unless ``force=True``."""
    return _LOADERS.decorator(name, force=force)


def dataset_names() -> list[str]:
    return _LOADERS.names()


def load_dataset(name: str, **options: Any) -> DatasetSplits:
    """Load a registered dataset; unknown names and unknown options are rejected with the allowed ones."""
    fn = _LOADERS.get(name)
    params = inspect.signature(fn).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"dataset {name!r} does not take option(s) {unknown}; it takes: "
                          f"{', '.join(p for p in params) or 'none'}")
    return fn(**options)
