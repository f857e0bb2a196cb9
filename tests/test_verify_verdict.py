"""The verifier on the demo scenario: a fake forget (the original model, unchanged) fails; the exact mode and
DeepObliviate pass. Plus the statistics behind the verdict and its bad inputs."""

import json
import shutil

import numpy as np
import pytest

from obliviate.demo import demo_config
from obliviate.errors import ConfigError
from obliviate.training import open_run, train_run
from obliviate.unlearning import forget
from obliviate.verify import verify_request
from obliviate.verify.verdict import _holm, _per_example_test

ORACLES = 16


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo scenario: digits, 10 blocks, a 25-sample canary user in block 9, forgotten with
    DeepObliviate on one copy and the exact mode on another. The oracle bank built for the first copy is
    copied to the second: same chain before d, same membership, same key, so it is reused there."""
    root = tmp_path_factory.mktemp("demo")
    original = train_run(demo_config(), root / "original")
    user = original.canary_ids()
    runs = {}
    for method in ("deepobliviate", "exact"):
        shutil.copytree(original.path, root / method)
        runs[method] = open_run(root / method)
        forget(runs[method], user, method=method)
    reports = {"deepobliviate": verify_request(runs["deepobliviate"], 1, oracles=ORACLES),
               "fake": verify_request(runs["deepobliviate"], 1, model=original.final_model(), oracles=ORACLES)}
    shutil.copytree(root / "deepobliviate" / "verify", root / "exact" / "verify")
    reports["exact"] = verify_request(runs["exact"], 1, oracles=ORACLES)
    return reports


def _summary(report):
    c, m, d = (report.checks[k].numbers for k in ("canary", "membership", "distance"))
    return {"verdict": report.verdict, "asr": [c["asr_original"], c["asr_unlearned"], c["asr_exact"],
                                               c["asr_never_trained"]],
            "p_value": c["p_value"], "deletion_confidence": c["deletion_confidence"], "auc": m["auc"],
            "tpr_1pct": m["tpr_at_1pct_fpr"], "min_p_holm": m["min_p_holm"],
            "test_acc": d["per_dataset"]["test"]["accuracy"],
            "test_agreement": d["per_dataset"]["test"]["agreement_with_exact"]}


def test_a_fake_forget_fails(demo):
    report = demo["fake"]
    print("fake:", _summary(report))
    assert report.verdict == "fail" and not report.passed and report.model == "given"
    canary = report.checks["canary"]
    assert canary.status == "fail" and canary.numbers["p_value"] < 0.01
    assert canary.numbers["asr_original"] > 0.5 and canary.numbers["asr_unlearned"] == canary.numbers["asr_original"]
    membership = report.checks["membership"]
    assert membership.status == "fail" and membership.numbers["auc"] > 0.9  # clearly above 0.5
    assert membership.numbers["auc"] > membership.numbers["auc_null_mean"] + 2 * membership.numbers["auc_null_sd"]
    assert any(r.startswith("canary:") for r in report.reasons)
    assert any(r.startswith("membership:") for r in report.reasons)
    assert report.epsilon["available"] is False  # one given model: no output distribution to score


def test_the_exact_mode_passes_with_the_shared_oracle_bank(demo):
    report = demo["exact"]
    print("exact:", _summary(report))
    assert report.verdict == "pass", report.reasons
    assert report.oracles["trained_now"] == 0 and report.oracles["reused_from_cache"] == ORACLES + 1
    assert report.checks["distance"].numbers["identical_to_exact"] is True
    assert report.checks["canary"].status == "pass" and report.checks["membership"].status == "pass"


def test_deepobliviate_passes(demo):
    report = demo["deepobliviate"]
    print("deepobliviate:", _summary(report), report.request["outcome"])
    assert report.verdict == "pass", report.reasons
    assert report.checks["canary"].numbers["p_value"] > 0.01
    e = report.epsilon
    assert e["available"] and e["replicas"] == ORACLES // 2 and 0 < e["forgetting_quality_floor"] <= 1


def test_report_is_plain_json_with_every_number(demo):
    d = demo["fake"].to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["verdict"] == "fail"
    canary = d["checks"]["canary"]["numbers"]
    for key in ("asr_original", "asr_unlearned", "asr_exact", "asr_never_trained", "p_value", "deletion_confidence"):
        assert key in canary
    membership = d["checks"]["membership"]["numbers"]
    for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "advantage", "auc_threshold", "per_example"):
        assert key in membership
    assert len(membership["per_example"]["p_holm"]) == 25
    distance = d["checks"]["distance"]["numbers"]
    assert set(distance["per_dataset"]) == {"forget", "retain", "test"} and len(distance["oracles"]) == ORACLES
    assert d["oracles"]["shared_blocks"] == "1..8" and d["oracles"]["retrained_blocks"] == "9..10"
    assert "epsilon" in d and "caveat" in d["epsilon"]


def test_per_example_test_and_holm():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, size=(16, 5))
    _, _, t, p = _per_example_test(np.array([0.0, 0.0, 0.0, 0.0, 9.0]), ref)
    assert p[4] < 1e-4 < p[:4].min() and t[4] > 5
    np.testing.assert_allclose(_holm(np.array([0.01, 0.04, 0.03, 0.5])), [0.04, 0.09, 0.09, 0.5])


def test_bad_arguments(tiny_run):
    forget(tiny_run, [int(tiny_run.block_ids(5)[0])], method="exact")
    with pytest.raises(ConfigError, match="oracles to be an int >= 2"):
        verify_request(tiny_run, 1, oracles=1)
    with pytest.raises(ConfigError, match="nn.Module"):
        verify_request(tiny_run, 1, model="not a model")
    with pytest.raises(ConfigError, match="threads"):
        verify_request(tiny_run, 1, threads=0)


def test_epsilon_replays_a_stitch_under_the_oracle_seeds(tiny_run):
    result = forget(tiny_run, [int(tiny_run.block_ids(2)[5])])  # DeepObliviate on the tiny run
    report = verify_request(tiny_run, 1, oracles=4)
    e = report.epsilon
    assert e["available"] and e["replicas"] == 2 and e["retrained"] == 2
    assert len(e["per_example"]["unlearned"]) == 1
    if result.outcome == "stitched":
        assert "stitch replayed" in e["replicas_are"] and f"blocks {result.t + 1}..5" in e["replicas_are"]
        assert report.oracles["retrained_blocks"] == "2..5"
    assert report.verdict in ("pass", "fail") and report.checks["canary"].status == "skipped"
