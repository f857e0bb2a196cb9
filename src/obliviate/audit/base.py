"""The attack base class, the threat model and the one result shape every attack returns.

An attack holds only settings (given to the constructor, keyword-only, validated there). The model and
the data come with the call, so one configured attack runs on the original, the unlearned and the
retrained model alike (the Foolbox design). :meth:`Attack.__call__` owns the invariants: it validates the
model and data, puts the model in eval mode with its parameters frozen and restores both afterwards
(even on error), seeds the random state without disturbing the caller's, times the run and returns an
:class:`AttackResult`. A family base (evasion, extraction, inversion, poisoning) writes ``_run`` and a
concrete attack writes one method.

>>> tm = ThreatModel(knowledge="white-box", goal="untargeted", budget={"norm": "linf", "eps": 0.1})
>>> tm.to_dict()["budget"]
{'norm': 'linf', 'eps': 0.1}
"""

from __future__ import annotations

import abc
import inspect
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..data.base import DatasetSplits, IndexedDataset
from ..errors import ConfigError

_T = TypeVar("_T")
KNOWLEDGE = ("white-box", "score-based", "label-only")
GOALS = ("untargeted", "targeted", "availability", "integrity", "backdoor", "confidentiality")


# --------------------------------------------------------------------------- validation, one voice
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


# --------------------------------------------------------------------------- threat model and result
@dataclass(frozen=True)
class ThreatModel:
    """What the adversary knows, wants and may spend (He et al., TSE, arXiv 1911.12562, section 3).

    ``knowledge`` is one of ``white-box``, ``score-based``, ``label-only``; ``goal`` one of
    ``untargeted``, ``targeted``, ``availability``, ``integrity``, ``backdoor`` or ``confidentiality``
    (extraction, inversion and membership: the model or its training data leaks); ``budget`` names the
    norm and epsilon, the queries or the poison rate.
    """

    knowledge: str
    goal: str
    budget: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("knowledge", self.knowledge, KNOWLEDGE)
        check_choice("goal", self.goal, GOALS)

    def to_dict(self) -> dict[str, Any]:
        return {"knowledge": self.knowledge, "goal": self.goal, "budget": dict(self.budget)}

    def budget_text(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.budget.items() if v is not None) or "-"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass
class AttackResult:
    """The one result shape of every attack: the family's pivot metrics and the threat model.

    ``metrics`` maps pivot-metric names (see :func:`obliviate.audit.registry.family_metrics`) to
    numbers; ``artifacts`` holds tensors (adversarial inputs, reconstructions, copies) and is left out
    of :meth:`to_dict`; ``arrays`` holds the few an attack exports (``Attack.exports``, e.g. MI-Face's
    reconstructions and class means) as nested lists rounded to 4 decimals, for reports.
    """

    attack: str
    family: str
    threat: ThreatModel
    metrics: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    model: str = "model"
    artifacts: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    arrays: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, key: str) -> Any:
        return self.metrics[key]

    def to_dict(self) -> dict[str, Any]:
        return {"attack": self.attack, "family": self.family, "model": self.model,
                "threat": self.threat.to_dict(), "metrics": {k: _jsonable(v) for k, v in self.metrics.items()},
                "settings": {k: _jsonable(v) for k, v in self.settings.items()},
                **({"arrays": self.arrays} if self.arrays else {})}


def _jsonable(v: Any) -> Any:
    """JSON-safe values: NaN and infinities become ``None`` (JSON has neither)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return repr(v)


# --------------------------------------------------------------------------- data given at call time
@dataclass(frozen=True)
class AuditData:
    """The data an attack is called with.

    ``train`` is the model's training data (members; what poisoning corrupts and inversion compares
    against), ``test`` held-out data (evasion inputs, accuracy, fidelity, non-members), ``pool`` the
    attacker's own data for extraction (when absent, extraction splits ``test`` into two seeded halves:
    one to query, one to measure on).
    """

    train: IndexedDataset
    test: IndexedDataset
    pool: IndexedDataset | None = None

    @classmethod
    def coerce(cls, data: AuditData | DatasetSplits | IndexedDataset) -> AuditData:
        if isinstance(data, AuditData):
            return data
        if isinstance(data, DatasetSplits):
            return cls(data.train, data.test)
        if isinstance(data, IndexedDataset):
            return cls(data, data)
        raise ConfigError(f"Expected data to be an AuditData, DatasetSplits or IndexedDataset, "
                          f"but got {type(data).__name__}")

    @property
    def num_classes(self) -> int:
        return self.test.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.test.input_shape


# --------------------------------------------------------------------------- counting passes
class CountedModel:
    """Calls the model and counts forward and backward passes (per sample and per call).

    A backward pass is counted when a gradient reaches the model's output, so an attack cannot forget to
    count. ``model`` stays reachable for what needs the module itself.

    >>> m = CountedModel(nn.Linear(3, 2))
    >>> x = torch.zeros(4, 3, requires_grad=True)
    >>> _ = torch.autograd.grad(m(x).sum(), x)
    >>> m.forward_samples, m.backward_samples
    (4, 4)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.forward_calls = 0
        self.forward_samples = 0
        self.backward_calls = 0
        self.backward_samples = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        n = int(x.shape[0])
        self.forward_calls += 1
        self.forward_samples += n
        if out.requires_grad:
            def hook(grad: torch.Tensor, n: int = n) -> None:
                self.backward_calls += 1
                self.backward_samples += n
            out.register_hook(hook)
        return out


@contextmanager
def audit_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration; every module's mode and every parameter's
    ``requires_grad`` flag are restored afterwards, also on error (torchattacks restores the mode too)."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for m, mode in modes:
            m.train(mode)
        for p, flag in flags:
            p.requires_grad_(flag)


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


class TwoClassLogits(nn.Module):
    """A logistic model's single logit ``z`` seen as two-class logits ``(0, z)``: the softmax of these is
    ``(1 - sigmoid(z), sigmoid(z))``, so every attack treats binary logistic models like any other."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.training = model.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)


# --------------------------------------------------------------------------- the base class
class Attack(abc.ABC):
    """Base of every attack. Subclasses set ``family`` and ``knowledge`` and write ``_run``.

    Settings go to the constructor (keyword-only) and are stored under the same names, so
    :meth:`settings` can list them. Every attack takes ``bounds`` (the valid input range ``(lo, hi)``,
    e.g. ``(-1, 1)`` or ``(0, 255)``; results are clipped to it and data outside it is refused), ``seed``
    and ``max_samples`` (how many inputs to attack or measure on; ``None`` for all).
    """

    name: ClassVar[str] = "attack"  # set by the registry
    family: ClassVar[str] = ""
    knowledge: ClassVar[str] = "white-box"
    exports: ClassVar[tuple[str, ...]] = ()  # artifacts small enough to go into the JSON (AttackResult.arrays)

    def __init__(self, *,
                 bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0, max_samples: int | None = None) -> None:
        self.bounds = check_bounds(bounds)
        self.seed = check_int("seed", seed, 0)
        self.max_samples = None if max_samples is None else check_int("max_samples", max_samples, 1)

    # -- what subclasses provide
    @abc.abstractmethod
    def threat_model(self) -> ThreatModel:
        """The threat model this configured attack assumes."""

    @abc.abstractmethod
    def _run(self, model: nn.Module, data: AuditData) -> tuple[dict[str, Any], dict[str, Any]]:
        """Attack ``model`` (eval mode, frozen) with ``data``; return ``(metrics, artifacts)``."""

    # -- the invariants
    def __call__(self, model: nn.Module, data: AuditData | DatasetSplits | IndexedDataset) -> AttackResult:
        """Attack ``model`` with ``data`` and return the pivot metrics (see the class docstring)."""
        if not isinstance(model, nn.Module):
            raise ConfigError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}")
        audit_data = AuditData.coerce(data)
        self._check_data(audit_data)
        with audit_mode(model), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            target = self._check_model(model, audit_data)
            start = time.perf_counter()
            metrics, artifacts = self._run(target, audit_data)
            metrics.setdefault("wall_time_s", time.perf_counter() - start)
        arrays = {k: artifacts[k].detach().cpu().double().nan_to_num().round(decimals=4).tolist()
                  for k in self.exports if isinstance(artifacts.get(k), torch.Tensor)}
        return AttackResult(attack=self.name, family=self.family, threat=self.threat_model(),
                            metrics=metrics, settings=self.settings(), artifacts=artifacts, arrays=arrays)

    def settings(self) -> dict[str, Any]:
        """The constructor settings of this attack, by name."""
        out: dict[str, Any] = {}
        for cls in type(self).__mro__:
            init = cls.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in out and hasattr(self, p.name):
                    out[p.name] = getattr(self, p.name)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({inner})"

    def _check_data(self, data: AuditData) -> None:
        lo, hi = self.bounds
        for ds in (data.train, data.test, data.pool):
            if ds is None:
                continue
            if len(ds) == 0:
                raise ConfigError(f"dataset {ds.name!r} is empty; an attack needs samples")
            if not torch.is_floating_point(ds.x):
                raise ConfigError(f"dataset {ds.name!r}: inputs must be floating point, got {ds.x.dtype}")
            check_finite(f"dataset {ds.name!r}", ds.x)
            xmin, xmax = float(ds.x.min()), float(ds.x.max())
            if not (math.isfinite(xmin) and math.isfinite(xmax)) or xmin < lo - 1e-6 or xmax > hi + 1e-6:
                raise ConfigError(f"dataset {ds.name!r}: inputs must lie in [{lo:g}, {hi:g}], got "
                                  f"[{xmin:.4g}, {xmax:.4g}]; scale them first or set the attack's `bounds`")
        if data.train.input_shape != data.test.input_shape:
            raise ConfigError(f"train and test inputs differ in shape: {data.train.input_shape} vs "
                              f"{data.test.input_shape}")

    def _check_model(self, model: nn.Module, data: AuditData) -> nn.Module:
        """Check the output shape on two inputs; a single-logit binary model is seen as two classes."""
        k = data.num_classes
        probe = data.test.x[:2].to(model_device(model))
        try:
            with torch.no_grad():
                out = model(probe)
        except Exception as exc:  # the model cannot even take the inputs
            raise ConfigError(f"the model cannot take inputs of shape {tuple(probe.shape[1:])}: {exc}") from exc
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != probe.shape[0] or (
                out.shape[1] != k and not (k == 2 and out.shape[1] == 1)):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"model output shape {shape} does not fit dataset {data.test.name!r} with "
                              f"{k} classes; expected (batch, {k}) scores")
        return TwoClassLogits(model) if out.shape[1] == 1 and k == 2 else model

    def _subset(self, ds: IndexedDataset) -> IndexedDataset:
        if self.max_samples is None or self.max_samples >= len(ds):
            return ds
        return ds.take(torch.arange(self.max_samples))
