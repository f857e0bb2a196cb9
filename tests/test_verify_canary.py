"""Backdoor canaries (Sommer et al.): planting touches only the user's samples, attack success is counted on
the right inputs, and the deletion test and verdict say what the counts support."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, binomtest
from torch import nn

from obliviate.data import IndexedDataset, load_digits
from obliviate.data.triggers import BlendTrigger, PatchTrigger
from obliviate.errors import ConfigError, RequestError
from obliviate.verify import Canary, canary_verdict, deletion_power, deletion_test


def toy(n: int = 6, classes: int = 3) -> IndexedDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 4, 4, generator=g) * 0.5
    return IndexedDataset(torch.arange(100, 100 + n), x, torch.arange(n) % classes, classes, "toy")


# --- planting -------------------------------------------------------------------------------------------


def test_plant_stamps_and_relabels_only_the_given_ids():
    ds = toy()
    before_x, before_y = ds.x.clone(), ds.y.clone()
    canary = Canary(PatchTrigger(size=2, value=1.0), target=0)
    planted = canary.plant(ds, [104, 101])
    touched = torch.tensor([False, True, False, False, True, False])
    assert torch.equal(planted.x[~touched], ds.x[~touched])
    assert torch.equal(planted.y[~touched], ds.y[~touched])
    assert planted.y[touched].tolist() == [0, 0]
    assert torch.equal(planted.ids, ds.ids)
    mask = PatchTrigger(size=2).mask((1, 4, 4)).bool()
    for i in (1, 4):
        assert (planted.x[i][mask] == 1.0).all()                    # the patch is there
        assert torch.equal(planted.x[i][~mask], ds.x[i][~mask])     # and nothing else changed
    assert torch.equal(ds.x, before_x) and torch.equal(ds.y, before_y)  # the input is not mutated


def test_plant_with_another_trigger_and_empty_ids():
    ds = toy()
    planted = Canary(BlendTrigger(alpha=0.5), target=2).plant(ds, [103])
    assert not torch.equal(planted.x[3], ds.x[3]) and planted.y[3] == 2
    assert torch.equal(planted.x[:3], ds.x[:3])
    same = Canary().plant(ds, [])
    assert torch.equal(same.x, ds.x) and torch.equal(same.y, ds.y)


def test_plant_rejects_unknown_ids_and_bad_targets():
    with pytest.raises(RequestError, match="unknown sample ids"):
        Canary().plant(toy(), [7])
    with pytest.raises(ConfigError, match="target class 5"):
        Canary(target=5).plant(toy(), [100])
    with pytest.raises(ConfigError, match="apply"):
        Canary(trigger="patch")  # type: ignore[arg-type]


# --- attack success ---------------------------------------------------------------------------------------


class PatchDetector(nn.Module):
    """Predicts ``target`` when the bottom-right pixel is 1, else class 1."""

    def __init__(self, target: int, classes: int) -> None:
        super().__init__()
        self.target, self.classes = target, classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hit = x[:, 0, -1, -1] == 1.0
        out = torch.zeros(x.shape[0], self.classes)
        out[hit, self.target] = 5.0
        out[~hit, 1] = 5.0
        return out


def test_attack_success_counts_triggered_inputs_of_other_classes():
    test = toy(9)  # labels 0,1,2 three times each: 6 are not the target
    canary = Canary(PatchTrigger(size=1), target=0)
    detector = PatchDetector(0, 3)
    detector.train()
    assert canary.attack_success(detector, test) == (6, 6)
    assert detector.training  # mode restored
    clean = Canary(PatchTrigger(size=1, value=0.7), target=0)  # a trigger the detector does not react to
    assert clean.attack_success(detector, test) == (0, 6)
    triggered = canary.triggered(test)
    assert (triggered.y != 0).all() and len(triggered) == 6
    assert (triggered.x[:, 0, -1, -1] == 1.0).all()
    only_target = IndexedDataset(torch.arange(2), torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), 3)
    assert canary.attack_success(detector, only_target) == (0, 0)


# --- the hypothesis test ---------------------------------------------------------------------------------


def test_deletion_test_p_value_is_the_binomial_tail_under_deletion():
    for s in (0, 3, 10, 40):
        t = deletion_test(s, 50, p_deleted=0.05, p_kept=0.8)
        assert t.p_value == pytest.approx(binomtest(s, 50, 0.05, alternative="greater").pvalue)
        assert t.p_value == pytest.approx(binom.sf(s - 1, 50, 0.05))
        llr = s * math.log(0.8 / 0.05) + (50 - s) * math.log(0.2 / 0.95)
        assert t.log_likelihood_ratio == pytest.approx(llr)
        assert t.deletion_confidence == pytest.approx(1 / (1 + math.exp(llr)))


def test_deletion_test_separates_kept_from_deleted():
    p_kept, p_deleted, n = 0.85, 0.04, 200
    kept = deletion_test(int(p_kept * n), n, p_deleted, p_kept)
    deleted = deletion_test(int(p_deleted * n), n, p_deleted, p_kept)
    assert kept.p_value < 1e-50 and kept.rejects_deletion and kept.deletion_confidence < 1e-50
    assert deleted.p_value > 0.3 and not deleted.rejects_deletion and deleted.deletion_confidence > 0.999
    assert kept.log_likelihood_ratio > 0 > deleted.log_likelihood_ratio
    json.dumps(kept.to_dict(), allow_nan=False)


def test_deletion_power_matches_a_brute_force_search():
    for n, q, p, alpha in ((20, 0.1, 0.5, 0.05), (50, 0.02, 0.2, 0.01), (8, 0.3, 0.4, 0.01)):
        ks = [k for k in range(n + 2) if binom.sf(k - 1, n, q) <= alpha]
        k = ks[0] if ks else n + 1
        expected = binom.sf(k - 1, n, p) if k <= n else 0.0
        assert deletion_power(n, q, p, alpha=alpha) == pytest.approx(expected)
        t = deletion_test(0, n, q, p, alpha=alpha)
        assert t.critical_successes == k
        assert t.power == pytest.approx(expected)
    assert deletion_power(100, 0.05, 0.9) > 0.999
    assert deletion_power(100, 0.05, 0.06) < 0.1  # the original barely remembers: no power


def test_deletion_test_handles_extreme_rates_and_rejects_bad_input():
    t = deletion_test(3, 10, p_deleted=0.0, p_kept=1.0)
    assert t.p_value == 0.0 and math.isfinite(t.log_likelihood_ratio)
    with pytest.raises(ConfigError):
        deletion_test(11, 10, 0.1, 0.9)
    with pytest.raises(ConfigError):
        deletion_test(1, 10, 1.5, 0.9)
    with pytest.raises(ConfigError, match="alpha"):
        deletion_test(1, 10, 0.1, 0.9, alpha=0.0)


# --- verdicts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("original,after,retrained,verdict", [
    ((95, 100), (3, 100), (2, 100), "pass"),
    ((95, 100), (60, 100), (2, 100), "fail"),             # the test rejects "deleted"
    ((95, 100), (6, 100), (2, 100), "fail"),              # not significant, but 4 points above the retrain
    ((6, 100), (4, 100), (2, 100), "inconclusive"),       # the original already forgot the canary
    (0.6, (0, 3), 0.05, "inconclusive"),                  # 3 trials: power 0.65 < 0.8
])
def test_canary_verdict(original, after, retrained, verdict):
    result = canary_verdict(original, after, retrained)
    assert result.verdict == verdict, result.reason
    rate = original[0] / original[1] if isinstance(original, tuple) else original
    assert result.asr_original == pytest.approx(rate)
    assert result.asr_after == pytest.approx(after[0] / after[1])
    json.dumps(result.to_dict(), allow_nan=False)


def test_canary_verdict_reports_why_it_is_inconclusive():
    r = canary_verdict((10, 100), (9, 100), (8, 100))
    assert r.verdict == "inconclusive" and "no longer" in r.reason and "remembers" in r.reason
    with pytest.raises(ConfigError):
        canary_verdict((10, 100), 0.1, (8, 100))  # type: ignore[arg-type]


# --- end to end on digits --------------------------------------------------------------------------------


def _train(data: IndexedDataset, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model


def test_canary_end_to_end_on_digits():
    splits = load_digits(seed=0)
    canary = Canary(PatchTrigger(size=2), target=0)
    user_ids = splits.train.ids[splits.train.y != 0][:40]  # one user's samples
    original = _train(canary.plant(splits.train, user_ids), seed=0)
    keep = splits.train.positions([i for i in splits.train.ids.tolist() if i not in set(user_ids.tolist())])
    retrained = _train(splits.train.take(keep), seed=1)
    s_orig, n = canary.attack_success(original, splits.test)
    s_retr, n2 = canary.attack_success(retrained, splits.test)
    assert n == n2 == int((splits.test.y != 0).sum())
    assert s_orig / n > 0.8 and s_retr / n < 0.1  # the backdoor is learnt, and absent without the canary
    assert canary_verdict((s_orig, n), (s_retr, n), (s_retr, n)).verdict == "pass"
    assert canary_verdict((s_orig, n), (s_orig, n), (s_retr, n)).verdict == "fail"
    t = deletion_test(s_orig, n, p_deleted=s_retr / n, p_kept=s_orig / n)
    assert t.p_value < 1e-20
    # clean accuracy is unaffected by the canary (it is a verification tool, not an attack)
    acc = [float((m(splits.test.x).argmax(1) == splits.test.y).float().mean()) for m in (original, retrained)]
    assert min(acc) > 0.9 and abs(acc[0] - acc[1]) < 0.05
    assert np.isfinite(acc).all()
