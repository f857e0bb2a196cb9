"""Argument validation in one voice for the whole library (torchmetrics' style): ``Expected argument
`name` to be ..., but got ...``, raised as :class:`~obliviate.errors.ConfigError`. Each ``check_*``
returns the value it accepted, so a constructor reads ``self.eps = check_float("eps", eps, 0, 1)``.

>>> check_int("batch_size", 0, 1)
Traceback (most recent call last):
...
obliviate.errors.ConfigError: Expected argument `batch_size` to be an int >= 1, but got 0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import torch

from .errors import ConfigError

_T = TypeVar("_T")


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a float, or raise :class:`ConfigError` naming the allowed interval.

    >>> check_float("eps", 0.3, 0.0, 1.0, lo_open=True)
    0.3
    >>> check_float("eps", 1.5, 0.0, 1.0, lo_open=True)
    Traceback (most recent call last):
    ...
    obliviate.errors.ConfigError: Expected argument `eps` to be a float in (0, 1], but got 1.5
    """
    left = ("(" if lo_open else "[") + ("-inf" if lo is None else f"{lo:g}")
    right = ("inf" if hi is None else f"{hi:g}") + (")" if hi_open or hi is None else "]")
    msg = f"Expected argument `{name}` to be a float in {left}, {right}, but got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(msg)
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(msg)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(msg)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ConfigError(msg)
    return v


def check_int(name: str, value: Any, lo: int = 0, hi: int | None = None) -> int:
    """Return ``value`` as an int in ``[lo, hi]`` or raise :class:`ConfigError`."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        upper = "" if hi is None else f", {hi}]"
        span = f"[{lo}{upper}" if hi is not None else f">= {lo}"
        raise ConfigError(f"Expected argument `{name}` to be an int {span}, but got {value!r}")
    return int(value)


def check_bounds(bounds: Any) -> tuple[float, float]:
    """Return ``bounds`` as a ``(lo, hi)`` pair of finite floats with ``lo < hi``, or raise.

    >>> check_bounds([-1, 1])
    (-1.0, 1.0)
    >>> check_bounds((1, 0))
    Traceback (most recent call last):
    ...
    obliviate.errors.ConfigError: Expected argument `bounds` to be two finite numbers lo < hi, but got (1, 0)
    """
    msg = f"Expected argument `bounds` to be two finite numbers lo < hi, but got {bounds!r}"
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ConfigError(msg)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in bounds):
        raise ConfigError(msg)
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ConfigError(msg)
    return lo, hi


def check_finite(name: str, x: torch.Tensor) -> None:
    """Refuse NaN or infinite inputs with one line naming where they are.

    >>> check_finite("x", torch.tensor([[0.0, float("nan")]]))
    Traceback (most recent call last):
    ...
    obliviate.errors.ConfigError: x holds 1 NaN or infinite value(s) (first in sample 0); clean or drop those inputs first
    """  # noqa: E501 (a doctest's expected one-line error)
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = int(bad.flatten(1).any(1).nonzero()[0]) if x.dim() > 1 else int(bad.nonzero()[0])
        raise ConfigError(f"{name} holds {int(bad.sum())} NaN or infinite value(s) (first in sample {first}); "
                          "clean or drop those inputs first")


def check_choice(name: str, value: _T, allowed: Sequence[_T]) -> _T:
    """Return ``value`` if it is one of ``allowed``, else raise naming the allowed values."""
    if value not in allowed:
        raise ConfigError(f"Expected argument `{name}` to be one of {', '.join(map(str, allowed))}, "
                          f"but got {value!r}")
    return value


__all__ = ["check_bounds", "check_choice", "check_finite", "check_float", "check_int"]
