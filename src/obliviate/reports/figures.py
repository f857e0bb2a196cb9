"""The report's figures: matplotlib (Agg, no display) drawn to PNG and embedded as base64 data URIs, so
the page needs no network and no files beside it. Every figure carries axis labels with units and a
title naming the settings that made it.

>>> fig = Figure("t", "caption")
>>> ax = fig.axes()
>>> _ = ax.plot([0, 1], [0, 1])
>>> fig.uri().startswith("data:image/png;base64,")
True
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DPI = 96
COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


class Figure:
    """One figure of the report: a title and a caption beside a matplotlib figure, embedded as PNG."""

    def __init__(self, title: str, caption: str = "", *, size: tuple[float, float] = (6.4, 3.6),
                 ncols: int = 1, nrows: int = 1) -> None:
        self.title = title
        self.caption = caption
        self.wide = size[0] > 7
        self.fig, axes = plt.subplots(nrows, ncols, figsize=size, dpi=DPI, squeeze=False)
        self._axes = [ax for row in axes for ax in row]

    def axes(self, i: int = 0) -> Any:
        return self._axes[i]

    def all_axes(self) -> list[Any]:
        return list(self._axes)

    def uri(self) -> str:
        buf = io.BytesIO()
        self.fig.tight_layout()
        self.fig.savefig(buf, format="png", dpi=DPI)
        plt.close(self.fig)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "caption": self.caption, "uri": self.uri(), "wide": self.wide}


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan for v in values]


def training_figure(blocks: list[dict[str, Any]], settings: str) -> dict[str, str] | None:
    """Loss (and accuracy, when the manifest records it) per training block."""
    idx = [b.get("index", i + 1) for i, b in enumerate(blocks)]
    loss = _finite([b.get("loss") for b in blocks])
    acc_key = next((k for k in ("accuracy", "validation_accuracy", "train_accuracy") if any(k in b for b in blocks)),
                   None)
    if not any(math.isfinite(v) for v in loss) and acc_key is None:
        return None
    fig = Figure("Training per block", f"Mean training loss per recorded block{' and ' + acc_key if acc_key else ''}"
                 f"; {settings}")
    ax = fig.axes()
    ax.plot(idx, loss, "o-", color=COLOURS[0], label="training loss")
    ax.set_xlabel("block (index)")
    ax.set_ylabel("loss (cross-entropy, nats)")
    if acc_key:
        ax2 = ax.twinx()
        ax2.plot(idx, _finite([b.get(acc_key) for b in blocks]), "s--", color=COLOURS[1], label=acc_key)
        ax2.set_ylabel(f"{acc_key} (fraction)")
        ax2.set_ylim(0, 1.02)
    ax.set_title("Training loss per block", fontsize=9)
    ax.grid(alpha=0.3)
    return fig.to_dict()


def storage_figure(blocks: list[dict[str, Any]]) -> dict[str, str] | None:
    """Bytes stored per block (update, optimizer state and snapshot payloads)."""
    idx: list[Any] = []
    parts: dict[str, list[float]] = {"update": [], "optimizer": [], "snapshot": []}
    for i, b in enumerate(blocks):
        idx.append(b.get("index", i + 1))
        for k in parts:
            ref = b.get(k)
            parts[k].append((ref.get("bytes", 0) if isinstance(ref, dict) else 0) / 2 ** 20)
    if not any(v for vals in parts.values() for v in vals):
        return None
    fig = Figure("Storage per block", "Payload bytes the run store keeps per block, by kind")
    ax = fig.axes()
    bottom = [0.0] * len(idx)
    for k, vals in parts.items():
        if any(vals):
            ax.bar(idx, vals, bottom=bottom, label=k)
            bottom = [a + b for a, b in zip(bottom, vals)]
    ax.set_xlabel("block (index)")
    ax.set_ylabel("stored (MiB)")
    ax.set_title("Stored payloads per block", fontsize=9)
    ax.legend(fontsize=8)
    return fig.to_dict()


def residual_figure(residuals: list[dict[str, Any]], request_id: Any) -> dict[str, str] | None:
    """The residual-memory series of a request: every numeric measure per retrained block."""
    rows = [r for r in residuals if isinstance(r, dict)]
    keys = [k for k in ("rel_l2", "rel_l1", "probe_tv") if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if not keys:
        keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "block"})[:3]
    if not rows or not keys:
        return None
    fig = Figure(f"Residual memory, request {request_id}",
                 "Residual of the deleted data's influence per block after the request (areas: deleted = "
                 "the block that held the data, affected = later blocks)")
    ax = fig.axes()
    blocks = [r.get("block", i + 1) for i, r in enumerate(rows)]
    for j, k in enumerate(keys):
        ax.plot(blocks, _finite([r.get(k) for r in rows]), "o-", color=COLOURS[j % len(COLOURS)], label=k)
    for r, b in zip(rows, blocks):
        if r.get("area"):
            ax.annotate(str(r["area"]), (b, 0), xycoords=("data", "axes fraction"), fontsize=7, ha="center",
                        va="bottom", color="grey")
    ax.set_xlabel("block (index)")
    ax.set_ylabel("residual (relative, dimensionless)")
    ax.set_title(f"Residual series, request {request_id}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig.to_dict()


def roc_figure(roc: dict[str, Any]) -> dict[str, str] | None:
    fpr, tpr = _finite(roc.get("fpr") or []), _finite(roc.get("tpr") or [])
    if not fpr or len(fpr) != len(tpr):
        return None
    pts = [(f, t) for f, t in zip(fpr, tpr) if f > 0 and t > 0]
    fig = Figure("Membership ROC (log scale)", "ROC of the membership test on the forgotten examples against "
                 "the oracles (log-log axes: the low false-positive region matters)")
    ax = fig.axes()
    auc = roc.get("auc")
    label = f"membership test (AUC {auc:.3f})" if isinstance(auc, (int, float)) else "membership test"
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=COLOURS[0], label=label)
        lo = max(min(p[0] for p in pts), 1e-5)
        ax.plot([lo, 1], [lo, 1], ":", color="grey", label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("false positive rate (fraction, log)")
    ax.set_ylabel("true positive rate (fraction, log)")
    ax.set_title("Membership test ROC", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig.to_dict()


def pvalue_figure(per_example: list[dict[str, Any]], alpha: float = 0.05) -> dict[str, str] | None:
    rows = [r for r in per_example if isinstance(r, dict) and isinstance(r.get("p_value"), (int, float))]
    if not rows:
        return None
    rows.sort(key=lambda r: r["p_value"])
    fig = Figure("Per-example p-values", f"p-value per forgotten example (sorted); dashed line at {alpha}")
    ax = fig.axes()
    ps = [max(float(r["p_value"]), 1e-12) for r in rows]
    colours = [COLOURS[3] if r.get("direction") in ("member", "remembered", "lower") else COLOURS[0] for r in rows]
    ax.scatter(range(len(ps)), ps, c=colours, s=14)
    ax.axhline(alpha, ls="--", color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("example (rank by p-value)")
    ax.set_ylabel("p-value (log)")
    ax.set_title(f"Per-example p-values ({len(ps)} examples)", fontsize=9)
    ax.grid(alpha=0.3)
    return fig.to_dict()


def oracle_cloud_figure(cloud: dict[str, Any]) -> dict[str, str] | None:
    oracles = [o for o in cloud.get("oracles") or [] if isinstance(o, dict)]
    cand = cloud.get("candidate") if isinstance(cloud.get("candidate"), dict) else None
    if not oracles and not cand:
        return None
    fig = Figure("Oracle cloud", "Each oracle (a retrain without the forgotten data) by test accuracy and "
                 "agreement with the exact retrain; the candidate (the unlearned model) should sit inside")
    ax = fig.axes()
    if oracles:
        ax.scatter(_finite([o.get("accuracy") for o in oracles]), _finite([o.get("agreement") for o in oracles]),
                   s=24, color=COLOURS[0], label=f"oracles ({len(oracles)})")
    if cand:
        ax.scatter([cand.get("accuracy")], [cand.get("agreement")], marker="*", s=180, color=COLOURS[3],
                   label="candidate")
    ax.set_xlabel("test accuracy (fraction)")
    ax.set_ylabel("agreement with the exact retrain (fraction)")
    ax.set_title("Candidate among the oracles", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig.to_dict()


def robustness_figure(curves: list[dict[str, Any]], worst: dict[str, Any] | None, model: str,
                      norm: str) -> dict[str, str]:
    settings = "; ".join(f"{c['attack']}: " + ", ".join(f"{k}={v}" for k, v in (c.get("settings") or {}).items()
                                                        if k in ("steps", "alpha", "restarts", "queries",
                                                                 "random_start", "max_samples"))
                         for c in curves)
    fig = Figure(f"Robust accuracy against epsilon ({norm}, {model})",
                 f"Robust accuracy of model {model} under each attack and the worst case per input across them; "
                 f"{settings}")
    ax = fig.axes()
    for j, c in enumerate(curves):
        ax.plot(c["eps"], _finite(c["robust_accuracy"]), "o-", color=COLOURS[j % len(COLOURS)], label=c["attack"])
    if worst:
        ax.plot(worst["eps"], _finite(worst["robust_accuracy"]), "k--", lw=2, label="worst case")
    ax.set_xlabel(f"epsilon ({norm} norm, input units)")
    ax.set_ylabel("robust accuracy (fraction)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Robust accuracy vs epsilon, {model}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig.to_dict()


def worst_case_figure(per_input: list[dict[str, Any]], model: str, norm: str,
                      grid: Sequence[float]) -> dict[str, str] | None:
    rows = [r for r in per_input if r["model"] == model and r["norm"] == norm]
    if not rows:
        return None
    labels = ["misclassified"] + [f"{e:g}" for e in grid] + ["robust"]
    counts = [0] * len(labels)
    for r in rows:
        e = r.get("min_eps_fooled")
        if not r.get("clean_correct", True):
            counts[0] += 1
        elif e is None:
            counts[-1] += 1
        else:
            i = min(range(len(grid)), key=lambda j: abs(grid[j] - e))
            counts[1 + i] += 1
    fig = Figure(f"Worst case per input ({norm}, {model})",
                 f"Smallest epsilon at which any attack fooled each of {len(rows)} inputs; 'robust': no attack "
                 f"fooled it up to the largest epsilon")
    ax = fig.axes()
    ax.bar(range(len(labels)), counts, color=[COLOURS[3]] + [COLOURS[0]] * len(grid) + [COLOURS[2]])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, fontsize=8)
    ax.set_xlabel(f"smallest fooling epsilon ({norm} norm)")
    ax.set_ylabel("inputs (count)")
    ax.set_title(f"Per-input worst case, {model}", fontsize=9)
    return fig.to_dict()


def fidelity_figure(points: list[tuple[str, list[float], list[float]]]) -> dict[str, str] | None:
    if not points:
        return None
    fig = Figure("Extraction fidelity against queries", "Agreement of each stolen copy with the victim on "
                 "held-out inputs, by the number of queries the attacker spent")
    ax = fig.axes()
    for j, (label, qs, fid) in enumerate(points):
        ax.plot(qs, _finite(fid), "o-", color=COLOURS[j % len(COLOURS)], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("queries (samples sent to the victim, log)")
    ax.set_ylabel("fidelity (fraction agreeing)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Model extraction", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig.to_dict()


def mi_face_figure(recon: list[Any], means: list[Any], model: str, metrics: dict[str, Any],
                   settings: dict[str, Any]) -> dict[str, str] | None:
    if not recon or not means or len(recon) != len(means):
        return None
    k = len(recon)
    fig = Figure(f"MI-Face reconstructions ({model})",
                 f"Top: reconstruction per class; bottom: the class's training mean. Nearest own class mean for "
                 f"{metrics.get('class_mean_hits', '?')} of {k}; SSIM to the class mean "
                 f"{_num(metrics.get('ssim_to_mean'))}; space={settings.get('space', '?')}, "
                 f"steps={settings.get('steps', '?')}, lr={settings.get('lr', '?')}",
                 size=(min(1.0 * k, 12), 2.6), ncols=k, nrows=2)
    nearest = metrics.get("nearest_class_mean") or [None] * k
    for c in range(k):
        for row, imgs in enumerate((recon, means)):
            ax = fig.axes(row * k + c)
            img = _image(imgs[c])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                hit = nearest[c] == c if nearest[c] is not None else None
                ax.set_title(f"{c}" + ("" if hit is None else (" ok" if hit else f" ({nearest[c]})")), fontsize=8,
                             color="black" if hit in (None, True) else "red")
        fig.axes(c).set_xlabel("")
    fig.axes(0).set_ylabel("recon.", fontsize=8)
    fig.axes(k).set_ylabel("mean", fontsize=8)
    return fig.to_dict()


def backdoor_figure(rows: list[dict[str, Any]]) -> dict[str, str] | None:
    if not rows:
        return None
    fig = Figure("Poisoning and backdoors", "Attack success (triggered inputs sent to the target class, or "
                 "the attack's own success measure) and clean-accuracy drop of each poisoned model")
    ax = fig.axes()
    names = [f"{r['attack']}\n{r['model']}" for r in rows]
    x = list(range(len(rows)))
    ax.bar([i - 0.2 for i in x], _finite([r["metrics"].get("attack_success") for r in rows]), width=0.4,
           label="attack success (fraction)")
    ax.bar([i + 0.2 for i in x], _finite([r["metrics"].get("clean_accuracy_drop") for r in rows]), width=0.4,
           label="clean accuracy drop (fraction)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("fraction of inputs")
    ax.set_ylim(min(0.0, *[v for v in _finite([r["metrics"].get("clean_accuracy_drop") for r in rows])
                           if math.isfinite(v)] or [0.0]) - 0.02, 1.02)
    ax.set_title("Backdoor success, " + ", ".join(sorted({r["threat"]["budget_text"] for r in rows}))[:90],
                 fontsize=8)
    ax.legend(fontsize=8)
    return fig.to_dict()


def _image(arr: Any) -> Any:
    import numpy as np

    a = np.asarray(arr, dtype=float)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    elif a.ndim == 1:
        side = math.isqrt(a.size)
        a = a.reshape(side, side) if side * side == a.size else a.reshape(1, -1)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (a - lo) / (hi - lo) if hi > lo and (lo < 0 or hi > 1) else a


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"
