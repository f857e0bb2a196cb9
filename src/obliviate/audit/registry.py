"""Attacks and families by name. Every "allowed values" message is derived from these registries.

>>> "fgsm" in attack_names("evasion")
True
>>> build_attack("fgsm", eps=0.2).settings()["eps"]
0.2
>>> build_attack("nope")
Traceback (most recent call last):
...
obliviate.errors.UnknownNameError: unknown attack 'nope'; choose one of: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ConfigError, UnknownNameError
from .base import Attack


@dataclass(frozen=True)
class Family:
    """One of the survey's four attack families and the pivot metrics its table shows."""

    name: str
    title: str
    metrics: tuple[str, ...]


_FAMILIES: dict[str, Family] = {}
_ATTACKS: dict[str, type[Attack]] = {}

A = TypeVar("A", bound=type[Attack])


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


register_family(Family("evasion", "Evasion (adversarial examples)", (
    "success_rate", "robust_accuracy", "l0_mean", "l2_mean", "l2_median", "linf_mean", "forwards",
    "backwards", "wall_time_s")))
register_family(Family("extraction", "Model extraction (stealing)", (
    "queries", "copy_accuracy", "victim_accuracy", "fidelity", "output", "wall_time_s")))
register_family(Family("inversion", "Model inversion and membership", (
    "class_mean_hits", "ssim_to_mean", "mse", "ssim", "evaluator_accuracy", "auc", "tpr_at_1pct_fpr",
    "tpr_at_0_1pct_fpr", "advantage", "wall_time_s")))
register_family(Family("poisoning", "Poisoning and backdoors", (
    "poison_rate", "attack_success", "clean_accuracy", "clean_accuracy_drop", "robust_accuracy",
    "wall_time_s")))


def family_names() -> list[str]:
    """Families in the survey's order."""
    return list(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise UnknownNameError(f"unknown attack family {name!r}; choose one of: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def family_metrics(name: str) -> tuple[str, ...]:
    """The pivot-metric columns of a family's table."""
    return get_family(name).metrics


def register_attack(name: str) -> Callable[[A], A]:
    """Class decorator: make an :class:`Attack` subclass available under ``name``."""

    def deco(cls: A) -> A:
        if cls.family not in _FAMILIES:
            raise ConfigError(f"attack {name!r} has family {cls.family!r}; choose one of: "
                              f"{', '.join(_FAMILIES)}")
        cls.name = name
        _ATTACKS[name] = cls
        return cls

    return deco


def attack_names(family: str | None = None) -> list[str]:
    """Registered attack names, grouped by family in the survey's order."""
    fams = family_names() if family is None else [get_family(family).name]
    return [n for f in fams for n in sorted(_ATTACKS) if _ATTACKS[n].family == f]


def attack_class(name: str) -> type[Attack]:
    if name not in _ATTACKS:
        raise UnknownNameError(f"unknown attack {name!r}; choose one of: {', '.join(attack_names())}")
    return _ATTACKS[name]


def attack_settings(name: str) -> list[str]:
    """The settings (keyword-only constructor arguments) an attack takes."""
    cls = attack_class(name)
    seen: list[str] = []
    for c in cls.__mro__:
        init = c.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY and p.name not in seen:
                seen.append(p.name)
    return seen


def build_attack(name: str, **settings: Any) -> Attack:
    """Construct a registered attack; unknown names and settings are rejected with the allowed ones."""
    cls = attack_class(name)
    allowed = attack_settings(name)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ConfigError(f"attack {name!r} does not take setting(s) {unknown}; it takes: {', '.join(allowed)}")
    return cls(**settings)
