"""Budget sweeps: robust accuracy against epsilon per attack, the worst case per input across attacks, and
per-sample records for export.

A sweep runs every evasion attack that takes ``eps`` at each epsilon (in the attack's own norm) on each
model, and every extraction attack that takes ``queries`` at each query budget. The worst case over the
attacks of one norm counts an input robust at ``eps`` only if no attack fooled it there, so the worst-case
curve lies on or below every attack's curve (the per-point minimum AutoAttack reports).

>>> parse_eps("0.05:0.3:6")
[0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
>>> parse_eps(["0.1", "0.2"]), parse_eps("0.1,0.3")
([0.1, 0.2], [0.1, 0.3])
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .base import Attack, AttackResult, AuditData
from .metrics import perturbation_norms
from .registry import attack_settings, build_attack

PER_SAMPLE_FIELDS = ("model", "attack", "norm", "eps", "id", "label", "clean_pred", "adv_pred", "target",
                     "clean_correct", "fooled", "l0", "l2", "linf")


def parse_eps(spec: str | Sequence[str | float]) -> list[float]:
    """Epsilons from ``START:STOP:COUNT`` (evenly spaced, both ends included), ``A,B,C`` or a list of
    those; each must be a positive finite number."""
    items = [spec] if isinstance(spec, (str, int, float)) else list(spec)
    out: list[float] = []
    for item in items:
        text = str(item).strip()
        if text.count(":") == 2:
            a, b, c = text.split(":")
            try:
                start, stop, count = float(a), float(b), int(c)
            except ValueError:
                raise ConfigError(f"cannot read epsilon range {text!r}; "
                                  f"write START:STOP:COUNT, e.g. 0.05:0.3:6") from None
            if count < 1 or not (math.isfinite(start) and math.isfinite(stop)) or start > stop:
                raise ConfigError(f"epsilon range {text!r} needs START <= STOP and COUNT >= 1, e.g. 0.05:0.3:6")
            step = (stop - start) / (count - 1) if count > 1 else 0.0
            out += [round(start + i * step, 12) for i in range(count)]
            continue
        for part in filter(None, (p.strip() for p in text.split(","))):
            try:
                out.append(float(part))
            except ValueError:
                raise ConfigError(f"cannot read epsilon {part!r}; give numbers (0.1), a list (0.05,0.1) or a "
                                  "range START:STOP:COUNT") from None
    if not out:
        raise ConfigError("no epsilon given; give numbers (0.1), a list (0.05,0.1) or a range START:STOP:COUNT")
    bad = [e for e in out if not (math.isfinite(e) and e > 0)]
    if bad:
        raise ConfigError(f"Expected every epsilon to be a positive number, but got {bad[0]!r}")
    return sorted(set(out))


def takes(attack: Attack, setting: str) -> bool:
    return setting in attack_settings(attack.name)


def with_setting(attack: Attack, **changes: Any) -> Attack:
    """A copy of ``attack`` with some settings changed (validated like any construction)."""
    return build_attack(attack.name, **{**attack.settings(), **changes})


@dataclass
class Sweep:
    """What a sweep measured: curves, the worst case per norm, per-sample records and every result."""

    eps: list[float]
    curves: list[dict[str, Any]] = field(default_factory=list)
    worst_case: list[dict[str, Any]] = field(default_factory=list)
    per_input: list[dict[str, Any]] = field(default_factory=list)
    per_sample: list[dict[str, Any]] = field(default_factory=list)
    results: list[AttackResult] = field(default_factory=list)
    query_curves: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, "curves": self.curves, "worst_case": self.worst_case,
                "per_input": self.per_input, "query_curves": self.query_curves}

    def write_per_sample(self, path: str | Path) -> Path:
        """Write the per-sample records as CSV (``.csv``) or JSON (any other suffix), atomically."""
        out = Path(path)
        if out.suffix.lower() == ".csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=PER_SAMPLE_FIELDS, lineterminator="\n")
            writer.writeheader()
            for row in self.per_sample:
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in PER_SAMPLE_FIELDS})
            text = buf.getvalue()
        else:
            text = json.dumps(self.per_sample) + "\n"
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
        return out


def per_sample_rows(result: AttackResult, ids: torch.Tensor) -> list[dict[str, Any]]:
    """One record per attacked input of an evasion result (its artifacts hold the tensors)."""
    art = result.artifacts
    x, x_adv, y = art["x"].cpu(), art["x_adv"].cpu(), art["y"].cpu()
    clean, adv, target = art["clean_pred"].cpu(), art["adv_pred"].cpu(), art.get("target")
    norms = perturbation_norms(x_adv - x)
    fooled = (adv == target.cpu()) if target is not None else (clean == y) & (adv != y)
    eps = result.threat.budget.get("eps")
    rows = []
    for i in range(len(y)):
        rows.append({"model": result.model, "attack": result.attack, "norm": result.threat.budget.get("norm"),
                     "eps": eps, "id": int(ids[i]), "label": int(y[i]), "clean_pred": int(clean[i]),
                     "adv_pred": int(adv[i]), "target": None if target is None else int(target[i]),
                     "clean_correct": bool(clean[i] == y[i]), "fooled": bool(fooled[i]),
                     "l0": int(norms["l0"][i]), "l2": round(float(norms["l2"][i]), 6),
                     "linf": round(float(norms["linf"][i]), 6)})
    return rows


def run_sweep(attacks: Sequence[Attack], models: Mapping[str, nn.Module], data: AuditData,
              eps: Sequence[float] | None, queries: Sequence[int] | None = None) -> Sweep:
    """Run each evasion attack that takes ``eps`` at every value of ``eps`` (at its own ``eps`` when
    ``eps`` is ``None`` or empty; others once), each extraction attack that takes ``queries`` at every
    budget of ``queries`` (when given), on every model. At an epsilon only some attacks of a norm ran at,
    the worst case is over those.

    >>> from obliviate.data import load_dataset
    >>> from obliviate.models import build_model
    >>> from obliviate.audit import FGSM, PGD
    >>> m = build_model("softmax_regression", (1, 8, 8), 10, seed=0)
    >>> s = run_sweep([FGSM(max_samples=20), PGD(steps=3, max_samples=20)], {"m": m},
    ...               AuditData.coerce(load_dataset("digits")), [0.05, 0.2])
    >>> [c["attack"] for c in s.curves], len(s.per_sample)
    (['fgsm', 'pgd'], 80)
    >>> worst = s.worst_case[0]["robust_accuracy"]
    >>> all(w <= min(c["robust_accuracy"][i] for c in s.curves) for i, w in enumerate(worst))
    True
    """
    eps = sorted(float(e) for e in eps or ())
    sweep = Sweep(eps=eps)
    fooled_at: dict[tuple[str, str], dict[float, dict[str, torch.Tensor]]] = {}
    info: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for attack in attacks:
        evasion = attack.family == "evasion"
        sweeps_eps = evasion and takes(attack, "eps") and attack.settings().get("eps") is not None
        sweeps_q = attack.family == "extraction" and bool(queries) and takes(attack, "queries")
        for model_name, model in models.items():
            variants: list[tuple[float | None, Attack]]
            if sweeps_eps:
                variants = [(e, with_setting(attack, eps=e)) for e in eps] or [(attack.settings()["eps"], attack)]
            elif sweeps_q:
                variants = [(q, with_setting(attack, queries=int(q))) for q in queries or ()]
            else:
                variants = [(None, attack)]
            robust, success, fidelity, used = [], [], [], []
            for value, configured in variants:
                result = configured(model, data)
                result.model = model_name
                sweep.results.append(result)
                if evasion:
                    n = len(result.artifacts["y"])
                    ids = data.test.ids[:n]
                    rows = per_sample_rows(result, ids)
                    sweep.per_sample += rows
                    robust.append(result.metrics["robust_accuracy"])
                    success.append(result.metrics["success_rate"])
                    if sweeps_eps:
                        key = (model_name, str(result.threat.budget.get("norm")))
                        art = result.artifacts
                        info[key] = (ids, art["y"].cpu(), art["clean_pred"].cpu())
                        correct_adv = art["adv_pred"].cpu() == art["y"].cpu()
                        assert value is not None  # every variant of an eps sweep has its eps
                        fooled_at.setdefault(key, {}).setdefault(float(value), {})[attack.name] = ~correct_adv
                elif sweeps_q:
                    fidelity.append(result.metrics.get("fidelity"))
                    used.append(result.metrics.get("queries"))
            if sweeps_eps:
                sweep.curves.append({"model": model_name, "attack": attack.name, "norm": attack.norm,  # type: ignore[attr-defined]
                                     "eps": [v for v, _ in variants], "robust_accuracy": robust,
                                     "success_rate": success,
                                     "settings": {k: v for k, v in _plain(attack.settings()).items() if k != "eps"}})
            if sweeps_q:
                sweep.query_curves.append({"model": model_name, "attack": attack.name, "budget": list(queries or ()),
                                           "queries": used,
                                           "fidelity": fidelity,
                                           "output": attack.settings().get("output")})
    for (model_name, norm), by_eps in fooled_at.items():
        ids, y, clean = info[(model_name, norm)]
        names = sorted({a for d in by_eps.values() for a in d})
        grid = sorted(by_eps)
        curve: list[float] = []
        first_eps: list[float | None] = [None] * len(y)
        first_by = [""] * len(y)
        for e in grid:
            hits = by_eps[e]
            n = min(len(v) for v in hits.values())
            any_fooled = torch.zeros(n, dtype=torch.bool)
            for v in hits.values():
                any_fooled |= v[:n]
            curve.append(float((~any_fooled).float().mean()))
            for i in range(n):
                if first_eps[i] is None and bool(any_fooled[i]):
                    first_eps[i] = e
                    first_by[i] = " ".join(a for a in sorted(hits) if bool(hits[a][i]))
        sweep.worst_case.append({"model": model_name, "norm": norm, "attacks": names, "eps": grid,
                                 "robust_accuracy": curve})
        for i in range(len(y)):
            ok = bool(clean[i] == y[i])  # a misclassified input is not robust at any epsilon
            sweep.per_input.append({"model": model_name, "norm": norm, "id": int(ids[i]), "label": int(y[i]),
                                    "clean_correct": ok, "min_eps_fooled": first_eps[i] if ok else 0.0,
                                    "fooled_by": first_by[i] if ok else "misclassified"})
    return sweep


def _plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
