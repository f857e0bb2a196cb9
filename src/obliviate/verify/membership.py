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

Model outputs and the result type live in :mod:`obliviate.verify.outputs`, LiRA and the unlearning test
in :mod:`obliviate.verify.lira`; both are re-exported here.

>>> LossThresholdAttack().score_losses([0.1], [1.0]).auc
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError
from .lira import (LiRA, ModelFactory, ReferenceModels, TrainFn, UnlearningLiRA, _train, split_reference_outputs,
                   train_reference_models)
from .outputs import (MembershipResult, ModelOutputs, _check_batch_size, eval_mode, logit_scaled_confidence,
                      membership_result, model_confidences)

__all__ = [
    "ATTACK_MODELS", "LiRA", "LossThresholdAttack", "MembershipResult", "ModelOutputs", "ReferenceModels",
    "ShadowModelAttack", "UnlearningLiRA", "eval_mode", "logit_scaled_confidence", "membership_result",
    "model_confidences", "split_reference_outputs", "train_reference_models",
]


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
        logp: np.ndarray = np.log(np.clip(p, 1e-30, 1.0))
        return logp

    def fit(self, shadow_data: IndexedDataset, model_factory: ModelFactory, train_fn: TrainFn) -> ShadowModelAttack:
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

    def fit_features(self, features: np.ndarray, membership: np.ndarray, classes: np.ndarray) -> ShadowModelAttack:
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
        scores: np.ndarray = self._global.predict_proba(x)[:, 1]
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
