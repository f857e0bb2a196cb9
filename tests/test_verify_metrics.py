"""Verification metrics against oracles: scikit-learn's ROC functions, scipy's Jensen-Shannon distance, and
hand-computed values for the unlearning challenge's epsilon and the distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from obliviate.errors import ConfigError
from obliviate.verify.metrics import (
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

FPR_TARGETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.999, 1.0)


def sk_tpr_at_fpr(scores, labels, target):
    # all points: sklearn's default drop_intermediate=True also drops collinear points, which can remove
    # the last point under the target FPR
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= target].max())


# scores drawn from few integers produce many ties; floats produce few
scores_and_labels = st.integers(min_value=2, max_value=60).flatmap(
    lambda n: st.tuples(
        st.one_of(st.lists(st.integers(-3, 3).map(float), min_size=n, max_size=n),
                  st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n)),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(scores_and_labels)
def test_roc_matches_sklearn(data):
    scores, labels = data
    assume(0 < sum(labels) < len(labels))
    s, y = np.array(scores), np.array(labels)
    ours = roc_curve(s, y)
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_array_equal(ours.thresholds[1:], thr[1:])
    assert ours.thresholds[0] == np.inf
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    for target in FPR_TARGETS:
        assert tpr_at_fpr(s, y, target) == sk_tpr_at_fpr(s, y, target)
    assert membership_advantage(s, y) == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)


def test_roc_matches_sklearn_large_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=20_000)
    s = np.round(rng.normal(size=y.size) + 0.7 * y, 1)  # rounded: thousands of ties
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    for target in (0.0, 0.0001, 0.001, 0.01, 0.1):
        assert tpr_at_fpr(s, y, target) == sk_tpr_at_fpr(s, y, target)
    # torch tensors are accepted and give the same numbers
    assert roc_auc(torch.from_numpy(s), torch.from_numpy(y)) == roc_auc(s, y)


def test_tpr_at_fpr_reads_exact_points_without_interpolation():
    # 4 non-members: FPR moves in steps of 0.25; at target 0.2 only the FPR-0 point qualifies
    s = [10, 9, 8, 7, 6, 5, 4, 3]
    y = [1, 1, 0, 1, 0, 1, 0, 0]
    assert tpr_at_fpr(s, y, 0.2) == 0.5
    assert tpr_at_fpr(s, y, 0.25) == 0.75
    assert tpr_at_fpr(s, y, 0.5) == 1.0
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s))


def test_perfect_and_inverted_attacks():
    assert roc_auc([3, 2, 1, 0], [1, 1, 0, 0]) == 1.0
    assert roc_auc([3, 2, 1, 0], [0, 0, 1, 1]) == 0.0
    assert membership_advantage([3, 2, 1, 0], [0, 0, 1, 1]) == 0.0  # the (0, 0) point: never negative
    assert roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5


@pytest.mark.parametrize("scores,labels", [
    ([0.1, 0.2], [1, 1]),                 # one class only
    ([0.1, float("nan")], [0, 1]),        # NaN score
    ([0.1, float("inf")], [0, 1]),        # infinite score
    ([0.1, 0.2, 0.3], [0, 1]),            # length mismatch
    ([0.1, 0.2], [0, 2]),                 # not a 0/1 label
])
def test_roc_rejects_bad_input(scores, labels):
    with pytest.raises(ConfigError):
        roc_auc(scores, labels)


@pytest.mark.parametrize("target", [-0.1, 1.5, "0.1"])
def test_tpr_at_fpr_rejects_bad_target(target):
    with pytest.raises(ConfigError, match="fpr"):
        tpr_at_fpr([0.1, 0.2], [0, 1], target)


# --- NeurIPS 2023 unlearning challenge: epsilon and forgetting quality --------------------------------


def test_epsilon_from_rates_hand_values():
    # log((1 - 0.01 - 0.25) / 0.25) from both sides
    assert epsilon_from_rates([0.25], [0.25]) == pytest.approx(math.log(0.74 / 0.25))
    # one zero rate: discarded (no bound), both zero: capped
    assert epsilon_from_rates([0.0], [0.3]) == 0.0
    assert epsilon_from_rates([0.0, 0.2], [0.0, 0.2], max_epsilon=7.0) == 7.0
    # chance-level attacks give 0, never a negative epsilon
    assert epsilon_from_rates([0.5, 0.9], [0.5, 0.1]) == 0.0
    # the best attack wins
    assert epsilon_from_rates([0.4, 0.1], [0.4, 0.1], delta=0.0) == pytest.approx(math.log(0.9 / 0.1))


def test_unlearning_epsilons_partial_overlap_hand_value():
    # unlearned 0..3, retrained 2..5: the best threshold flags {<= 2}: FNR 1/4, FPR 1/4
    u = np.array([[0.0], [1.0], [2.0], [3.0]])
    r = np.array([[2.0], [3.0], [4.0], [5.0]])
    eps = unlearning_epsilons(u, r, delta=0.01)
    assert eps.tolist() == pytest.approx([math.log(0.74 / 0.25)])
    # swapping the roles gives the same epsilon (the definition is symmetric)
    assert unlearning_epsilons(r, u).tolist() == pytest.approx(eps.tolist())


def test_unlearning_epsilons_orders_examples_by_leakage():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(64, 3))
    u = rng.normal(size=(64, 3)) + np.array([0.0, 1.0, 5.0])  # none, some, total leakage
    eps = unlearning_epsilons(u, r)
    assert eps[0] < eps[1] < eps[2] == 20.0
    assert eps[1] > 1.5  # a one-sigma shift is detected
    q = forgetting_quality(eps)
    assert 0 < q < 1


def test_forgetting_quality_separates_leaky_from_clean_at_small_scale():
    # in-sample thresholds on few models bias epsilon upwards even for identical distributions, which
    # is why a candidate's F must be read against a retrain-vs-retrain floor
    rng = np.random.default_rng(2)
    floor = forgetting_quality(unlearning_epsilons(rng.normal(size=(32, 200)), rng.normal(size=(32, 200))))
    leaky = forgetting_quality(unlearning_epsilons(rng.normal(size=(32, 200)) + 1.0, rng.normal(size=(32, 200))))
    assert floor < 1.0
    assert leaky < floor / 3


@pytest.mark.parametrize("eps,score", [
    (0.0, 1.0), (0.49, 1.0), (0.5, 0.5), (0.99, 0.5), (1.0, 0.25), (5.99, 2 / 2 ** 12), (6.0, 2 / 2 ** 13),
    (1e9, 2 / 2 ** 13),
])
def test_forgetting_quality_bins(eps, score):
    assert forgetting_quality([eps]) == pytest.approx(score)


def test_forgetting_quality_is_the_mean_of_example_scores():
    assert forgetting_quality([0.1, 0.6, 1.2]) == pytest.approx((1 + 0.5 + 0.25) / 3)


def test_unlearning_epsilons_rejects_bad_shapes():
    with pytest.raises(ConfigError):
        unlearning_epsilons(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="at least 2"):
        unlearning_epsilons(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ConfigError):
        forgetting_quality([-1.0])


# --- prediction and parameter distances ----------------------------------------------------------------


def _random_probs(rng, n, k):
    p = rng.random((n, k)) ** 3
    p[rng.random((n, k)) < 0.2] = 0.0  # exact zeros: the 0 log 0 convention matters
    p[:, 0] += 1e-3
    return p / p.sum(axis=1, keepdims=True)


def test_js_divergence_matches_scipy():
    rng = np.random.default_rng(0)
    p, q = _random_probs(rng, 50, 5), _random_probs(rng, 50, 5)
    expected = jensenshannon(p, q, axis=1) ** 2  # scipy returns the distance (square root), natural log
    np.testing.assert_allclose(js_divergence(p, q, reduction="none"), expected, atol=1e-12)
    assert js_divergence(p, q) == pytest.approx(expected.mean())
    assert js_divergence(p, q, reduction="sum") == pytest.approx(expected.sum())


def test_js_divergence_from_logits_and_bounds():
    logits_a = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    logits_b = torch.tensor([[-1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    pa, pb = torch.softmax(logits_a, 1).numpy(), torch.softmax(logits_b, 1).numpy()
    got = js_divergence(logits_a, logits_b, from_logits=True, reduction="none")
    np.testing.assert_allclose(got, jensenshannon(pa, pb, axis=1) ** 2, atol=1e-7)
    assert got[1] == 0.0
    assert js_divergence([[1, 0, 0]], [[0, 0, 1]]) == pytest.approx(math.log(2))
    with pytest.raises(ConfigError, match="from_logits"):
        js_divergence(logits_a, logits_b)  # logits are not probabilities
    with pytest.raises(ConfigError, match="reduction"):
        js_divergence(pa, pb, reduction="max")


def test_prediction_agreement_labels_and_scores():
    assert prediction_agreement([0, 1, 2, 3], [0, 1, 2, 0]) == 0.75
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert prediction_agreement(scores, [0, 1, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError):
        prediction_agreement([0, 1], [0, 1, 1])


def test_parameter_distance_hand_values():
    a = torch.nn.Linear(2, 1)
    b = torch.nn.Linear(2, 1)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, 2.0]]))
        a.bias.fill_(0.0)
        b.weight.copy_(torch.tensor([[1.0, 0.0]]))
        b.bias.fill_(-1.0)
    # difference (0, 2, 1)
    assert parameter_distance(a, b) == pytest.approx(math.sqrt(5))
    assert parameter_distance(a, b, ord=1) == pytest.approx(3.0)
    assert parameter_distance(a, b, ord=math.inf) == pytest.approx(2.0)
    assert parameter_distance(a, b, relative=True) == pytest.approx(math.sqrt(5) / math.sqrt(2))
    assert parameter_distance(a.state_dict(), a.state_dict()) == 0.0


def test_parameter_distance_skips_integer_buffers_and_checks_keys():
    a, b = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    b.num_batches_tracked += 7  # an integer counter: not a parameter
    with torch.no_grad():
        b.running_mean += 3.0  # a float buffer: counted (two entries of 3)
    assert parameter_distance(a, b) == pytest.approx(math.sqrt(18))
    with pytest.raises(ConfigError, match="same keys"):
        parameter_distance(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(2))
    with pytest.raises(ConfigError, match="shape"):
        parameter_distance(torch.nn.Linear(2, 1), torch.nn.Linear(3, 1))
