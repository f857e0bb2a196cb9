"""Verification toolbox: is the forgotten data really gone?

Model-agnostic primitives, each taking models (``nn.Module``) and :class:`~obliviate.data.IndexedDataset`
objects at call time, with settings in constructors and results as dataclasses with ``to_dict()``:

- backdoor canaries and Sommer et al.'s deletion test (:class:`Canary`, :func:`deletion_test`,
  :func:`canary_verdict`);
- membership inference (:class:`LossThresholdAttack`, :class:`ShadowModelAttack`, :class:`LiRA`) and the
  per-example unlearning test :class:`UnlearningLiRA`;
- distance to the exact retrain and the retraining noise floor (:func:`model_distance`,
  :class:`NoiseFloor`);
- the two verdicts of a deletion (:func:`verify_candidate`, :func:`verify_request`): *forgotten*
  (:mod:`.forgotten`) and *faithful* (:mod:`.faithful`), against oracles replayed without ``U``
  (:mod:`.replays`), settings validated in :class:`VerifySettings`;
- the NeurIPS 2023 unlearning challenge's official forget score (:mod:`.challenge`);
- metrics (ROC AUC, TPR at fixed FPR, advantage, the NeurIPS 2023 unlearning challenge's epsilon and
  forgetting quality, JS divergence, agreement, parameter distance).

>>> from obliviate.verify import roc_auc, deletion_test
>>> roc_auc([0.9, 0.1], [1, 0]), deletion_test(90, 100, p_deleted=0.05, p_kept=0.9).rejects_deletion
(1.0, True)
"""

from __future__ import annotations

from .canary import Canary, CanaryVerdict, DeletionTest, canary_verdict, deletion_power, deletion_test
from .distance import FloorCheck, ModelDistance, NoiseFloor, NoiseFloorComparison, model_distance
from .membership import (
    LiRA,
    LossThresholdAttack,
    MembershipResult,
    ModelOutputs,
    ReferenceModels,
    ShadowModelAttack,
    UnlearningLiRA,
    eval_mode,
    logit_scaled_confidence,
    membership_result,
    model_confidences,
    split_reference_outputs,
    train_reference_models,
)
from .metrics import (
    RocCurve,
    epsilon_from_rates,
    forgetting_quality,
    js_divergence,
    membership_advantage,
    parameter_distance,
    prediction_agreement,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
    unlearning_epsilons,
)

__all__ = [
    "Canary", "CanaryVerdict", "DeletionTest", "FloorCheck", "LiRA", "LossThresholdAttack", "MembershipResult",
    "ModelDistance", "ModelOutputs", "NoiseFloor", "NoiseFloorComparison", "ReferenceModels", "RocCurve",
    "ShadowModelAttack", "UnlearningLiRA", "canary_verdict", "deletion_power", "deletion_test",
    "epsilon_from_rates", "eval_mode", "forgetting_quality", "js_divergence", "logit_scaled_confidence",
    "membership_advantage", "membership_result", "model_confidences", "model_distance", "parameter_distance",
    "prediction_agreement", "roc_auc", "roc_curve", "split_reference_outputs", "tpr_at_fpr",
    "train_reference_models", "unlearning_epsilons",
]

from .oracles import OracleBank, Oracles, cached_exact_state, oracle_seed, prune_stale
from .settings import VerifySettings
from .replays import OracleSet, train_oracle_set
from .report import VerificationReport
from .candidate import verify_candidate
from .request import verify_request
from .challenge import challenge_epsilons, challenge_score

__all__ += ["OracleBank", "OracleSet", "Oracles", "VerificationReport", "VerifySettings", "cached_exact_state",
            "challenge_epsilons", "challenge_score", "oracle_seed", "prune_stale", "train_oracle_set",
            "verify_candidate", "verify_request"]
