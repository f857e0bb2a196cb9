"""The two verdicts' statistics on constructed inputs (big margins, no model): forgotten (two-sided, with
its power), faithful (a calibrated p-value, not "below the worst oracle"), and how the report combines them."""

import json

import numpy as np
import pytest

from obliviate.errors import ConfigError
from obliviate.verify.faithful import faithful_test
from obliviate.verify.forgotten import NOTHING, forgotten_test
from obliviate.verify.report import VerificationReport
from obliviate.verify.settings import VerifySettings


def _oracles(rng, n_models=8, n=6, mean=-8.0, sd=1.0, model_sd=0.5):
    """Oracle confidences: a per-model offset (models are more or less confident on every example) plus noise."""
    return mean + model_sd * rng.normal(size=(n_models, 1)) + sd * rng.normal(size=(n_models, n))


def test_member_like_candidate_is_not_forgotten():
    rng = np.random.default_rng(1)
    ref = _oracles(rng)
    kept = ref.mean(0) + 10.0  # far more confident than any model that never saw U
    r = forgotten_test(kept, ref, original_phi=kept)
    assert r.verdict == "no" and r.direction == "member" and r.candidate.p_value < 1e-4
    assert set(r.directions()) == {"member"}


def test_over_forgotten_candidate_reveals_the_deletion():
    rng = np.random.default_rng(2)
    ref = _oracles(rng)
    r = forgotten_test(ref.mean(0) - 25.0, ref, original_phi=ref.mean(0) + 10.0)
    assert r.verdict == "no" and r.direction == "over-forgotten"
    assert "over-forgotten" in r.reasons[0] and r.candidate.p_value < 1e-4


def test_nothing_measurable_when_the_original_is_typical():
    rng = np.random.default_rng(3)
    ref = _oracles(rng)
    typical = _oracles(rng, n_models=2)
    r = forgotten_test(typical[0], ref, original_phi=typical[1])  # a no-op on a non-memorised sample
    assert r.verdict == NOTHING and r.has_power is False
    assert r.original.p_value > 0.05 and "no power" in r.reasons[0]


def test_forgotten_yes_needs_power():
    rng = np.random.default_rng(4)
    ref = _oracles(rng)
    r = forgotten_test(_oracles(rng, n_models=1)[0], ref, original_phi=ref.mean(0) + 10.0)
    assert r.verdict == "yes" and r.has_power is True and r.candidate.p_value > 0.05


def test_forgotten_test_is_calibrated_on_exchangeable_models():
    """200 simulated users: the candidate is one more oracle. Rejections at alpha = 0.01 stay rare (a loose
    bound: the Gaussian null is approximate), and they are never near the fakes' p-values."""
    rng = np.random.default_rng(5)
    rejected = 0
    for _ in range(200):
        models = _oracles(rng, n_models=9, n=4)
        r = forgotten_test(models[0], models[1:], original_phi=models[0] + 10.0)
        rejected += r.verdict == "no"
    assert rejected <= 8  # 4%; expected about 1%


def test_a_collapsed_oracle_cloud_does_not_reject_shifts_below_the_resolution():
    """Oracles replayed at a learning rate near 0 agree to a few thousandths (asinh(phi) units; a loss near
    15) on every example and on the user's mean. A candidate shifted by 0.006 (a loss moved by about 0.1)
    is far outside that cloud, yet below the resolution of one example (``MIN_SD``): not rejected. A shift
    the size of a memorised user's (0.5) still is, in either direction."""
    from obliviate.verify.forgotten import MIN_SD, _predictive, null_statistics, scale

    rng = np.random.default_rng(11)
    base = scale(np.full(25, -15.0))
    ref = np.sinh(base + 5e-4 * rng.normal(size=(8, 1)) + 5e-3 * rng.normal(size=(8, 25)))
    near = np.sinh(scale(ref).mean(0) + 0.006)
    null = null_statistics(scale(ref))
    assert _predictive(float(scale(near).mean()), null[:, 0], "two")[1] < 1e-3  # without the floor: rejected
    assert MIN_SD > 0.006
    assert forgotten_test(near, ref, original_phi=near).verdict != "no"
    for shift in (0.5, -0.5):
        far = np.sinh(scale(ref).mean(0) + shift)
        assert forgotten_test(far, ref, original_phi=far).verdict == "no"


def test_forgotten_test_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="N >= 4"):
        forgotten_test(np.zeros(3), np.zeros((3, 3)), original_phi=None)


def _labels_and_preds(rng, n=600, models=8, error=0.04):
    labels = rng.integers(0, 10, size=n)

    def preds(p):
        flip = rng.random(n) < p
        return np.where(flip, (labels + 1 + rng.integers(0, 9, size=n)) % 10, labels)

    return labels, preds, np.stack([preds(error) for _ in range(models)])


def test_faithful_accepts_a_model_just_below_the_worst_oracle():
    """Agreement just below the worst oracle's: inside the cloud's spread, so fidelity is not rejected, and
    the p-value says how plausible it is (the old rule, "below the worst oracle", failed it)."""
    rng = np.random.default_rng(6)
    labels, preds, oracles = _labels_and_preds(rng)
    found = None
    for _ in range(200):  # a fresh draw from the same process whose agreement lands below every oracle's
        cand = preds(0.05)
        r = faithful_test(cand, oracles, labels)
        if r.candidate["agreement"] < r.worst_oracle["agreement"]:
            found = r
            break
    assert found is not None
    assert found.verdict == "yes" and 0.01 < found.p_value <= 1.0
    assert "below the worst oracle" in found.reasons[0]


def test_faithful_rejects_a_clearly_worse_model():
    rng = np.random.default_rng(7)
    labels, preds, oracles = _labels_and_preds(rng)
    r = faithful_test(preds(0.25), oracles, labels)
    assert r.verdict == "no" and r.p_value < 1e-4 and "accuracy" in r.reasons[0]
    assert len(r.oracles) == 8 and set(r.oracles[0]) == {"accuracy", "agreement"}
    assert 1 / 9 <= r.rank_p_accuracy <= 1.0  # the conformal p-value cannot go below 1 / (N + 1)


def test_faithful_retained_fit_catches_a_model_that_did_not_learn_later_blocks():
    rng = np.random.default_rng(8)
    labels, _, oracles = _labels_and_preds(rng)
    retained_oracles = 6.0 + 0.3 * rng.normal(size=(8, 1)) + 0.5 * rng.normal(size=(8, 50))
    cand, typical = oracles[0], retained_oracles[1:].mean(axis=0)  # the cloud's centre: typical by construction
    ok = faithful_test(cand, oracles[1:], labels, retained_phi=typical, oracle_retained_phi=retained_oracles[1:])
    assert ok.verdict == "yes" and ok.p_retained > 0.1
    r = faithful_test(cand, oracles[1:], labels, retained_phi=typical - 4.0,
                      oracle_retained_phi=retained_oracles[1:])
    assert r.verdict == "no" and r.p_retained < 1e-3 and "retained" in r.reasons[0]


def test_faithful_later_blocks_fit_catches_a_model_missing_the_later_training():
    """The later blocks' samples the shared start fits worst: every oracle trained on them (confident), a model
    returned without the later blocks did not. Rejected through ``p_later`` alone, with its own reason."""
    rng = np.random.default_rng(10)
    labels, _, oracles = _labels_and_preds(rng)
    later_oracles = 3.0 + 0.5 * rng.normal(size=(8, 1)) + 1.0 * rng.normal(size=(8, 16))
    cand = oracles[0]
    ok = faithful_test(cand, oracles[1:], labels, later_phi=later_oracles[0], oracle_later_phi=later_oracles[1:])
    assert ok.verdict == "yes" and ok.p_later > 0.05 and ok.p_retained is None
    missing = -4.0 + 1.0 * rng.normal(size=16)  # never trained on them: misfit, as the start was
    r = faithful_test(cand, oracles[1:], labels, later_phi=missing, oracle_later_phi=later_oracles[1:])
    assert r.verdict == "no" and r.p_later < 1e-4 and r.p_accuracy > 0.01
    assert "later blocks" in r.reasons[0]


def test_faithful_test_with_every_statistic_is_calibrated_on_exchangeable_models():
    """200 simulated deletions, the candidate one more oracle on every statistic (test predictions, a
    retained sample, the later blocks' samples): rejections at alpha = 0.01 stay rare (a loose bound, the
    Gaussian null is approximate; Bonferroni over four statistics makes it conservative)."""
    rng = np.random.default_rng(11)
    rejected = 0
    for _ in range(200):
        labels, _, models = _labels_and_preds(rng, n=300, models=9)
        retained = 6.0 + 0.3 * rng.normal(size=(9, 1)) + 0.5 * rng.normal(size=(9, 40))
        later = 2.0 + 0.8 * rng.normal(size=(9, 1)) + 1.5 * rng.normal(size=(9, 16))
        r = faithful_test(models[0], models[1:], labels, retained_phi=retained[0], oracle_retained_phi=retained[1:],
                          later_phi=later[0], oracle_later_phi=later[1:])
        rejected += r.verdict == "no"
    assert rejected <= 8  # 4%; expected at most 1%


def _report(forgotten, faithful):
    return VerificationReport("run", [1, 2], "given", forgotten=forgotten, faithful=faithful,
                              roc={"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "auc": 0.5}, per_example=[],
                              oracle_cloud={"oracles": [], "candidate": {}}, oracles={}, settings={})


def test_a_fidelity_miss_is_never_reported_as_not_forgotten():
    rng = np.random.default_rng(9)
    labels, preds, oracles = _labels_and_preds(rng)
    fid = faithful_test(preds(0.25), oracles, labels).to_dict()
    r = _report({"verdict": "yes", "reasons": ["typical"]}, fid)
    assert r.verdict == "fail" and r.failed == ["faithful"] and r.forgotten["verdict"] == "yes"
    assert r.exit_code == 1 and any(x.startswith("faithful: fidelity rejected") for x in r.reasons)


def test_overall_verdicts_and_exit_codes():
    yes = {"verdict": "yes", "p_value": 0.5, "reasons": []}
    assert _report(dict(yes), dict(yes)).exit_code == 0
    nothing = _report({"verdict": NOTHING, "reasons": []}, dict(yes))
    assert nothing.verdict == "inconclusive" and nothing.exit_code == 3 and not nothing.passed
    both = _report({"verdict": "no", "reasons": []}, {"verdict": "no", "reasons": []})
    assert both.failed == ["forgotten", "faithful"] and both.exit_code == 1
    d = json.loads(json.dumps(both.to_dict(), allow_nan=False))
    assert {"roc", "per_example", "oracle_cloud", "forgotten", "faithful"} <= set(d)


@pytest.mark.parametrize("kwargs,match", [
    ({"oracles": 3}, r"\[4, 128\]"), ({"oracles": 129}, r"\[4, 128\]"), ({"oracles": True}, "oracles"),
    ({"threads": 0}, "threads"), ({"seed": -1}, "seed"), ({"alpha": 0.0}, "alpha"),
    ({"fidelity_alpha": 0.7}, "fidelity_alpha"), ({"accuracy_tolerance": -0.1}, "accuracy_tolerance"),
])
def test_settings_are_validated_in_one_place(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VerifySettings(**kwargs)


def test_oracle_seed_sets_do_not_overlap():
    a = VerifySettings(oracles=128, seed=0).oracle_seeds(0)
    b = VerifySettings(oracles=128, seed=1).oracle_seeds(0)
    assert not set(a) & set(b) and 0 not in a  # the run's own seed is the exact replay, never an oracle


def test_binomial_tail_matches_scipy():
    """The guard's own binomial tail (no scipy import on the forget path) against scipy.stats.binom."""
    import random

    from scipy.stats import binom

    from obliviate._binomial import binomial_sf

    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(0, 1500)
        k = rng.randint(-1, n + 1)
        p = rng.choice([0.5, rng.random(), 0.1, 0.9])
        expected = float(binom.sf(k - 1, n, p))
        got = binomial_sf(k, n, p)
        assert abs(got - expected) <= 1e-4 * expected + 1e-300, (k, n, p, got, expected)


def test_fidelity_judged_against_an_original_outside_the_cloud():
    """When the original itself is outside the oracle cloud, a candidate as good as the original is faithful
    relative to it (``centre``), while one clearly worse than the original is still rejected."""
    import numpy as np

    from obliviate.verify.faithful import faithful_test, original_centre

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, size=2000)

    def noisy(p):
        flip = rng.random(labels.size) < p
        return np.where(flip, (labels + 1 + rng.integers(0, 9, size=labels.size)) % 10, labels)

    oracles = np.stack([noisy(0.04) for _ in range(8)])
    original = noisy(0.09)  # 5 points below the cloud: the run itself is an outlier
    base = faithful_test(original, oracles, labels)
    assert base.verdict == "no"
    like_original = original.copy()
    like_original[:10] = labels[:10]  # a deletion changes a few predictions
    assert faithful_test(like_original, oracles, labels).verdict == "no"  # against the cloud alone
    centre = original_centre(base, None)
    assert faithful_test(like_original, oracles, labels, centre=centre).verdict == "yes"
    worse = noisy(0.2)
    assert faithful_test(worse, oracles, labels, centre=centre).verdict == "no"
