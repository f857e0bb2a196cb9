"""Membership inference: who was in a model's training set? Used to verify unlearning (a forgotten sample
should look like a non-member, exactly as it does to a model retrained without it) and by the threat
audit. Every attack holds only settings; models and data come with the call, and every attack returns a
:class:`MembershipResult` (higher score = more likely a member; labels 1 = member).

- :class:`LossThresholdAttack`: Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the
  Connection to Overfitting" (CSF).
- :class:`ShadowModelAttack`: Shokri et al. 2017, "Membership Inference Attacks Against Machine Learning
  Models" (S&P), on sorted probability vectors as in Salem et al. 2019 (ML-Leaks).
- :class:`LiRA`: Carlini et al. 2022, "Membership Inference Attacks From First Principles" (S&P).
- :class:`UnlearningLiRA`: a per-example unlearning test in the spirit of U-LiRA, Hayes et al. 2024,
  "Inexact Unlearning Needs More Careful Evaluations to Avoid a False Sense of Privacy" (arXiv 2403.01218).

>>> import torch
>>> from obliviate.data import IndexedDataset
>>> ds = IndexedDataset(torch.arange(4), torch.eye(4), torch.tensor([0, 1, 0, 1]), 2)
>>> model = torch.nn.Linear(4, 2)
>>> out = model_confidences(model, ds)
>>> out.logits.shape, out.phi.shape, model.training
((4, 2), (4,), True)
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError
from .metrics import forgetting_quality, membership_advantage, roc_auc, tpr_at_fpr, unlearning_epsilons

__all__ = [
    "ATTACK_MODELS", "LiRA", "LossThresholdAttack", "MembershipResult", "ModelOutputs", "ReferenceModels",
    "ShadowModelAttack", "UnlearningLiRA", "eval_mode", "logit_scaled_confidence", "membership_result",
    "model_confidences", "split_reference_outputs", "train_reference_models",
]

ModelFactory = Callable[[int], nn.Module]
TrainFn = Callable[[nn.Module, IndexedDataset], Union[nn.Module, None]]
Outputs = Union[nn.Module, Sequence[nn.Module], np.ndarray, torch.Tensor]


# --------------------------------------------------------------------------------------------------
# Model outputs
# --------------------------------------------------------------------------------------------------


def logit_scaled_confidence(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """``phi = log(p_y / (1 - p_y))`` of the true class ``y`` (Carlini et al. 2022), computed stably as
    ``z_y - logsumexp_{j != y} z_j`` from logits ``z`` of shape ``(n, classes)``.

    >>> import numpy as np
    >>> logit_scaled_confidence(np.log([[0.8, 0.2]]), np.array([0])).round(6).tolist()  # log(0.8 / 0.2)
    [1.386294]
    """
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits.detach().cpu(),
                        dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels.detach().cpu(),
                        dtype=torch.int64)
    if z.ndim != 2 or z.shape[1] < 2 or y.shape != (z.shape[0],):
        raise ConfigError(f"Expected logits (n, classes >= 2) and labels (n,), but got {tuple(z.shape)} and "
                          f"{tuple(y.shape)}")
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], -math.inf)
    return (true - torch.logsumexp(others, dim=1)).numpy()


@dataclass(frozen=True)
class ModelOutputs:
    """One model's logits on a dataset, with the dataset's labels and ids (float64 numpy)."""

    logits: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def phi(self) -> np.ndarray:
        """Logit-scaled confidence of the true class (see :func:`logit_scaled_confidence`)."""
        return logit_scaled_confidence(self.logits, self.labels)

    @property
    def loss(self) -> np.ndarray:
        """Per-sample cross-entropy."""
        z = torch.from_numpy(self.logits)
        return torch.nn.functional.cross_entropy(z, torch.from_numpy(self.labels), reduction="none").numpy()

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore every submodule's own train/eval flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"Expected argument `batch_size` to be a positive int, but got {batch_size!r}")
    return batch_size


def model_confidences(model: nn.Module, dataset: IndexedDataset, batch_size: int = 512) -> ModelOutputs:
    """Logits of ``model`` on every sample of ``dataset``, in eval mode and without gradients; the
    model's train/eval mode is restored afterwards. Inputs go to the model's device, outputs come back
    as float64 numpy on the CPU.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}")
    if not isinstance(dataset, IndexedDataset):
        raise ConfigError(f"Expected `dataset` to be an IndexedDataset, but got {type(dataset).__name__}")
    _check_batch_size(batch_size)
    device = _device_of(model)
    chunks = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            xb = dataset.x[start:start + batch_size].to(device)
            chunks.append(model(xb).detach().to("cpu", torch.float64))
    logits = torch.cat(chunks).numpy() if chunks else np.zeros((0, dataset.num_classes))
    if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
        raise ConfigError(f"Expected the model to output logits of shape (n, {dataset.num_classes}), but got "
                          f"{logits.shape}")
    return ModelOutputs(logits, dataset.y.numpy().copy(), dataset.ids.numpy().copy())


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def _json_float(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        return _json_float(float(v))
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


@dataclass(frozen=True)
class MembershipResult:
    """Scores of one membership attack (higher = more likely a member) and, when the true membership
    ``labels`` (1 = member) are known, the pivot metrics of the threat audit: ROC AUC, TPR at 1% and 0.1%
    FPR, and membership advantage. Without labels the metrics are NaN."""

    attack: str
    scores: np.ndarray
    labels: np.ndarray | None
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_0_1pct_fpr: float
    advantage: float
    ids: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, include_scores: bool = True) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinities become ``None``)."""
        out: dict[str, Any] = {
            "attack": self.attack, "n": int(self.scores.size),
            "n_members": None if self.labels is None else int(self.labels.sum()),
            "auc": _json_float(self.auc), "tpr_at_1pct_fpr": _json_float(self.tpr_at_1pct_fpr),
            "tpr_at_0_1pct_fpr": _json_float(self.tpr_at_0_1pct_fpr), "advantage": _json_float(self.advantage),
            "details": _jsonable(self.details),
        }
        if include_scores:
            out["scores"] = _jsonable(self.scores)
            out["labels"] = None if self.labels is None else self.labels.astype(int).tolist()
            out["ids"] = None if self.ids is None else self.ids.astype(int).tolist()
        return out


def membership_result(attack: str, scores: Any, labels: Any | None = None, *, ids: Any | None = None,
                      details: Mapping[str, Any] | None = None) -> MembershipResult:
    """Build a :class:`MembershipResult`, computing the metrics from ``scores`` and ``labels``.

    >>> r = membership_result("toy", [0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    >>> r.auc, r.tpr_at_1pct_fpr, r.advantage
    (1.0, 1.0, 1.0)
    """
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64).reshape(-1)
    if labels is None:
        nan = float("nan")
        return MembershipResult(attack, s, None, nan, nan, nan, nan,
                                None if ids is None else np.asarray(ids).reshape(-1), dict(details or {}))
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1).astype(np.int64)
    return MembershipResult(
        attack, s, y, roc_auc(s, y), tpr_at_fpr(s, y, 0.01), tpr_at_fpr(s, y, 0.001),
        membership_advantage(s, y), None if ids is None else np.asarray(ids).reshape(-1), dict(details or {}),
    )


def _membership_labels(membership: Any, n: int) -> np.ndarray | None:
    if membership is None:
        return None
    m = np.asarray(membership.detach().cpu() if isinstance(membership, torch.Tensor) else membership).reshape(-1)
    if m.shape[0] != n:
        raise ConfigError(f"Expected `membership` with one entry per sample ({n}), but got {m.shape[0]}")
    if not np.all((m == 0) | (m == 1)):
        raise ConfigError("Expected `membership` to hold booleans or 0/1")
    return m.astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Loss threshold (Yeom et al. 2018)
# --------------------------------------------------------------------------------------------------


class LossThresholdAttack:
    """Yeom et al. 2018: members have lower loss. The score is ``-loss`` (threshold-free metrics); the
    hard decision "member when loss <= tau" uses ``threshold``:

    - ``"mean_member_loss"`` (Yeom's attacker, who knows the average training loss),
    - ``"best"``: the threshold of maximal TPR - FPR on the data given (an optimistic upper bound),
    - a float.

    >>> a = LossThresholdAttack()
    >>> r = a.score_losses([0.1, 0.2, 0.3], [1.0, 2.0, 0.25])
    >>> round(r.auc, 3), round(r.details["threshold"], 6)
    (0.889, 0.2)
    """

    name = "loss_threshold"
    THRESHOLDS = ("mean_member_loss", "best")

    def __init__(self, *, threshold: str | float = "mean_member_loss", batch_size: int = 512) -> None:
        if isinstance(threshold, str) and threshold not in self.THRESHOLDS:
            raise ConfigError(f"Expected argument `threshold` to be a float or one of {', '.join(self.THRESHOLDS)},"
                              f" but got {threshold!r}")
        if not isinstance(threshold, (str, int, float)) or isinstance(threshold, bool):
            raise ConfigError(f"Expected argument `threshold` to be a float or a name, but got {threshold!r}")
        self.threshold = threshold
        self.batch_size = _check_batch_size(batch_size)

    def score(self, model: nn.Module, members: IndexedDataset, nonmembers: IndexedDataset) -> MembershipResult:
        """Run the attack on ``model`` with known members and non-members."""
        lm = model_confidences(model, members, self.batch_size)
        ln = model_confidences(model, nonmembers, self.batch_size)
        return self.score_losses(lm.loss, ln.loss, ids=np.r_[lm.ids, ln.ids])

    def score_losses(self, member_losses: Any, nonmember_losses: Any, *, ids: Any | None = None) -> MembershipResult:
        """The attack on precomputed per-sample losses."""
        lm = np.asarray(member_losses, dtype=np.float64).reshape(-1)
        ln = np.asarray(nonmember_losses, dtype=np.float64).reshape(-1)
        if lm.size == 0 or ln.size == 0:
            raise ConfigError("Expected at least one member and one non-member")
        losses = np.r_[lm, ln]
        labels = np.r_[np.ones(lm.size, np.int64), np.zeros(ln.size, np.int64)]
        if self.threshold == "mean_member_loss":
            tau = float(lm.mean())
        elif self.threshold == "best":
            cand = np.unique(losses)
            gaps = [np.mean(lm <= t) - np.mean(ln <= t) for t in cand]
            tau = float(cand[int(np.argmax(gaps))])
        else:
            tau = float(self.threshold)
        tpr, fpr = float(np.mean(lm <= tau)), float(np.mean(ln <= tau))
        details = {"threshold": tau, "threshold_rule": str(self.threshold), "threshold_tpr": tpr,
                   "threshold_fpr": fpr, "balanced_accuracy": 0.5 * (tpr + 1.0 - fpr)}
        return membership_result(self.name, -losses, labels, ids=ids, details=details)


# --------------------------------------------------------------------------------------------------
# Shadow models (Shokri et al. 2017)
# --------------------------------------------------------------------------------------------------


def _logistic() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _gbdt() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100, random_state=0)


def _random_forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=0)


#: Attack classifiers for :class:`ShadowModelAttack` by name (scikit-learn, imported when used).
ATTACK_MODELS: dict[str, Callable[[], Any]] = {"logistic": _logistic, "gbdt": _gbdt, "random_forest": _random_forest}


def _train(model_factory: ModelFactory, train_fn: TrainFn, index: int, data: IndexedDataset) -> nn.Module:
    model = model_factory(index)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model_factory(i)` to return an nn.Module, but got {type(model).__name__}")
    trained = train_fn(model, data)
    return trained if isinstance(trained, nn.Module) else model


class ShadowModelAttack:
    """Shokri et al. 2017: train ``num_shadows`` shadow models, each on its own disjoint slice of the
    attacker's data (half of the slice in, half out), and learn from their outputs what members look like.

    Features are the shadow model's probability vectors sorted in decreasing order (log-scaled;
    optionally the ``top_k`` largest); the attack model learns member vs non-member from them, one attack
    model per true class (``per_class=True``, Shokri's design; a class with fewer than
    ``min_class_samples // 2`` shadow members or non-members falls back to the global model) or one
    global model. ``attack_model`` is a name in ``ATTACK_MODELS`` or a zero-argument factory of a
    scikit-learn classifier with ``predict_proba``.

    ``model_factory(i)`` builds shadow model ``i`` (use ``i`` as a seed); ``train_fn(model, data)`` trains
    it in place or returns the trained model.

    >>> ShadowModelAttack(num_shadows=2, attack_model="logistic").num_shadows
    2
    """

    name = "shadow_models"

    def __init__(self, num_shadows: int = 4, *, per_class: bool = True,
                 attack_model: str | Callable[[], Any] = "logistic", top_k: int | None = None,
                 min_class_samples: int = 20, batch_size: int = 512, seed: int = 0) -> None:
        if not isinstance(num_shadows, int) or num_shadows < 1:
            raise ConfigError(f"Expected argument `num_shadows` to be a positive int, but got {num_shadows!r}")
        if isinstance(attack_model, str) and attack_model not in ATTACK_MODELS:
            raise ConfigError(f"Expected argument `attack_model` to be one of {', '.join(ATTACK_MODELS)} or a "
                              f"factory of a scikit-learn classifier, but got {attack_model!r}")
        if not isinstance(attack_model, str) and not callable(attack_model):
            raise ConfigError(f"Expected argument `attack_model` to be a name or a callable, but got {attack_model!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"Expected argument `top_k` to be a positive int or None, but got {top_k!r}")
        self.num_shadows = num_shadows
        self.per_class = per_class
        self.attack_model = attack_model
        self.top_k = top_k
        self.min_class_samples = min_class_samples
        self.batch_size = _check_batch_size(batch_size)
        self.seed = seed
        self._global: Any = None
        self._per_class: dict[int, Any] = {}

    def _new_classifier(self) -> Any:
        if isinstance(self.attack_model, str):
            return ATTACK_MODELS[self.attack_model]()
        return self.attack_model()

    def features(self, outputs: ModelOutputs) -> np.ndarray:
        """Sorted (decreasing) log-probabilities, truncated to ``top_k``."""
        p = np.sort(outputs.probs, axis=1)[:, ::-1]
        if self.top_k is not None:
            p = p[:, : self.top_k]
        return np.log(np.clip(p, 1e-30, 1.0))

    def fit(self, shadow_data: IndexedDataset, model_factory: ModelFactory, train_fn: TrainFn) -> "ShadowModelAttack":
        """Train the shadow models on disjoint slices of ``shadow_data`` and the attack model(s) on their outputs."""
        n = len(shadow_data)
        if n < 4 * self.num_shadows:
            raise ConfigError(f"Expected at least {4 * self.num_shadows} shadow samples for {self.num_shadows} "
                              f"shadow models, but got {n}; give more data or fewer shadows")
        perm = torch.from_numpy(np.random.default_rng(self.seed).permutation(n))
        feats, member, classes = [], [], []
        for i, chunk in enumerate(torch.tensor_split(perm, self.num_shadows)):
            half = len(chunk) // 2
            d_in, d_out = shadow_data.take(chunk[:half]), shadow_data.take(chunk[half:])
            model = _train(model_factory, train_fn, i, d_in)
            for data, label in ((d_in, 1), (d_out, 0)):
                out = model_confidences(model, data, self.batch_size)
                feats.append(self.features(out))
                member.append(np.full(len(data), label))
                classes.append(out.labels)
        return self.fit_features(np.concatenate(feats), np.concatenate(member), np.concatenate(classes))

    def fit_features(self, features: np.ndarray, membership: np.ndarray, classes: np.ndarray) -> "ShadowModelAttack":
        """Train the attack model(s) on precomputed shadow features (for shadow models trained elsewhere)."""
        y = np.asarray(membership).astype(np.int64)
        if len(np.unique(y)) != 2:
            raise ConfigError("Expected shadow outputs of both members and non-members")
        self._global = self._new_classifier().fit(features, y)
        self._per_class = {}
        if self.per_class:
            for c in np.unique(classes):
                sel = classes == c
                yc = y[sel]
                if min(int(yc.sum()), int((1 - yc).sum())) >= max(2, self.min_class_samples // 2):
                    self._per_class[int(c)] = self._new_classifier().fit(features[sel], yc)
        return self

    def predict(self, outputs: ModelOutputs) -> np.ndarray:
        """Membership probability of each sample from the target model's outputs."""
        if self._global is None:
            raise ConfigError("The attack is not fitted; call fit(shadow_data, model_factory, train_fn) first")
        x = self.features(outputs)
        scores = self._global.predict_proba(x)[:, 1]
        for c, clf in self._per_class.items():
            sel = outputs.labels == c
            if sel.any():
                scores[sel] = clf.predict_proba(x[sel])[:, 1]
        return scores

    def score(self, target_model: nn.Module, members: IndexedDataset, nonmembers: IndexedDataset) -> MembershipResult:
        """Run the fitted attack on ``target_model`` with known members and non-members."""
        om = model_confidences(target_model, members, self.batch_size)
        on = model_confidences(target_model, nonmembers, self.batch_size)
        scores = np.r_[self.predict(om), self.predict(on)]
        labels = np.r_[np.ones(len(members), np.int64), np.zeros(len(nonmembers), np.int64)]
        return membership_result(self.name, scores, labels, ids=np.r_[om.ids, on.ids],
                                 details={"num_shadows": self.num_shadows,
                                          "per_class_models": sorted(self._per_class)})


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
    return -0.5 * ((x - mu) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


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
        if in_fit is not None:
            mu_i, s_i = in_fit
            return _norm_logpdf(phi, mu_i, s_i) - _norm_logpdf(phi, mu_o, s_o)
        from scipy.stats import norm

        z = (phi - mu_o) / s_o
        if self.two_sided:
            return -(math.log(2.0) + norm.logsf(np.abs(z)))
        return -norm.logsf(z)

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
        fit = {"fixed_variance": self.fixed_variance, "min_std": self.min_std}
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

