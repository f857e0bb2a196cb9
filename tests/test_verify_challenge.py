"""The NeurIPS 2023 challenge's forget score (google-deepmind/unlearning_evaluation, metric.py) against values
computed by hand from its definitions, on constructed distributions: identical, shifted, one peaky."""

import math

import numpy as np
import pytest

from obliviate.errors import ConfigError
from obliviate.verify.challenge import DELTA, EPSILON_CAP, challenge_epsilons, challenge_score, score_from_epsilons

RETRAINED = np.array([[0.0], [1.0], [2.0], [3.0]])


def test_identical_distributions_give_epsilon_zero():
    # every rule has TPR = FPR, so both log-ratios are negative and clip to 0
    assert challenge_epsilons(RETRAINED, RETRAINED).tolist() == [0.0]


def test_shifted_by_one():
    # unlearned {1,2,3,4} vs retrained {0,1,2,3}: the best rules reach (FPR, FNR) = (1/2, 1/4) or (1/4, 1/2),
    # e.g. "unlearned when c >= 1.5": FNR = 1/4 (only 1 below), FPR = 2/4; epsilon = log((1 - delta - 1/2) / (1/4))
    eps = challenge_epsilons(RETRAINED + 1.0, RETRAINED)
    assert abs(eps[0] - math.log((1 - DELTA - 0.5) / 0.25)) < 1e-6


def test_shifted_by_two():
    # {2,3,4,5} vs {0,1,2,3}: "c >= 2.5": FNR = 1/4, FPR = 1/4; epsilon = log((1 - delta - 1/4) / (1/4))
    eps = challenge_epsilons(RETRAINED + 2.0, RETRAINED)
    assert abs(eps[0] - math.log((1 - DELTA - 0.25) / 0.25)) < 1e-6


def test_perfect_separation_and_one_peaky_side_are_capped():
    assert challenge_epsilons(RETRAINED + 10.0, RETRAINED).tolist() == [EPSILON_CAP]
    peaky = np.array([[1.0], [1.001], [1.0005], [1.0002]])  # range 0.001 < 1% of the other's 3
    assert challenge_epsilons(peaky, RETRAINED).tolist() == [EPSILON_CAP]
    assert challenge_epsilons(RETRAINED, peaky).tolist() == [EPSILON_CAP]


def test_score_buckets_up_to_ceil_log_n_minus_1():
    # N = 4: ceil(ln 3) = 2, buckets [0, .5) [.5, 1) [1, 1.5) [1.5, 2) worth 1, 1/2, 1/4, 1/8; beyond: 0
    assert [score_from_epsilons([e], 4) for e in (0.0, 0.49, 0.5, 1.2, 1.99, 2.0, 50.0)] == \
        [1.0, 1.0, 0.5, 0.25, 0.125, 0.0, 0.0]
    # N = 32: ceil(ln 31) = 4, eight buckets; N = 512: ceil(ln 511) = 7, fourteen
    assert score_from_epsilons([3.9], 32) == 0.5 ** 7 and score_from_epsilons([4.0], 32) == 0.0
    assert score_from_epsilons([6.9], 512) == 0.5 ** 13 and score_from_epsilons([7.0], 512) == 0.0
    assert score_from_epsilons([0.0], 2) == 0.0  # ln 1 = 0: no bucket at all


def test_score_of_three_examples_by_hand():
    # identical (1 point) + shifted by one (epsilon 0.693: 1/2) + peaky (capped: 0), over 3 examples
    unlearned = np.c_[RETRAINED, RETRAINED + 1.0, [[1.0], [1.001], [1.0005], [1.0002]]]
    retrained = np.c_[RETRAINED, RETRAINED, RETRAINED]
    assert abs(challenge_score(unlearned, retrained) - 0.5) < 1e-6


def test_with_32_models_a_side_the_floor_is_far_below_1():
    """Two draws of one Gaussian, 32 models a side: rates move in steps of 1/32, so even identical
    distributions lose points (measured 0.19 here): read a score against this floor, never against 1."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(32, 20)), rng.normal(size=(32, 20))
    floor = challenge_score(a, b)
    assert 0.1 < floor < 0.5 and challenge_score(a + 5.0, b) < floor / 10


def test_bad_shapes():
    with pytest.raises(ConfigError, match="same shape"):
        challenge_epsilons(np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="finite"):
        challenge_epsilons(np.full((4, 1), np.nan), np.zeros((4, 1)))
