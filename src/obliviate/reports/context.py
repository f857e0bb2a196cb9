"""Gather what a report shows from the run store's manifest and optional verification and audit JSON files.

Everything is read, nothing is written: a report never changes a store. Known keys get figures and
tables; keys this version does not know are rendered generically (so a newer producer's fields still
show), and missing ones are left out with a note.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from . import figures

REQUEST_FIELDS = ("request_id", "created", "method", "outcome", "n_deleted", "d", "m", "t", "blocks_retrained",
                  "stopping_rule", "wall_time_s", "retrain_time_s", "speedup", "accuracy_before",
                  "accuracy_after", "canary")
LONG_FIELDS = ("ids_requested", "ids_deleted", "ids_already_deleted", "chain_sha256")


def load_json_file(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON object from ``path`` or raise one clear line naming the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} file {str(p)!r} does not exist; give the JSON file the command wrote")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{what} file {str(p)!r} is not valid JSON ({exc}); give the JSON file the "
                          f"command wrote (`--json` or `--out`)") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {str(p)!r} holds a {type(data).__name__}, not a JSON object")
    return data


def maybe_json(value: Any) -> Any:
    """Manifest fields may hold JSON text (e.g. ``guard``, ``residuals``): decode those."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


MAX_CELL = 320  # characters of one table cell; longer text is cut with an ellipsis


def scalar_text(v: Any) -> str:
    text = _text(v)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "\u2026"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}")
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "; ".join(v)
        if all(not isinstance(x, (dict, list)) for x in v):
            shown = ", ".join(scalar_text(x) for x in v[:12])
            return f"[{shown}{', ...' if len(v) > 12 else ''}] ({len(v)})" if len(v) > 12 else f"[{shown}]"
        return f"{len(v)} entries"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {scalar_text(x)}" for k, x in list(v.items())[:8])
    return str(v)


def rows_of(d: dict[str, Any], skip: Iterable[str] = (), *, prefix: str = "", depth: int = 2) -> list[tuple[str, str]]:
    """``(key, text)`` pairs of a dict for a generic table; nested dicts are flattened to dotted keys
    (``depth`` levels), so fields this version does not know still show.

    >>> rows_of({"a": 1, "b": {"c": [1, 2], "d": {"e": None}}})
    [('a', '1'), ('b.c', '[1, 2]'), ('b.d.e', '-')]
    """
    out = []
    skip = set(skip)
    for k, v in d.items():
        if k in skip:
            continue
        v = maybe_json(v)
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and depth > 0:
            out += rows_of(v, prefix=key + ".", depth=depth - 1)
        else:
            out.append((key, scalar_text(v)))
    return out


def table_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A list of dicts as ``{"headers", "rows"}`` with the union of keys (unknown keys included)."""
    headers: list[str] = []
    for r in rows:
        for k in r:
            if k not in headers:
                headers.append(k)
    return {"headers": headers, "rows": [[scalar_text(maybe_json(r.get(h))) for h in headers] for r in rows]}


# --------------------------------------------------------------------------- the run
def run_section(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    cfg = manifest.get("config") or {}
    tr = cfg.get("training") or {}
    settings = ", ".join(f"{k}={tr[k]}" for k in ("blocks", "epochs_per_block", "optimizer", "lr", "batch_size")
                         if k in tr)
    blocks = [b for b in manifest.get("blocks") or [] if isinstance(b, dict)]
    on_disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    payload = sum((b.get(k) or {}).get("bytes", 0) for b in blocks for k in ("update", "optimizer", "snapshot")
                  if isinstance(b.get(k), dict))
    figs = [f for f in (figures.training_figure(blocks, settings or "settings not recorded"),
                        figures.storage_figure(blocks)) if f]
    block_rows = [{k: v for k, v in b.items() if k not in ("update", "optimizer", "snapshot")} for b in blocks]
    summary = [("run", str(root)), ("status", scalar_text(manifest.get("status"))),
               ("created", scalar_text(manifest.get("created"))),
               ("data", scalar_text(manifest.get("data"))),
               ("model", scalar_text(cfg.get("model"))), ("training", settings or "-"),
               ("blocks", str(len(blocks))), ("store size on disk", f"{on_disk / 2 ** 20:.2f} MiB"),
               ("block payloads", f"{payload / 2 ** 20:.2f} MiB")]
    summary += [(f"final {k}", scalar_text(v)) for k, v in (manifest.get("metrics") or {}).items()]
    summary += [(f"timing {k}", scalar_text(v)) for k, v in (manifest.get("timing") or {}).items()]
    summary += [("versions", scalar_text(manifest.get("library_versions")))]
    return {"summary": summary, "figures": figs, "blocks": table_of(block_rows)}


def request_sections(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, req in enumerate(r for r in manifest.get("requests") or [] if isinstance(r, dict)):
        rid = req.get("request_id", i + 1)
        residuals = maybe_json(req.get("residuals"))
        guard = maybe_json(req.get("guard"))
        plan = maybe_json(req.get("plan"))
        decisions = maybe_json(req.get("decisions"))
        known = [(k, scalar_text(maybe_json(req[k]))) for k in REQUEST_FIELDS if k in req]
        if "speedup" not in req and isinstance(req.get("wall_time_s"), (int, float)):
            known.append(("speedup", "not recorded in the manifest"))
        known += [(k, f"{len(req[k])} ids" if isinstance(req[k], list) else scalar_text(req[k]))
                  for k in LONG_FIELDS if k in req]
        taken = set(REQUEST_FIELDS) | set(LONG_FIELDS) | {"residuals", "guard", "plan", "decisions"}
        other = rows_of({k: v for k, v in req.items() if k not in taken})
        fig = figures.residual_figure(residuals, rid) if isinstance(residuals, list) else None
        guard_rows = guard if isinstance(guard, list) else ([guard] if isinstance(guard, dict) else [])
        out.append({
            "id": rid, "summary": known, "other": other, "figures": [fig] if fig else [],
            "guard": table_of([g for g in guard_rows if isinstance(g, dict)]) if guard_rows else None,
            "guard_text": None if guard_rows or guard is None else scalar_text(guard),
            "plan": rows_of(plan) if isinstance(plan, dict) else None,
            "decisions": (table_of([d for d in decisions if isinstance(d, dict)])
                          if isinstance(decisions, list) else None),
            "residuals": (table_of([r for r in residuals if isinstance(r, dict)])
                          if isinstance(residuals, list) else None),
        })
    return out


# --------------------------------------------------------------------------- verification
def verification_section(v: dict[str, Any], source: str) -> dict[str, Any]:
    figs, notes = [], []
    makers: tuple[tuple[str, Callable[[Any], dict[str, str] | None]], ...] = (
        ("roc", lambda x: figures.roc_figure(x) if isinstance(x, dict) else None),
        ("per_example", lambda x: figures.pvalue_figure(x) if isinstance(x, list) else None),
        ("oracle_cloud", lambda x: figures.oracle_cloud_figure(x) if isinstance(x, dict) else None))
    for key, make in makers:
        if key in v:
            fig = make(v[key])
            if fig:
                figs.append(fig)
            else:
                notes.append(f"`{key}` is present but holds nothing to draw")
        else:
            notes.append(f"no `{key}` in this file")
    verdicts = []
    for key in ("forgotten", "faithful"):
        if isinstance(v.get(key), dict):
            verdicts.append({"name": key, "verdict": scalar_text(v[key].get("verdict")),
                             "rows": rows_of(v[key], skip=("verdict",))})
    per_example = v.get("per_example") if isinstance(v.get("per_example"), list) else None
    rest = {k: x for k, x in v.items() if k not in ("roc", "per_example", "oracle_cloud", "forgotten", "faithful")}
    return {"source": source, "figures": figs, "notes": notes, "verdicts": verdicts, "other": rows_of(rest),
            "per_example": table_of(per_example[:200]) if per_example else None,
            "per_example_total": len(per_example) if per_example else 0}


# --------------------------------------------------------------------------- audit
def audit_section(a: dict[str, Any], source: str) -> dict[str, Any]:
    results = [r for r in a.get("results") or [] if isinstance(r, dict)]
    for r in results:
        budget = (r.get("threat") or {}).get("budget") or {}
        r.setdefault("threat", {})["budget_text"] = ", ".join(f"{k}={scalar_text(v)}" for k, v in budget.items()
                                                             if v is not None) or "-"
        r.setdefault("metrics", {})
    figs = []
    raw_sweep = a.get("sweep")
    sweep: dict[str, Any] = raw_sweep if isinstance(raw_sweep, dict) else {}
    curves = [c for c in sweep.get("curves") or [] if isinstance(c, dict)]
    worst = [w for w in sweep.get("worst_case") or [] if isinstance(w, dict)]
    per_input = [p for p in sweep.get("per_input") or [] if isinstance(p, dict)]
    for model, norm in sorted({(c["model"], c["norm"]) for c in curves}):
        group = [c for c in curves if (c["model"], c["norm"]) == (model, norm)]
        w = next((x for x in worst if (x["model"], x["norm"]) == (model, norm)), None)
        figs.append(figures.robustness_figure(group, w, model, norm))
        if w:
            f = figures.worst_case_figure(per_input, model, norm, w["eps"])
            if f:
                figs.append(f)
    # extraction fidelity against queries: the sweep's curves, else every extraction result as a point
    points = [(f"{q['attack']} ({q['model']}, {q.get('output') or 'scores'})", q["queries"], q["fidelity"])
              for q in sweep.get("query_curves") or [] if isinstance(q, dict)]
    if not points:
        by: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in results:
            if r.get("family") == "extraction" and isinstance(r["metrics"].get("queries"), (int, float)):
                by.setdefault((r["attack"], r.get("model", "model")), []).append(
                    (r["metrics"]["queries"], r["metrics"].get("fidelity")))
        points = [(f"{k[0]} ({k[1]})", [p[0] for p in sorted(v)], [p[1] for p in sorted(v)]) for k, v in by.items()]
    f = figures.fidelity_figure(points)
    if f:
        figs.append(f)
    for r in results:
        arrays = r.get("arrays") or {}
        if r.get("attack") == "mi_face" and "reconstructions" in arrays:
            f = figures.mi_face_figure(arrays["reconstructions"], arrays.get("class_means") or [],
                                       r.get("model", "model"), r["metrics"], r.get("settings") or {})
            if f:
                figs.append(f)
    f = figures.backdoor_figure([r for r in results if r.get("family") == "poisoning"])
    if f:
        figs.append(f)
    tables = []
    for fam in dict.fromkeys(r.get("family", "?") for r in results):
        rows = []
        for r in (x for x in results if x.get("family") == fam):
            metrics = {k: v for k, v in r["metrics"].items() if not isinstance(v, list)}
            rows.append({"attack": r.get("attack"), "model": r.get("model"),
                         "knowledge": (r.get("threat") or {}).get("knowledge"),
                         "goal": (r.get("threat") or {}).get("goal"), "budget": r["threat"]["budget_text"],
                         **metrics})
        tables.append({"family": fam, **table_of(rows)})
    worst_rows = []
    for w in worst:
        worst_rows.append({"model": w["model"], "norm": w["norm"], "attacks": " ".join(w.get("attacks") or []),
                           **{f"eps={e:g}": v for e, v in zip(w["eps"], w["robust_accuracy"])}})
    notes = [] if results else ["this file holds no attack results"]
    if not curves:
        notes.append("no epsilon sweep in this file (run `obliviate audit ... --eps 0.05:0.3:6 --out FILE`)")
    errors = [e for e in a.get("errors") or [] if isinstance(e, dict)]
    return {"source": source, "dataset": scalar_text(a.get("dataset")), "models": scalar_text(a.get("models")),
            "figures": figs, "tables": tables, "worst": table_of(worst_rows) if worst_rows else None,
            "notes": notes, "errors": table_of(errors) if errors else None}
