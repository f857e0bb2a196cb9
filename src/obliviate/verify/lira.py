"""LiRA (Carlini et al. 2022, "Membership Inference Attacks From First Principles") with its reference
models, and the per-example unlearning test :class:`UnlearningLiRA` in the spirit of U-LiRA (Hayes et al.
2024, arXiv 2403.01218).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError
from .metrics import forgetting_quality, unlearning_epsilons
from .outputs import MembershipResult, _check_batch_size, _membership_labels, membership_result, model_confidences

__all__ = ["LiRA", "ReferenceModels", "UnlearningLiRA", "split_reference_outputs", "train_reference_models"]

ModelFactory = Callable[[int], nn.Module]
TrainFn = Callable[[nn.Module, IndexedDataset], nn.Module | None]
Outputs = nn.Module | Sequence[nn.Module] | np.ndarray | torch.Tensor


def _train(model_factory: ModelFactory, train_fn: TrainFn, index: int, data: IndexedDataset) -> nn.Module:
    model = model_factory(index)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model_factory(i)` to return an nn.Module, but got {type(model).__name__}")
    trained = train_fn(model, data)
    return trained if isinstance(trained, nn.Module) else model


# --------------------------------------------------------------------------------------------------
# Reference models for LiRA
# --------------------------------------------------------------------------------------------------


@dataclass
class ReferenceModels:
    """Reference models and which samples each was trained on: ``in_mask[i, j]`` is True when model ``i``
    saw the sample with id ``ids[j]``."""

    models: list[nn.Module]
    in_mask: np.ndarray
    ids: np.ndarray

    def outputs(self, dataset: IndexedDataset, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """``(in_phi, out_phi)`` of shape ``(num_models, len(dataset))`` on ``dataset``, NaN where a model is
        not of that kind for a sample. Samples outside the reference pool are "out" for every model."""
        phi = np.stack([model_confidences(m, dataset, batch_size).phi for m in self.models])
        pos = {int(i): j for j, i in enumerate(self.ids.tolist())}
        mask = np.zeros(phi.shape, dtype=bool)
        for col, sid in enumerate(dataset.ids.tolist()):
            j = pos.get(int(sid))
            if j is not None:
                mask[:, col] = self.in_mask[:, j]
        return split_reference_outputs(phi, mask)


def split_reference_outputs(phi: Any, in_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(num_models, n)`` outputs into "in" and "out" arrays, NaN where not applicable.

    >>> import numpy as np
    >>> i, o = split_reference_outputs(np.array([[1.0, 2.0]]), np.array([[True, False]]))
    >>> i.tolist(), o.tolist()
    ([[1.0, nan]], [[nan, 2.0]])
    """
    p = np.asarray(phi, dtype=np.float64)
    m = np.asarray(in_mask, dtype=bool)
    if p.shape != m.shape or p.ndim != 2:
        raise ConfigError(f"Expected `phi` and `in_mask` of the same 2-d shape, but got {p.shape} and {m.shape}")
    return np.where(m, p, np.nan), np.where(m, np.nan, p)


def train_reference_models(dataset: IndexedDataset, model_factory: ModelFactory, train_fn: TrainFn,
                           num_models: int, *, seed: int = 0) -> ReferenceModels:
    """Train ``num_models`` reference models, each on a random half of ``dataset``, chosen so that every
    sample is in exactly half of them (Carlini et al. 2022's scheme for online LiRA)."""
    if not isinstance(num_models, int) or num_models < 2 or num_models % 2:
        raise ConfigError(f"Expected argument `num_models` to be an even int >= 2, but got {num_models!r}")
    rng = np.random.default_rng(seed)
    in_mask = rng.uniform(size=(num_models, len(dataset))).argsort(axis=0) < num_models // 2
    models = [_train(model_factory, train_fn, i, dataset.take(torch.from_numpy(np.flatnonzero(in_mask[i]))))
              for i in range(num_models)]
    return ReferenceModels(models, in_mask, dataset.ids.numpy().copy())


# --------------------------------------------------------------------------------------------------
# LiRA (Carlini et al. 2022) and the unlearning test (Hayes et al. 2024)
# --------------------------------------------------------------------------------------------------


def _phi_matrix(outputs: Any, dataset: IndexedDataset | None, batch_size: int, name: str) -> np.ndarray:
    """``(num_models, n)`` phi from models (computed on ``dataset``) or from a precomputed array."""
    if isinstance(outputs, nn.Module):
        outputs = [outputs]
    if isinstance(outputs, (list, tuple)) and outputs and all(isinstance(m, nn.Module) for m in outputs):
        if dataset is None:
            raise ConfigError(f"`{name}` holds models; a dataset is needed to run them")
        return np.stack([model_confidences(m, dataset, batch_size).phi for m in outputs])
    arr = np.asarray(outputs.detach().cpu() if isinstance(outputs, torch.Tensor) else outputs, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ConfigError(f"Expected `{name}` to be models or an array (num_models, n), but got shape {arr.shape}")
    if dataset is not None and arr.shape[1] != len(dataset):
        raise ConfigError(f"Expected `{name}` to have one column per sample ({len(dataset)}), but got {arr.shape[1]}")
    if np.any(np.isinf(arr)):
        raise ConfigError(f"Expected finite values in `{name}` (NaN marks a missing entry)")
    return arr


def _fit_gaussians(values: np.ndarray, *, fixed_variance: bool, min_std: float,
                   name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean and standard deviation of ``values`` (models x samples, NaN = missing). With
    ``fixed_variance`` one pooled within-sample standard deviation serves every sample."""
    counts = np.sum(~np.isnan(values), axis=0)
    if np.any(counts == 0):
        missing = int(np.sum(counts == 0))
        raise ConfigError(f"{missing} sample(s) have no {name} reference output; train more reference models")
    mu = np.nansum(values, axis=0) / counts
    sq = np.nansum((values - mu) ** 2, axis=0)
    if fixed_variance:
        total = counts.sum() - counts.size  # pooled, one degree of freedom per fitted mean
        pooled = math.sqrt(sq.sum() / total) if total > 0 else 0.0
        std = np.full(mu.shape, max(pooled, min_std))
    else:
        if np.any(counts < 2):
            raise ConfigError(f"Per-sample variances need at least 2 {name} reference outputs per sample; train "
                              "more reference models or use fixed_variance=True")
        std = np.maximum(np.sqrt(sq / counts), min_std)
    return mu, std


def _norm_logpdf(x: np.ndarray, mu: np.ndarray, std: np.ndarray) -> np.ndarray:
    logpdf: np.ndarray = -0.5 * ((x - mu) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)
    return logpdf


class LiRA:
    """Likelihood-ratio membership attack, Carlini et al. 2022, "Membership Inference Attacks From First
    Principles" (S&P). For each sample, the target model's logit-scaled confidence
    ``phi = log(p_y / (1 - p_y))`` is compared with Gaussians fitted to the ``phi`` of reference models
    trained with the sample ("in") and without it ("out"):

    - online: score = ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)``;
    - offline (no "in" models): score = ``-log P[Z >= phi]``, ``Z ~ N(mu_out, s_out)`` (a one-sided test).

    ``fixed_variance=True`` uses one pooled within-sample standard deviation per distribution instead of
    per-sample ones, which Carlini et al. recommend with few reference models (pooled within-sample
    variance here; their code uses the global variance). Not implemented: query augmentations (mirror and
    shift queries of the same image). Standard deviations are floored at ``min_std``.

    ``score(target_model, dataset, in_models_outputs, out_models_outputs, *, membership=None)``: the
    target is a model (or a precomputed ``phi`` vector); references are lists of models (run on
    ``dataset``) or precomputed ``(num_models, n)`` phi arrays with NaN where a model is not of that kind
    for a sample (see :func:`split_reference_outputs`, :meth:`ReferenceModels.outputs`); ``membership``
    (1 = member), when known, gives the metrics.

    >>> import numpy as np
    >>> out_ref = np.array([[0.0, 0.1], [0.2, -0.1], [-0.2, 0.0]])
    >>> r = LiRA(online=False).score(np.array([3.0, 0.0]), None, None, out_ref, membership=[1, 0])
    >>> bool(r.scores[0] > r.scores[1]), r.auc
    (True, 1.0)
    """

    name = "lira"

    def __init__(self, *, online: bool = False, fixed_variance: bool = True, min_std: float = 1e-3,
                 batch_size: int = 512) -> None:
        if not min_std > 0:
            raise ConfigError(f"Expected argument `min_std` to be positive, but got {min_std}")
        self.online = bool(online)
        self.fixed_variance = bool(fixed_variance)
        self.min_std = float(min_std)
        self.batch_size = _check_batch_size(batch_size)

    def score(self, target_model: nn.Module | Any, dataset: IndexedDataset | None,
              in_models_outputs: Outputs | None = None, out_models_outputs: Outputs | None = None, *,
              membership: Any | None = None) -> MembershipResult:
        """Score every sample of ``dataset`` for membership in ``target_model``'s training set."""
        if out_models_outputs is None:
            raise ConfigError("LiRA needs `out_models_outputs`: reference models trained without the samples")
        if self.online and in_models_outputs is None:
            raise ConfigError("online LiRA needs `in_models_outputs`: reference models trained with the samples; "
                              "use LiRA(online=False) without them")
        target = _phi_matrix(target_model, dataset, self.batch_size, "target_model")
        if target.shape[0] != 1 or np.any(np.isnan(target)):
            raise ConfigError("Expected one target model (or one finite phi vector)")
        phi = target[0]
        out_phi = _phi_matrix(out_models_outputs, dataset, self.batch_size, "out_models_outputs")
        if out_phi.shape[1] != phi.size:
            raise ConfigError(f"Expected reference outputs for {phi.size} samples, but got {out_phi.shape[1]}")
        mu_out, s_out = _fit_gaussians(out_phi, fixed_variance=self.fixed_variance, min_std=self.min_std, name="out")
        details: dict[str, Any] = {"online": self.online, "fixed_variance": self.fixed_variance,
                                   "num_out_models": int(out_phi.shape[0])}
        if self.online:
            in_phi = _phi_matrix(in_models_outputs, dataset, self.batch_size, "in_models_outputs")
            if in_phi.shape[1] != phi.size:
                raise ConfigError(f"Expected reference outputs for {phi.size} samples, but got {in_phi.shape[1]}")
            mu_in, s_in = _fit_gaussians(in_phi, fixed_variance=self.fixed_variance, min_std=self.min_std, name="in")
            scores = _norm_logpdf(phi, mu_in, s_in) - _norm_logpdf(phi, mu_out, s_out)
            details["num_in_models"] = int(in_phi.shape[0])
        else:
            from scipy.stats import norm

            scores = -norm.logsf((phi - mu_out) / s_out)
        scores = np.clip(scores, -1e12, 1e12)
        labels = _membership_labels(membership, phi.size)
        ids = None if dataset is None else dataset.ids.numpy().copy()
        return membership_result("lira_online" if self.online else "lira_offline", scores, labels, ids=ids,
                                 details=details)


class UnlearningLiRA:
    """Per-example unlearning test in the spirit of U-LiRA (Hayes et al. 2024, "Inexact Unlearning Needs More
    Careful Evaluations to Avoid a False Sense of Privacy", arXiv 2403.01218).

    For each forgotten example, the ``phi`` of the unlearned model(s) is compared with a Gaussian fitted
    to the ``phi`` of oracle models retrained without it (exact retrains: different seeds or data orders)
    and, when given, of models trained with it (``original_outputs``, e.g. the originals before
    unlearning). The per-example statistic is the log likelihood ratio "with / without" when originals
    are given, else ``-log p`` of a two-sided test against the retrained Gaussian (a deviation in either
    direction, over- or under-confidence, betrays an inexact unlearning).

    The same statistic is computed for each retrained model, left out of the fit in turn, giving the
    result's AUC: positives are (unlearned model, example) pairs, negatives (retrained model, example)
    pairs. An AUC near 0.5 means the unlearned outputs are indistinguishable from retraining; the
    per-example statistics say which examples leak. With two or more unlearned models the details also
    hold the NeurIPS 2023 challenge's per-example epsilons and forgetting quality
    (:func:`obliviate.verify.metrics.unlearning_epsilons`).

    Simplifications: Hayes et al. train shadow pairs (unlearned and retrained models over many random
    forget sets) so the Gaussians describe the unlearning algorithm itself; here the caller supplies the
    models, and with a single unlearned model the test has one sample per example.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> retrained = rng.normal(0.0, 1.0, size=(8, 50))
    >>> bad = UnlearningLiRA().score(retrained[:2] + 6.0, None, retrained)  # still confident: not unlearned
    >>> bad.auc > 0.95
    True
    """

    name = "u_lira"

    def __init__(self, *, fixed_variance: bool = True, two_sided: bool = True, min_std: float = 1e-3,
                 delta: float = 0.01, batch_size: int = 512) -> None:
        if not min_std > 0:
            raise ConfigError(f"Expected argument `min_std` to be positive, but got {min_std}")
        self.fixed_variance = bool(fixed_variance)
        self.two_sided = bool(two_sided)
        self.min_std = float(min_std)
        self.delta = float(delta)
        self.batch_size = _check_batch_size(batch_size)

    def _statistic(self, phi: np.ndarray, out_fit: tuple[np.ndarray, np.ndarray],
                   in_fit: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        mu_o, s_o = out_fit
        statistic: np.ndarray
        if in_fit is not None:
            mu_i, s_i = in_fit
            statistic = _norm_logpdf(phi, mu_i, s_i) - _norm_logpdf(phi, mu_o, s_o)
            return statistic
        from scipy.stats import norm

        z = (phi - mu_o) / s_o
        if self.two_sided:
            statistic = -(math.log(2.0) + norm.logsf(np.abs(z)))
            return statistic
        statistic = -norm.logsf(z)
        return statistic

    def score(self, unlearned: Outputs, forget_set: IndexedDataset | None, retrained_outputs: Outputs, *,
              original_outputs: Outputs | None = None) -> MembershipResult:
        """Test ``unlearned`` (one model, several, or precomputed phi ``(K, n)``) on the forgotten examples."""
        u = _phi_matrix(unlearned, forget_set, self.batch_size, "unlearned")
        r = _phi_matrix(retrained_outputs, forget_set, self.batch_size, "retrained_outputs")
        if np.any(np.isnan(u)) or np.any(np.isnan(r)):
            raise ConfigError("Expected every unlearned and retrained model to have an output for every example")
        if u.shape[1] != r.shape[1]:
            raise ConfigError(f"Expected outputs for the same examples, but got {u.shape[1]} and {r.shape[1]}")
        if r.shape[0] < 3:
            raise ConfigError("Expected at least 3 retrained oracle models (one is left out in turn to score the "
                              "retrained side)")
        o = None if original_outputs is None else _phi_matrix(original_outputs, forget_set, self.batch_size,
                                                                "original_outputs")
        fit: dict[str, Any] = {"fixed_variance": self.fixed_variance, "min_std": self.min_std}
        in_fit = None if o is None else _fit_gaussians(o, name="original", **fit)
        pos = self._statistic(u, _fit_gaussians(r, name="retrained", **fit), in_fit)
        neg = np.stack([self._statistic(r[j], _fit_gaussians(np.delete(r, j, axis=0), name="retrained", **fit), in_fit)
                        for j in range(r.shape[0])])
        pos, neg = np.clip(pos, -1e12, 1e12), np.clip(neg, -1e12, 1e12)
        scores = np.r_[pos.reshape(-1), neg.reshape(-1)]
        labels = np.r_[np.ones(pos.size, np.int64), np.zeros(neg.size, np.int64)]
        n = u.shape[1]
        ex_ids = np.arange(n) if forget_set is None else forget_set.ids.numpy()
        details: dict[str, Any] = {
            "statistic": "log_likelihood_ratio" if o is not None else ("neg_log_p_two_sided" if self.two_sided
                                                                       else "neg_log_p"),
            "num_unlearned": int(u.shape[0]), "num_retrained": int(r.shape[0]),
            "example_ids": ex_ids.copy(),
            "per_example": pos.mean(axis=0),
            # how often the unlearned statistic exceeds the retrained ones' for the same example
            "per_example_rank": np.mean(pos[:, None, :] > neg[None, :, :], axis=(0, 1)),
        }
        if u.shape[0] >= 2:
            eps = unlearning_epsilons(u, r, delta=self.delta)
            details["epsilons"] = eps
            details["forgetting_quality"] = forgetting_quality(eps)
        ids = np.r_[np.tile(ex_ids, u.shape[0]), np.tile(ex_ids, r.shape[0])]
        return membership_result(self.name, scores, labels, ids=ids, details=details)
