"""Verify one forget request: is the deleted data gone? A verdict with every number behind it.

:func:`verify_request` compares the unlearned model (by default the run's current model) with oracles
retrained without the deleted samples ``U`` (:mod:`obliviate.verify.oracles`): the exact retrain (the
run's own seeds) and ``N`` independent retrains that differ only in their data-order seed. Three checks:

canary
    When ``U`` held the run's backdoor canary: Sommer et al.'s binomial test of the unlearned model's
    attack success on triggered test inputs, H0 "deleted" at the oracles' success rate against H1 "kept"
    at the original model's (recorded when the request ran). ``p_deleted`` is the larger of the worst
    oracle's rate and the 95% Clopper-Pearson upper bound of the oracles' pooled rate: a retrain's rate
    varies from model to model, and a rate estimated as 0 would make a single hit "significant".
    :func:`~obliviate.verify.canary.canary_verdict` decides (fail: p <= alpha or ASR above
    ``p_deleted`` + 2 points; inconclusive when the original no longer remembers the canary).

membership (per-example U-LiRA)
    For each forgotten sample, the unlearned model's logit-scaled confidence ``phi`` against the oracles'
    ``phi`` on it. Fails when (a) some forgotten sample looks more like a member than retraining explains:
    one-sided predictive t-test per sample (per-sample oracle mean and standard deviation, ``t`` with
    ``N - 1`` degrees of freedom), Bonferroni-Holm over the samples at ``alpha / 2``; or (b) the U-LiRA
    AUC (unlearned-vs-oracle pairs, :class:`~obliviate.verify.membership.UnlearningLiRA`, one-sided)
    exceeds what oracles reach against each other: each oracle scored against the others gives the
    null AUCs, and the threshold is their mean plus the one-sided ``t_{N-1}`` quantile at ``alpha / 2``
    times their spread. Needs ``N >= 4`` to be conclusive.

distance
    Accuracy, agreement and Jensen-Shannon divergence to the exact retrain on the forget, retain and test
    sets, and parameter distance, each beside the same numbers for every oracle (the noise floor). Fails
    when the test accuracy gap to the exact retrain exceeds ``max(worst oracle's gap, 0.5 points)`` or
    the test agreement with it is below the worst oracle's.

Verdict: ``"pass"`` when no check fails and at least one of canary and membership is conclusive;
otherwise ``"fail"`` with the reasons. Also reported: attack success of the original, unlearned, exact,
oracle and never-trained models, U-LiRA TPR at 1% and 0.1% FPR and advantage, and the NeurIPS 2023
challenge's per-example epsilons and forgetting quality for the run's own algorithm, beside the same
score between two halves of the oracles (small-scale epsilons are biased upward: read them against that
floor, never against 0).

See ``docs/verification.md`` for the measured numbers on the demo scenario.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..training.chain import State, add, load_state, state_after, subtract
from ..training.run import Run, open_run
from .canary import canary_verdict
from .distance import ModelDistance, NoiseFloor, model_distance
from .membership import UnlearningLiRA, model_confidences
from .metrics import forgetting_quality, unlearning_epsilons
from .oracles import OracleBank, Oracles, _torch_threads, find_request

__all__ = ["Check", "VerificationReport", "verify_request"]

CHECKS = ("canary", "membership", "distance")


def _clean(v: Any) -> Any:
    """JSON-ready: numpy to Python, NaN and infinities to None."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.bool_):
        return bool(v)
    return v


@dataclass
class Check:
    """One check: ``status`` is ``pass``, ``fail``, ``inconclusive`` or ``skipped``; ``reasons`` say why
    in sentences carrying the numbers; ``numbers`` hold every figure behind it."""

    name: str
    status: str
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _clean({"name": self.name, "status": self.status, "reasons": list(self.reasons),
                       "numbers": self.numbers})


@dataclass
class VerificationReport:
    """The verdict on one request, the checks behind it and every number (``to_dict()`` for JSON)."""

    run: str
    request_id: int
    model: str  # "current": the run's current (unlearned) model; "given": a model passed by the caller
    verdict: str  # "pass" or "fail"
    reasons: list[str]
    request: dict[str, Any]
    oracles: dict[str, Any]
    checks: dict[str, Check]
    epsilon: dict[str, Any]
    settings: dict[str, Any]
    wall_time_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return _clean({"run": self.run, "request_id": self.request_id, "model": self.model,
                       "verdict": self.verdict, "passed": self.passed, "reasons": list(self.reasons),
                       "request": self.request, "oracles": self.oracles,
                       "checks": {k: c.to_dict() for k, c in self.checks.items()},
                       "epsilon": self.epsilon, "settings": self.settings, "wall_time_s": self.wall_time_s})


# --------------------------------------------------------------------------------------------------
# canary
# --------------------------------------------------------------------------------------------------


def _clopper_pearson_upper(successes: int, trials: int, level: float = 0.95) -> float:
    from scipy.stats import beta

    if successes >= trials:
        return 1.0
    return float(beta.ppf(level, successes + 1, trials - successes))


def _canary_check(run: Run, request: dict[str, Any], candidate: nn.Module, exact: nn.Module,
                  oracle_models: list[nn.Module], *, alpha: float, margin: float) -> Check:
    record = request.get("canary")
    if not record or not record.get("before"):
        reason = ("the request deleted none of the run's canary samples" if not set(run.canary_ids())
                  & set(request["ids_deleted"]) else "the request record holds no canary measurement")
        return Check("canary", "skipped", [reason])
    before = (int(record["before"][0]), int(record["before"][1]))
    after = run.canary_success(candidate)
    counts = [run.canary_success(m) for m in oracle_models]
    rates = [s / n for s, n in counts]
    pooled_s, pooled_n = sum(s for s, _ in counts), sum(n for _, n in counts)
    p_deleted = max(max(rates), _clopper_pearson_upper(pooled_s, pooled_n))
    exact_counts = run.canary_success(exact)
    never = run.canary_success(run.build_model())
    v = canary_verdict(before, after, p_deleted, alpha=alpha, margin=margin)
    numbers = {
        "asr_original": before[0] / before[1], "asr_unlearned": after[0] / after[1],
        "asr_exact": exact_counts[0] / exact_counts[1], "asr_never_trained": never[0] / never[1],
        "asr_oracles_mean": float(np.mean(rates)), "asr_oracles_max": float(max(rates)),
        "asr_oracles": rates, "successes_original": list(before), "successes_unlearned": list(after),
        "successes_exact": list(exact_counts), "successes_never_trained": list(never),
        "p_deleted": p_deleted, "p_kept": before[0] / before[1], "p_value": v.test.p_value,
        "deletion_confidence": v.test.deletion_confidence, "power": v.test.power,
        "log_likelihood_ratio": v.test.log_likelihood_ratio, "alpha": alpha, "margin": margin,
        "critical_successes": v.test.critical_successes,
    }
    return Check("canary", v.verdict, [v.reason], numbers)


# --------------------------------------------------------------------------------------------------
# membership: per-example U-LiRA
# --------------------------------------------------------------------------------------------------


def _per_example_test(phi: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-sided predictive t-test of ``phi`` (n,) against reference rows ``ref`` (M, n): is the value
    higher (more member-like) than a new draw from the references' distribution? Returns mean, sd, t, p."""
    from scipy.stats import t as student

    m = ref.shape[0]
    mu = ref.mean(axis=0)
    sd = np.maximum(ref.std(axis=0, ddof=1), 1e-3)
    t = (phi - mu) / (sd * math.sqrt(1.0 + 1.0 / m))
    return mu, sd, t, student.sf(t, m - 1)


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (valid under any dependence between the samples)."""
    n = p.size
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (n - np.arange(n))))
    out = np.empty(n)
    out[order] = adj
    return out


def _membership_check(forget_set: Any, candidate: nn.Module, oracle_models: list[nn.Module], *,
                      alpha: float) -> Check:
    from scipy.stats import t as student

    phi_c = model_confidences(candidate, forget_set).phi
    ref = np.stack([model_confidences(m, forget_set).phi for m in oracle_models])
    m, n = ref.shape
    level = alpha / 2.0  # two tests share alpha (Bonferroni)
    mu, sd, t, p = _per_example_test(phi_c, ref)
    p_holm = _holm(p)
    rejected = p_holm <= level
    numbers: dict[str, Any] = {
        "n_forgotten": n, "n_oracles": m, "alpha": alpha, "alpha_each_test": level,
        "per_example": {"ids": forget_set.ids.numpy(), "phi_unlearned": phi_c, "phi_oracles_mean": mu,
                        "phi_oracles_sd": sd, "t": t, "p_value": p, "p_holm": p_holm},
        "min_p_holm": float(p_holm.min()), "n_rejected": int(rejected.sum()),
    }
    reasons: list[str] = []
    status = "pass"
    if rejected.any():
        worst = int(np.argmin(p_holm))
        status = "fail"
        reasons.append(f"{int(rejected.sum())} of {n} forgotten sample(s) look like members: sample "
                       f"{int(forget_set.ids[worst])} has phi {phi_c[worst]:.2f} against the oracles' "
                       f"{mu[worst]:.2f} +- {sd[worst]:.2f} (t = {t[worst]:.1f}, Holm-adjusted p = "
                       f"{p_holm[worst]:.2e} <= {level})")
    if m >= 3:
        lira = UnlearningLiRA(two_sided=False)
        res = lira.score(phi_c[None, :], None, ref)
        two = UnlearningLiRA(two_sided=True).score(phi_c[None, :], None, ref)
        numbers.update({"auc": res.auc, "tpr_at_1pct_fpr": res.tpr_at_1pct_fpr,
                        "tpr_at_0_1pct_fpr": res.tpr_at_0_1pct_fpr, "advantage": res.advantage,
                        "auc_two_sided": two.auc, "per_example_rank": res.details["per_example_rank"]})
    if m >= 4:
        null = np.array([lira.score(ref[j][None, :], None, np.delete(ref, j, axis=0)).auc for j in range(m)])
        spread = float(null.std(ddof=1))
        threshold = float(null.mean() + student.ppf(1.0 - level, m - 1) * spread * math.sqrt(1.0 + 1.0 / m))
        numbers.update({"auc_null": null, "auc_null_mean": float(null.mean()), "auc_null_sd": spread,
                        "auc_threshold": threshold, "auc_can_fail": threshold < 1.0})
        if numbers["auc"] > threshold:
            status = "fail"
            reasons.append(f"U-LiRA AUC {numbers['auc']:.3f} exceeds {threshold:.3f}, what oracles reach against "
                           f"each other (mean {null.mean():.3f}, sd {spread:.3f}, {m} oracles)")
    else:
        numbers["auc_threshold"] = None
    if status == "pass":
        if m < 4:
            status = "inconclusive"
            reasons.append(f"with {m} oracles the membership test has next to no power; use --oracles 16")
        else:
            auc_note = (f"U-LiRA AUC {numbers['auc']:.3f} <= {numbers['auc_threshold']:.3f}"
                        + ("" if numbers["auc_can_fail"] else " (at this scale the AUC alone cannot fail a model; "
                                                             "the per-sample test decides)"))
            reasons.append(f"no forgotten sample looks like a member (smallest Holm-adjusted p = "
                           f"{p_holm.min():.3f} > {level}); {auc_note}")
    return Check("membership", status, reasons, numbers)


# --------------------------------------------------------------------------------------------------
# distance to the exact retrain, against the noise floor
# --------------------------------------------------------------------------------------------------


def _retain_set(run: Run, request: dict[str, Any], size: int) -> Any:
    members = np.concatenate(run.all_block_ids())
    rng = np.random.default_rng([run.config.training.seed, 0x5E7, int(request["request_id"])])
    chosen = np.sort(rng.choice(members, size=min(size, members.size), replace=False))
    return run.train.select(torch.from_numpy(chosen.astype(np.int64)))


def _worst(floors: list[ModelDistance]) -> ModelDistance:
    """The noise floor as one distance: per dataset the oracle with the largest accuracy gap, the lowest
    agreement, the largest JS divergence and parameter distance."""
    names = list(floors[0].accuracy)
    acc = {k: max(floors, key=lambda f: abs(f.accuracy_gap[k])).accuracy[k] for k in names}
    l2 = [f.parameter_l2 for f in floors if f.parameter_l2 is not None]
    rel = [f.parameter_l2_relative for f in floors if f.parameter_l2_relative is not None]
    return ModelDistance(acc, dict(floors[0].reference_accuracy),
                         {k: min(f.agreement[k] for f in floors) for k in names},
                         {k: max(f.js_divergence[k] for f in floors) for k in names},
                         max(l2) if l2 else None, max(rel) if rel else None)


def _distance_check(datasets: Mapping[str, Any], candidate: nn.Module, exact: nn.Module,
                    oracle_models: list[nn.Module], *, accuracy_tolerance: float, agreement_slack: float) -> Check:
    cand = model_distance(candidate, exact, datasets)
    floors = [model_distance(o, exact, datasets) for o in oracle_models]
    floor = _worst(floors)
    cmp = NoiseFloor(accuracy_tolerance=accuracy_tolerance, agreement_slack=agreement_slack,
                     check_parameters=cand.parameter_l2 is not None and floor.parameter_l2 is not None
                     ).compare_distances(cand, floor)
    gating = {("accuracy_gap", "test"), ("agreement", "test")}
    failed = [c for c in cmp.checks if not c.within and (c.metric, c.dataset) in gating]
    notes = [f"{'parameter L2' if c.metric == 'parameter_l2' else c.dataset + ' ' + c.metric.replace('_', ' ')} "
             f"{c.candidate:.4g} is outside the noise floor (bound {c.bound:.4g})"
             for c in cmp.checks if not c.within and (c.metric, c.dataset) not in gating]
    identical = all(torch.equal(a, b) for a, b in zip(candidate.state_dict().values(), exact.state_dict().values())) \
        if list(candidate.state_dict()) == list(exact.state_dict()) else False
    summary = {name: {
        "accuracy": {"unlearned": cand.accuracy[name], "exact": cand.reference_accuracy[name],
                     "oracles_mean": float(np.mean([f.accuracy[name] for f in floors])),
                     "oracles_min": float(min(f.accuracy[name] for f in floors)),
                     "oracles_max": float(max(f.accuracy[name] for f in floors))},
        "agreement_with_exact": {"unlearned": cand.agreement[name],
                                 "oracles_mean": float(np.mean([f.agreement[name] for f in floors])),
                                 "oracles_min": floor.agreement[name]},
        "js_divergence_to_exact": {"unlearned": cand.js_divergence[name],
                                   "oracles_mean": float(np.mean([f.js_divergence[name] for f in floors])),
                                   "oracles_max": floor.js_divergence[name]},
    } for name in datasets}
    numbers = {
        "datasets": {name: len(ds) for name, ds in datasets.items()}, "per_dataset": summary,
        "parameter_l2": {"unlearned": cand.parameter_l2, "unlearned_relative": cand.parameter_l2_relative,
                         "oracles_mean": float(np.mean([f.parameter_l2 for f in floors
                                                        if f.parameter_l2 is not None] or [float("nan")])),
                         "oracles_max": floor.parameter_l2},
        "identical_to_exact": identical, "outside_floor_not_gating": notes,
        "checks": [dict(c.to_dict(), gates_verdict=(c.metric, c.dataset) in gating) for c in cmp.checks],
        "accuracy_tolerance": accuracy_tolerance, "agreement_slack": agreement_slack,
        "candidate": cand.to_dict(), "oracles": [f.to_dict() for f in floors],
    }
    if failed:
        reasons = [f"test {c.metric.replace('_', ' ')} {c.candidate:.4f} is outside the noise floor (bound "
                   f"{c.bound:.4f}, worst of {len(floors)} oracles {c.floor:.4f})" for c in failed]
        return Check("distance", "fail", reasons, numbers)
    t = summary["test"]
    reasons = [f"test accuracy {t['accuracy']['unlearned']:.4f} against exact {t['accuracy']['exact']:.4f} and "
               f"agreement {t['agreement_with_exact']['unlearned']:.4f} (oracles' worst "
               f"{t['agreement_with_exact']['oracles_min']:.4f}) are within the noise floor"
               + ("; the model is the exact retrain bit for bit" if identical else "")]
    return Check("distance", "pass", reasons, numbers)


# --------------------------------------------------------------------------------------------------
# per-example epsilon (NeurIPS 2023 unlearning challenge), for the run's own algorithm
# --------------------------------------------------------------------------------------------------


def _epsilon(run: Run, oracles: Oracles, forget_set: Any, own_model: bool, delta: float) -> dict[str, Any]:
    n = len(oracles.states)
    caveat = ("small-scale epsilons are biased upward (rates come in steps of 1/K); compare the unlearned "
              "score with the oracle-vs-oracle floor computed the same way, never with 0 or 1")
    if n < 4:
        return {"available": False, "reason": "needs at least 4 oracles (two halves of 2)", "caveat": caveat}
    if not own_model:
        return {"available": False, "caveat": caveat,
                "reason": "the challenge's epsilon compares output distributions over many unlearned models; "
                          "a single given model has none (verify the run's own result to get replicas)"}
    half = n // 2
    a_idx, b_idx = list(range(half)), list(range(half, n))
    b_phi = np.stack([model_confidences(_model(run, oracles.states[i]), forget_set).phi for i in b_idx])
    a_phi = np.stack([model_confidences(_model(run, oracles.states[i]), forget_set).phi for i in a_idx])
    if oracles.after_t is not None and oracles.t is not None:
        tail = subtract(state_after(run.store, run.num_blocks), state_after(run.store, oracles.t))
        replicas = [add(oracles.after_t[i], tail) for i in a_idx]
        how = (f"DeepObliviate's stitch replayed with the oracles' seeds: retrain blocks {oracles.d}..{oracles.t} "
               f"with seed s, then add the stored updates of blocks {oracles.t + 1}..{run.num_blocks}")
    else:
        replicas = [oracles.states[i] for i in a_idx]
        how = "the request retrained every block after d (exact), so its replicas are retrains with other seeds"
    u_phi = np.stack([model_confidences(_model(run, s), forget_set).phi for s in replicas])
    eps_u = unlearning_epsilons(u_phi, b_phi, delta=delta)
    eps_f = unlearning_epsilons(a_phi, b_phi, delta=delta)
    return {"available": True, "delta": delta, "replicas": len(replicas), "retrained": len(b_idx),
            "replicas_are": how, "replica_seeds": [oracles.seeds[i] for i in a_idx],
            "retrained_seeds": [oracles.seeds[i] for i in b_idx],
            "per_example": {"ids": forget_set.ids.numpy(), "unlearned": eps_u, "oracle_floor": eps_f},
            "mean_epsilon": float(eps_u.mean()), "mean_epsilon_floor": float(eps_f.mean()),
            "forgetting_quality": forgetting_quality(eps_u), "forgetting_quality_floor": forgetting_quality(eps_f),
            "caveat": caveat}


def _model(run: Run, state: State) -> nn.Module:
    model = run.build_model()
    load_state(model, state)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------
# the verdict
# --------------------------------------------------------------------------------------------------


def verify_request(run: Run | str | Path, request_id: int | None = None, *, model: nn.Module | None = None,
                   oracles: int = 16, alpha: float = 0.01, accuracy_tolerance: float = 0.005,
                   agreement_slack: float = 0.0, canary_margin: float = 0.02, retain_size: int = 512,
                   epsilon_delta: float = 0.01, wait: float = 0.0, threads: int | None = 1) -> VerificationReport:
    """Verify forget request ``request_id`` (``None``: the latest) of ``run`` (a :class:`Run` or a path).

    ``model`` is the model to verify; by default the run's current (unlearned) model. ``oracles`` is the
    number ``N >= 2`` of independent retrains beside the exact one (16 recommended; the membership test
    needs 4 to be conclusive); they are trained once and cached in ``RUN/verify/``. ``threads``: torch
    threads while training and evaluating (restored afterwards; see :class:`OracleBank`). ``wait``: seconds
    to wait for another process writing the run. See the module docstring for the checks and the verdict
    rule. Bad input raises a :class:`~obliviate.errors.UsageError`.

    >>> import tempfile
    >>> from obliviate.training import RunConfig, train_run
    >>> from obliviate.unlearning import forget
    >>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}),
    ...                 tempfile.mkdtemp() + "/r")
    >>> _ = forget(run, [int(run.block_ids(2)[0])], method="exact")
    >>> report = verify_request(run, 1, oracles=4)
    >>> report.verdict in ("pass", "fail"), sorted(report.checks), report.oracles["retrained_blocks"]
    (True, ['canary', 'distance', 'membership'], '2..2')
    """
    t0 = time.perf_counter()
    if isinstance(oracles, bool) or not isinstance(oracles, (int, np.integer)) or oracles < 2:
        raise ConfigError(f"Expected the number of oracles to be an int >= 2 (16 recommended; 4 or more for a "
                          f"conclusive membership test), but got {oracles!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ConfigError(f"Expected argument `alpha` to be a float in (0, 1), but got {alpha!r}")
    if model is not None and not isinstance(model, nn.Module):
        raise ConfigError(f"Expected `model` to be an nn.Module (or None for the run's current model), but got "
                          f"{type(model).__name__}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"Expected argument `threads` to be an int >= 1 or None, but got {threads!r}")
    if not isinstance(retain_size, int) or retain_size < 1:
        raise ConfigError(f"Expected argument `retain_size` to be an int >= 1, but got {retain_size!r}")
    if not isinstance(run, Run):
        run = open_run(run)
    with run.store.lock(exclusive=False, timeout=wait), _torch_threads(threads):
        run.store.reload()
        request = find_request(run, request_id)
        bank = OracleBank(run, int(request["request_id"]), wait=wait, threads=threads)
        bank_out = bank.get(int(oracles))
        # every helper evaluates in eval mode and restores the model's own mode afterwards
        candidate = model if model is not None else run.final_model()
        exact = bank_out.exact_model(run)
        oracle_models = bank_out.models(run)
        forget_set = run.train.select(torch.tensor(request["ids_deleted"], dtype=torch.int64))
        datasets = {"forget": forget_set, "retain": _retain_set(run, request, retain_size), "test": run.test}
        checks = {
            "canary": _canary_check(run, request, candidate, exact, oracle_models, alpha=alpha,
                                    margin=canary_margin),
            "membership": _membership_check(forget_set, candidate, oracle_models, alpha=alpha),
            "distance": _distance_check(datasets, candidate, exact, oracle_models,
                                        accuracy_tolerance=accuracy_tolerance, agreement_slack=agreement_slack),
        }
        epsilon = _epsilon(run, bank_out, forget_set, model is None, epsilon_delta)
    reasons = [f"{name}: {r}" for name, c in checks.items() if c.status == "fail" for r in c.reasons]
    conclusive = [n for n in ("canary", "membership") if checks[n].status == "pass"]
    if not reasons and not conclusive:
        reasons.append("no check could show that the data is gone (canary: "
                       f"{checks['canary'].status}, membership: {checks['membership'].status}); rerun with "
                       "--oracles 16, or plant a canary the original still remembers")
    verdict = "fail" if reasons else "pass"
    if verdict == "pass":
        reasons = [f"{name}: {c.reasons[0]}" for name, c in checks.items() if c.reasons]
    req = {k: request.get(k) for k in ("request_id", "method", "outcome", "d", "m", "t", "blocks_retrained",
                                        "n_deleted", "created")}
    req["blocks_total"] = run.num_blocks
    req["later_requests"] = [int(r["request_id"]) for r in run.requests
                             if int(r["request_id"]) > int(request["request_id"])]
    settings = {"oracles": int(oracles), "alpha": alpha, "accuracy_tolerance": accuracy_tolerance,
                "agreement_slack": agreement_slack, "canary_margin": canary_margin, "retain_size": retain_size,
                "epsilon_delta": epsilon_delta}
    return VerificationReport(str(run.path), int(request["request_id"]), "current" if model is None else "given",
                              verdict, reasons, req, bank_out.summary(), checks, epsilon, settings,
                              time.perf_counter() - t0)
