"""Distance to the exact retrain and the noise floor, on tiny hand-made models with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from torch import nn

from obliviate.data import IndexedDataset
from obliviate.errors import ConfigError
from obliviate.verify import NoiseFloor, model_distance


def linear(weight, bias=(0.0, 0.0)) -> nn.Linear:
    m = nn.Linear(2, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        m.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return m


# inputs e0, e1, e0, e1; the last label is "wrong" for the reference
DATA = IndexedDataset(torch.arange(4), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
                      torch.tensor([0, 1, 0, 0]), 2, "toy")
REFERENCE = [[4.0, 0.0], [0.0, 4.0]]  # predicts the hot coordinate: 0, 1, 0, 1
HALF = [[4.0, 0.0], [0.0, 0.0]]       # logits (4, 0) on e0, (0, 0) on e1: predicts 0 everywhere
SWAP = [[0.0, 4.0], [4.0, 0.0]]       # predicts 1, 0, 1, 0


def softmax(z):
    e = np.exp(np.asarray(z) - np.max(z))
    return e / e.sum()


def test_model_distance_known_answers():
    ref, half = linear(REFERENCE), linear(HALF)
    half.train()
    d = model_distance(half, ref, {"test": DATA, "forget": DATA.select([1])})
    assert d.reference_accuracy == {"test": 0.75, "forget": 1.0}
    assert d.accuracy == {"test": 0.75, "forget": 0.0}
    assert d.accuracy_gap == {"test": 0.0, "forget": -1.0}
    assert d.agreement == {"test": 0.5, "forget": 0.0}
    # rows on e0 agree exactly; rows on e1 compare softmax(0, 0) with softmax(0, 4)
    js_e1 = jensenshannon(softmax([0.0, 0.0]), softmax([0.0, 4.0])) ** 2
    assert d.js_divergence["test"] == pytest.approx(js_e1 / 2, rel=1e-6)
    assert d.js_divergence["forget"] == pytest.approx(js_e1, rel=1e-6)
    assert d.parameter_l2 == pytest.approx(4.0)
    assert d.parameter_l2_relative == pytest.approx(4.0 / math.sqrt(32.0))
    assert half.training and not any(p.grad is not None for p in half.parameters())
    json.dumps(d.to_dict(), allow_nan=False)


def test_model_distance_to_itself_is_zero_and_other_architectures_have_no_parameter_distance():
    ref = linear(REFERENCE)
    d = model_distance(ref, ref, {"test": DATA})
    assert d.agreement["test"] == 1.0 and d.js_divergence["test"] == 0.0 and d.parameter_l2 == 0.0
    other = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    d2 = model_distance(other, ref, {"test": DATA})
    assert d2.parameter_l2 is None and d2.to_dict()["parameter_l2"] is None
    assert model_distance(ref, ref, {"test": DATA}, parameters=False).parameter_l2 is None


def test_model_distance_rejects_bad_datasets():
    ref = linear(REFERENCE)
    with pytest.raises(ConfigError, match="non-empty mapping"):
        model_distance(ref, ref, {})
    with pytest.raises(ConfigError, match="IndexedDataset"):
        model_distance(ref, ref, {"test": DATA.x})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="empty"):
        model_distance(ref, ref, {"test": DATA.take(torch.tensor([], dtype=torch.int64))})


def test_noise_floor_flags_each_metric():
    ref = linear(REFERENCE)
    second = linear([[4.4, 0.0], [0.0, 4.4]])  # same predictions, slightly different confidences
    floor = NoiseFloor(check_parameters=True)

    same = floor.compare(linear(REFERENCE), ref, second, {"test": DATA})
    assert same.within_floor and same.failed() == []
    assert same.floor.agreement["test"] == 1.0 and same.floor.js_divergence["test"] > 0

    half = floor.compare(linear(HALF), ref, second, {"test": DATA})
    failed = {(c.metric, c.dataset) for c in half.failed()}
    assert failed == {("agreement", "test"), ("js_divergence", "test"), ("parameter_l2", "parameters")}
    assert not half.within_floor  # accuracy alone is within (0.75 either way), the rest is not

    swap = floor.compare(linear(SWAP), ref, second, {"test": DATA})
    gap = next(c for c in swap.checks if c.metric == "accuracy_gap")
    assert gap.candidate == pytest.approx(0.5) and gap.bound == pytest.approx(0.005) and not gap.within
    json.dumps(swap.to_dict(), allow_nan=False)


def test_noise_floor_accuracy_bound_is_the_larger_of_floor_gap_and_tolerance():
    ref = linear(REFERENCE)
    noisy_second = linear(HALF)  # a "retrain" that lost accuracy on the forget sample: gap 1.0 there
    forget = {"forget": DATA.select([1])}
    c = NoiseFloor().compare(linear(HALF), ref, noisy_second, forget)
    gap = next(x for x in c.checks if x.metric == "accuracy_gap")
    assert gap.bound == 1.0 and gap.within
    loose = NoiseFloor(agreement_slack=1.0, js_slack=1.0).compare(linear(SWAP), ref, linear(REFERENCE),
                                                                 {"test": DATA})
    assert {c.metric for c in loose.failed()} == {"accuracy_gap"}


def test_noise_floor_settings_are_validated():
    with pytest.raises(ConfigError, match="accuracy_tolerance"):
        NoiseFloor(accuracy_tolerance=-0.1)
    with pytest.raises(ConfigError, match="matching state dicts"):
        other = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
        NoiseFloor(check_parameters=True).compare(other, linear(REFERENCE), linear(REFERENCE), {"test": DATA})
