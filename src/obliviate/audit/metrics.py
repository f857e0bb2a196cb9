"""Pivot metrics shared by the attacks: perturbation norms, success, accuracy, fidelity, image similarity.

The survey (He et al., TSE, arXiv 1911.12562) compares attacks of one family on the same "pivot
metrics"; these functions compute them the same way for every attack.

>>> import torch
>>> d = torch.tensor([[[[0.0, 0.5], [0.0, -0.2]]]])
>>> [round(float(v), 3) for v in perturbation_norms(d).values()]
[2.0, 0.539, 0.5]
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

L0_TOLERANCE = 1e-6  # a feature counts as changed when it moved by more than this


def perturbation_norms(delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample L0 (features changed by more than 1e-6), L2 and Linf norms of ``delta``."""
    flat = delta.flatten(1)
    return {"l0": (flat.abs() > L0_TOLERANCE).sum(1).float(), "l2": flat.norm(p=2, dim=1),
            "linf": flat.abs().amax(1) if flat.shape[1] else torch.zeros(flat.shape[0])}


def mean_median(values: torch.Tensor) -> tuple[float, float]:
    """Mean and median, ``nan`` for an empty tensor (no successful example to measure)."""
    if values.numel() == 0:
        return math.nan, math.nan
    v = values.double()
    return float(v.mean()), float(v.median())


@torch.no_grad()
def predict(model: Any, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Predicted labels in batches (``model`` is called; mode is the caller's business)."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.int64)
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def predict_proba(model: Any, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    return torch.cat([F.softmax(model(x[i:i + batch_size]), 1) for i in range(0, len(x), batch_size)])


def accuracy(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y``.

    >>> accuracy(torch.nn.Identity(), torch.eye(3), torch.tensor([0, 1, 0]))
    0.6666666666666666
    """
    if len(y) == 0:
        return math.nan
    return int((predict(model, x).cpu() == y.cpu()).sum()) / len(y)


def agreement(a: Any, b: Any, x: torch.Tensor) -> float:
    """Fidelity: the fraction of ``x`` on which two models predict the same label."""
    return int((predict(a, x).cpu() == predict(b, x).cpu()).sum()) / max(len(x), 1)


def evasion_metrics(x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, clean_pred: torch.Tensor,
                    adv_pred: torch.Tensor, target: torch.Tensor | None) -> dict[str, float]:
    """Success rate, robust and clean accuracy, and L0/L2/Linf (mean, median) over successful examples.

    Untargeted: an input counts when it was classified correctly and the adversarial one is not. Targeted:
    when the adversarial one is classified as its target. Robust accuracy is over all inputs.
    """
    correct = clean_pred == y
    if target is None:
        success = correct & (adv_pred != y)
        denom = int(correct.sum())
    else:
        success = adv_pred == target
        denom = len(y)
    norms = perturbation_norms((x_adv - x)[success])
    out = {"success_rate": float(success.sum()) / denom if denom else math.nan,
           "robust_accuracy": float((adv_pred == y).float().mean()),
           "clean_accuracy": float(correct.float().mean()),
           "n": len(y)}
    for key, vals in norms.items():
        out[f"{key}_mean"], out[f"{key}_median"] = mean_median(vals)
    return out


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of image batches ``a`` and ``b`` of shape ``(n, C, H, W)``
    with a uniform ``window`` (shrunk to the image size), averaged per image.

    >>> x = torch.rand(2, 1, 8, 8)
    >>> [round(float(v), 4) for v in ssim(x, x)]
    [1.0, 1.0]
    """
    win = max(1, min(window, a.shape[-1], a.shape[-2]))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    a, b = a.double(), b.double()

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win, stride=1)

    mu_a, mu_b = pool(a), pool(b)
    var_a = pool(a * a) - mu_a ** 2
    var_b = pool(b * b) - mu_b ** 2
    cov = pool(a * b) - mu_a * mu_b
    npix = win * win
    if npix > 1:  # sample covariance, as scikit-image does
        corr = npix / (npix - 1)
        var_a, var_b, cov = var_a * corr, var_b * corr, cov * corr
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).float()
