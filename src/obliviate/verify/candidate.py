"""Verify a candidate model for a set ``U`` of ids of a run: :func:`verify_candidate`.

Usable before the forget is committed (``U`` still in the run: the original is the stored model) or
after (``U`` deleted: the original is rebuilt in memory for the power measurement only). The oracles
are the exact replays of blocks ``d..B`` without ``U`` under other data-order seeds
(:mod:`obliviate.verify.replays`). Two verdicts (:mod:`~obliviate.verify.forgotten`,
:mod:`~obliviate.verify.faithful`) and, when ``U`` holds canary samples, the canary test with its
power (Sommer et al.), folded into *forgotten*.

To judge many candidates for one ``U`` (benchmarks, the catalogue of fakes), build the evidence once:
``ev = gather_evidence(run, train_oracle_set(run, ids, settings), settings)``, then ``judge(run, ev, m)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError
from ..training.chain import State, state_after
from ..training.run import Run, open_run
from .canary import canary_verdict
from .faithful import FaithfulTest, faithful_test, original_centre
from .forgotten import NOTHING, forgotten_test, per_example_t, scale
from .membership import model_confidences
from .metrics import roc_auc, roc_curve
from .oracles import _torch_threads
from .replays import OracleSet, as_model, train_oracle_set
from .report import VerificationReport
from .settings import ORACLES_DEFAULT, VerifySettings

__all__ = ["Evidence", "gather_evidence", "judge", "verify_candidate"]

HELDOUT_MAX = 1000
RETAINED_MAX = 500
LATER_MAX = 16  # chosen on digits (8, 16, 32 tried on three block-9 users): docs/verification.md
PHI_CAP = 1e6  # a non-finite output (a diverged model) is read as this much (no) confidence


@dataclass
class Evidence:
    """What the oracles and the original say on ``U``, the held-out samples and the test set (computed once)."""

    oracle_set: OracleSet
    forget: IndexedDataset
    heldout: IndexedDataset
    oracle_phi_u: np.ndarray  # (N, |U|)
    oracle_loss_u: np.ndarray
    oracle_phi_h: np.ndarray  # (N, held-out)
    oracle_pred_test: np.ndarray  # (N, test)
    retained: IndexedDataset
    oracle_phi_r: np.ndarray  # (N, retained sample)
    original_phi_u: np.ndarray
    canary_ids: list[int]
    canary_original: tuple[int, int] | None
    canary_oracles: list[tuple[int, int]]
    original_pred_test: np.ndarray | None = None
    original_phi_r: np.ndarray | None = None
    later: IndexedDataset | None = None  # blocks d+1..B, the samples the shared start fits worst (None: d = B)
    oracle_phi_l: np.ndarray | None = None
    original_phi_l: np.ndarray | None = None


def _retained_sample(run: Run, oracle_set: OracleSet) -> IndexedDataset:
    """Up to ``RETAINED_MAX`` retained training samples of blocks ``d+1..B`` (block ``d`` when ``d = B``),
    seeded choice."""
    u = set(oracle_set.ids)
    first = oracle_set.d + 1 if oracle_set.d < run.num_blocks else oracle_set.d
    ids = np.array([i for k in range(first, run.num_blocks + 1) for i in run.block_ids(k) if int(i) not in u],
                   dtype=np.int64)
    if ids.size > RETAINED_MAX:
        ids = np.sort(np.random.default_rng([run.config.training.seed, 0x2E7]).choice(ids, RETAINED_MAX, replace=False))
    return run.train.select(torch.from_numpy(ids))


def _later_sample(run: Run, oracle_set: OracleSet) -> IndexedDataset | None:
    """The ``LATER_MAX`` retained samples of blocks ``d+1..B`` that the shared start (the stored state after
    block ``d - 1``, where every oracle begins) fits worst: only training on those blocks fits them. None
    when ``d = B``. Chosen from the start and the data alone, never from a replay."""
    if oracle_set.d >= run.num_blocks:
        return None
    u = set(oracle_set.ids)
    ids = np.array([i for k in range(oracle_set.d + 1, run.num_blocks + 1) for i in run.block_ids(k)
                    if int(i) not in u], dtype=np.int64)
    pool = run.train.select(torch.from_numpy(ids))
    start = as_model(run, state_after(run.store, oracle_set.d - 1))
    phi = _finite(model_confidences(start, pool).phi)
    worst = np.sort(ids[np.argsort(phi, kind="stable")[:LATER_MAX]])
    return run.train.select(torch.from_numpy(worst))


def _finite(phi: np.ndarray) -> np.ndarray:
    """``phi`` with NaN read as ``-PHI_CAP`` (no confidence in the true label) and infinities capped."""
    return np.nan_to_num(np.asarray(phi, dtype=np.float64), nan=-PHI_CAP, posinf=PHI_CAP, neginf=-PHI_CAP)


def _phi(model: nn.Module, data: IndexedDataset | None) -> np.ndarray | None:
    return None if data is None else _finite(model_confidences(model, data).phi)


def gather_evidence(run: Run, oracle_set: OracleSet, settings: VerifySettings | None = None) -> Evidence:
    settings = settings or VerifySettings()
    forget = run.train.select(torch.tensor(oracle_set.ids, dtype=torch.int64))
    heldout = run.test.take(torch.arange(min(len(run.test), HELDOUT_MAX)))
    retained = _retained_sample(run, oracle_set)
    with _torch_threads(settings.threads):
        later = _later_sample(run, oracle_set)
        models = [as_model(run, s) for s in oracle_set.states]
        outs_u = [model_confidences(m, forget) for m in models]
        original = as_model(run, oracle_set.original)
        canary = sorted(set(run.canary_ids()) & set(oracle_set.ids))
        return Evidence(
            oracle_set, forget, heldout, np.stack([o.phi for o in outs_u]), np.stack([o.loss for o in outs_u]),
            np.stack([model_confidences(m, heldout).phi for m in models]),
            np.stack([model_confidences(m, run.test).predictions for m in models]), retained,
            np.stack([model_confidences(m, retained).phi for m in models]),
            model_confidences(original, forget).phi, canary,
            run.canary_success(original) if canary else None,
            [run.canary_success(m) for m in models] if canary else [],
            model_confidences(original, run.test).predictions, model_confidences(original, retained).phi,
            later, None if later is None else np.stack([_finite(model_confidences(m, later).phi) for m in models]),
            _phi(original, later))


def _clopper_pearson_upper(successes: int, trials: int, level: float = 0.95) -> float:
    from scipy.stats import beta

    if successes >= trials:
        return 1.0
    return float(beta.ppf(level, successes + 1, trials - successes))


def _canary(run: Run, ev: Evidence, candidate: nn.Module, settings: VerifySettings) -> dict[str, Any]:
    if not ev.canary_ids or ev.canary_original is None:
        return {"status": "skipped", "reasons": ["U holds none of the run's canary samples"]}
    after = run.canary_success(candidate)
    rates = [s / n for s, n in ev.canary_oracles]
    pooled = (sum(s for s, _ in ev.canary_oracles), sum(n for _, n in ev.canary_oracles))
    p_deleted = max(max(rates), _clopper_pearson_upper(*pooled))
    v = canary_verdict(ev.canary_original, after, p_deleted, alpha=settings.alpha, margin=settings.canary_margin)
    return {"status": v.verdict, "reasons": [v.reason], "asr_original": ev.canary_original[0] / ev.canary_original[1],
            "asr_candidate": after[0] / after[1], "asr_oracles_mean": float(np.mean(rates)),
            "asr_oracles_max": float(max(rates)), "p_deleted": p_deleted, "p_value": v.test.p_value,
            "power": v.test.power, "deletion_confidence": v.test.deletion_confidence}


def judge(run: Run, ev: Evidence, candidate: nn.Module, settings: VerifySettings | None = None, *,
          label: str = "given") -> VerificationReport:
    """The two verdicts on ``candidate`` from evidence gathered once for ``U``."""
    settings = settings or VerifySettings()
    t0 = time.perf_counter()
    with _torch_threads(settings.threads):
        out_u = model_confidences(candidate, ev.forget)
        phi_u = _finite(out_u.phi)
        phi_h = _finite(model_confidences(candidate, ev.heldout).phi)
        pred = model_confidences(candidate, run.test).predictions
        phi_r = _phi(candidate, ev.retained)
        phi_l = _phi(candidate, ev.later)
        canary = _canary(run, ev, candidate, settings)
    bad = int(np.sum(~np.isfinite(out_u.logits)))
    loss_u = np.nan_to_num(out_u.loss, nan=PHI_CAP, posinf=PHI_CAP)
    ft = forgotten_test(phi_u, ev.oracle_phi_u, original_phi=ev.original_phi_u, alpha=settings.alpha)
    labels_test = run.test.y.numpy()

    def fidelity(predictions: np.ndarray, retained: np.ndarray | None, later: np.ndarray | None,
                 centre: dict[str, Any] | None = None) -> FaithfulTest:
        return faithful_test(predictions, ev.oracle_pred_test, labels_test, alpha=settings.fidelity_alpha,
                             accuracy_tolerance=settings.accuracy_tolerance,
                             agreement_tolerance=settings.agreement_tolerance, retained_phi=retained,
                             oracle_retained_phi=ev.oracle_phi_r, later_phi=later, oracle_later_phi=ev.oracle_phi_l,
                             centre=centre)

    fid = fidelity(pred, phi_r, phi_l)
    verdict, reasons = ft.verdict, list(ft.reasons)
    if bad:
        reasons.append(f"the candidate's outputs on U hold {bad} non-finite logits (a diverged model): read as no "
                       f"confidence in the true label")
    if canary["status"] == "fail":
        verdict = "no"
        reasons.append("canary: " + canary["reasons"][0])
    elif canary["status"] == "pass" and verdict == NOTHING:
        verdict = "yes"
        reasons.append("canary: " + canary["reasons"][0])
    # ROC of the member-like score on U against held-out samples (the same score: t against the oracles)
    t_h = per_example_t(scale(phi_h), scale(ev.oracle_phi_h))[2]
    scores = np.r_[ft.t, t_h]
    labels = np.r_[np.ones(ft.t.size), np.zeros(t_h.size)]
    curve = roc_curve(scores, labels)
    directions = ft.directions()
    per_example = [{"id": int(i), "p_value": float(p), "p_holm": float(ph), "loss": float(loss),
                    "oracle_loss_mean": float(ol), "direction": dr, "phi": float(f), "oracle_phi_mean": float(om),
                    "oracle_asinh_phi_sd": float(sd), "t": float(t), "original_phi": float(o)}
                   for i, p, ph, loss, ol, dr, f, om, sd, t, o in zip(
                       ev.forget.ids.tolist(), ft.p_example, ft.p_example_holm,
                       loss_u, ev.oracle_loss_u.mean(0), directions, phi_u, ev.oracle_phi_u.mean(0), ft.oracle_sd,
                       ft.t, ev.original_phi_u)]
    forgotten = {"verdict": verdict, "direction": ft.direction, "reasons": reasons, "p_value": ft.candidate.p_value,
                 "alpha": settings.alpha, "has_power": ft.has_power,
                 "power_p_value": None if ft.original is None else ft.original.p_value,
                 "candidate": ft.candidate.to_dict(),
                 "original": None if ft.original is None else ft.original.to_dict(),
                 "null": {"s1": ft.null[:, 0], "s2": ft.null[:, 1]},
                 "loss_u": {"candidate": float(loss_u.mean()), "oracles": float(ev.oracle_loss_u.mean())},
                 "n_member": directions.count("member"), "n_over_forgotten": directions.count("over-forgotten"),
                 "canary_status": canary["status"]}
    faithful = fid.to_dict()
    faithful["reasons"] = fid.reasons
    if ev.original_pred_test is not None:  # the same test on the original: is the run itself inside the cloud?
        base = fidelity(ev.original_pred_test, ev.original_phi_r, ev.original_phi_l)
        faithful["original_p_value"] = base.p_value
        faithful["original"] = base.candidate
        if fid.verdict == "no" and base.verdict == "no":
            # the run itself is outside the cloud, so every honest deletion of it inherits that: judge the
            # candidate against the original instead (the oracles' spread, centred on the original's values)
            rel = fidelity(pred, phi_r, phi_l, centre=original_centre(base, ev.original_phi_l, ev.original_phi_r))
            faithful["relative_to_original"] = {"verdict": rel.verdict, "p_value": rel.p_value,
                                                "p_accuracy": rel.p_accuracy, "p_agreement": rel.p_agreement,
                                                "p_retained": rel.p_retained, "p_later": rel.p_later}
            outlier = (f"the original model is itself outside the oracle cloud (p = {base.p_value:.2g}, accuracy "
                       f"{base.candidate['accuracy']:.4f}): the run's own data order is an outlier, not only this "
                       f"candidate")
            if rel.verdict == "yes":
                faithful["verdict"] = "yes"
                faithful["judged_against"] = "original"
                faithful["reasons"] = [f"{outlier}; judged against the original instead (the oracles' spread around "
                                       f"the original's values), the candidate is no worse than the original "
                                       f"(p = {rel.p_value:.2g} > {settings.fidelity_alpha}); against the cloud "
                                       f"alone: p = {fid.p_value:.2g}"]
            else:
                faithful["reasons"].append(f"{outlier}; judged against the original, the candidate is worse still "
                                           f"(p = {rel.p_value:.2g} <= {settings.fidelity_alpha})")
    return VerificationReport(
        run=str(run.path), ids=list(ev.oracle_set.ids), model=label, forgotten=forgotten, faithful=faithful,
        roc={"fpr": curve.fpr, "tpr": curve.tpr, "auc": roc_auc(scores, labels), "positives": int(ft.t.size),
             "negatives": int(t_h.size), "score": "predictive t of phi against the oracles (higher: member-like)"},
        per_example=per_example, oracle_cloud={"oracles": fid.oracles, "candidate": fid.candidate},
        oracles=ev.oracle_set.summary(run.num_blocks), settings=settings.to_dict(), canary=canary,
        wall_time_s=time.perf_counter() - t0)


def _as_candidate(run: Run, candidate: nn.Module | Mapping[str, torch.Tensor]) -> nn.Module:
    if isinstance(candidate, nn.Module):
        return candidate
    if isinstance(candidate, Mapping):
        return as_model(run, dict(candidate))
    raise ConfigError(f"Expected the candidate to be a state dict or an nn.Module, but got {type(candidate).__name__}")


def verify_candidate(run: Run | str, ids: Sequence[int], candidate_state: State | nn.Module, *,
                     oracles: int = ORACLES_DEFAULT, seed: int = 0, threads: int | None = 1, alpha: float = 0.01,
                     fidelity_alpha: float = 0.01, oracle_set: OracleSet | None = None,
                     label: str = "given") -> VerificationReport:
    """Verify ``candidate_state`` (a state dict or a model) as the run with ``ids`` forgotten.

    ``ids`` may still be in the run (before the forget is committed) or deleted by one of its requests.
    Trains ``oracles`` replays of blocks ``d..B`` without ``ids`` (plus the exact replay; plus the
    original once committed), or reuses ``oracle_set``. See :mod:`obliviate.verify.report` for the result.

    >>> import tempfile
    >>> from obliviate.training import RunConfig, train_run
    >>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1},
    ...                                      "memorised": {"users": 1, "size": 3}}), tempfile.mkdtemp() + "/r")
    >>> user = run.memorised_users()[0]
    >>> report = verify_candidate(run, user, run.final_model(), oracles=4)  # a no-op
    >>> report.forgotten["verdict"] in ("no", "nothing measurable to forget"), report.faithful["verdict"]
    (True, 'yes')
    """
    t0 = time.perf_counter()
    settings = VerifySettings(oracles=oracles, seed=seed, threads=threads, alpha=alpha, fidelity_alpha=fidelity_alpha)
    if not isinstance(run, Run):
        run = open_run(run)
    model = _as_candidate(run, candidate_state)
    if oracle_set is None:
        oracle_set = train_oracle_set(run, ids, settings)
    elif sorted(int(i) for i in ids) != oracle_set.ids:
        raise ConfigError("Expected `oracle_set` to be built for the same ids")
    report = judge(run, gather_evidence(run, oracle_set, settings), model, settings, label=label)
    report.wall_time_s = time.perf_counter() - t0
    return report
