"""Run a list of attacks on several named models and lay the results out as one table per family.

The same configured attacks run on every model (the original, the unlearned and the exact-retrained
model of a run, side by side), so the rows of a family table compare like with like.

>>> import torch
>>> from obliviate.data import load_dataset
>>> from obliviate.models import build_model
>>> data = load_dataset("digits")
>>> models = {"a": build_model("softmax_regression", (1, 8, 8), 10, seed=0),
...           "b": build_model("softmax_regression", (1, 8, 8), 10, seed=1)}
>>> report = run_audit(["fgsm:eps=0.1,max_samples=16"], models, data)
>>> [(r.attack, r.model) for r in report.results]
[('fgsm', 'a'), ('fgsm', 'b')]
>>> print(report.to_markdown().splitlines()[0])
### Evasion (adversarial examples)
"""

from __future__ import annotations

import ast
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..data.base import DatasetSplits, IndexedDataset
from ..errors import ConfigError
from .base import Attack, AttackResult, AuditData
from .registry import attack_names, attack_settings, build_attack, family_names, get_family

log = logging.getLogger(__name__)


def parse_attack_spec(spec: str, **defaults: Any) -> Attack:
    """Build an attack from ``NAME`` or ``NAME:key=value,key=value`` (values are Python literals or plain
    strings). ``defaults`` fill in settings the spec does not give, where the attack takes them.

    >>> parse_attack_spec("pgd:eps=0.2,steps=20").settings()["steps"]
    20
    >>> parse_attack_spec("fgsm", eps=0.05, steps=3).settings()["eps"]
    0.05
    """
    name, settings = split_attack_spec(spec)
    allowed = attack_settings(name)
    for key, value in defaults.items():
        if key in allowed and key not in settings:
            settings[key] = value
    return build_attack(name, **settings)


def split_attack_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``("pgd", {"eps": 0.2})`` from ``"pgd:eps=0.2"``."""
    name, _, rest = spec.partition(":")
    settings: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"cannot read attack setting {item!r} in {spec!r}; write NAME:key=value,key=value")
        try:
            value: Any = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        settings[key.strip()] = value
    return name.strip(), settings


def _as_attack(a: str | Attack) -> Attack:
    if isinstance(a, Attack):
        return a
    if isinstance(a, str):
        return parse_attack_spec(a)
    raise ConfigError(f"Expected an attack name or Attack, but got {type(a).__name__}")


@dataclass
class AuditReport:
    """Results of one audit; one table per family with every model's rows side by side."""

    results: list[AttackResult] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def families(self) -> list[str]:
        present = {r.family for r in self.results}
        return [f for f in family_names() if f in present]

    def table(self, family: str) -> tuple[list[str], list[list[Any]]]:
        """Headers and rows of a family's pivot-metric table (metrics no result has are left out)."""
        rows_of = [r for r in self.results if r.family == family]
        metrics = [m for m in get_family(family).metrics if any(m in r.metrics for r in rows_of)]
        headers = ["attack", "model", "knowledge", "goal", "budget", *metrics]
        rows = [[r.attack, r.model, r.threat.knowledge, r.threat.goal, r.threat.budget_text(),
                 *(r.metrics.get(m, "-") for m in metrics)] for r in rows_of]
        return headers, rows

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "errors": list(self.errors)}

    def to_text(self) -> str:
        parts = []
        for fam in self.families():
            headers, rows = self.table(fam)
            parts.append(get_family(fam).title + "\n" + _plain_table(headers, rows))
        parts += [f"error: {e['attack']} on {e['model']}: {e['error']}" for e in self.errors]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        parts = []
        for fam in self.families():
            headers, rows = self.table(fam)
            lines = [f"### {get_family(fam).title}", "", "| " + " | ".join(headers) + " |",
                     "|" + "|".join("---" for _ in headers) + "|"]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
            parts.append("\n".join(lines))
        if self.errors:
            parts.append("\n".join(f"- error: `{e['attack']}` on `{e['model']}`: {e['error']}"
                                   for e in self.errors))
        return "\n\n".join(parts)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def _plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(out)


def run_audit(attacks: Sequence[str | Attack] | None, models: Mapping[str, nn.Module] | nn.Module,
              data: AuditData | DatasetSplits | IndexedDataset, *, keep_going: bool = False) -> AuditReport:
    """Run ``attacks`` (names, ``NAME:key=value`` specs or :class:`Attack` objects; ``None`` for every
    registered attack) on each model of ``models`` (a name-to-model mapping, or one model).

    With ``keep_going`` an attack that fails on a model is recorded in ``report.errors`` and the audit
    goes on; otherwise the error propagates.
    """
    configured = [_as_attack(a) for a in (attack_names() if attacks is None else attacks)]
    named = {"model": models} if isinstance(models, nn.Module) else dict(models)
    if not named:
        raise ConfigError("Expected at least one model to audit")
    report = AuditReport()
    for attack in configured:
        for model_name, model in named.items():
            log.info("audit: %s on %s", attack.name, model_name)
            try:
                result = attack(model, data)
            except Exception as exc:  # recorded, reported
                if not keep_going:
                    raise
                report.errors.append({"attack": attack.name, "model": model_name, "error": str(exc)})
                continue
            result.model = model_name
            report.results.append(result)
    return report
