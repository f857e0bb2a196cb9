"""The membership entry of the audit wraps the verification package's loss-threshold attack."""

from __future__ import annotations

import math

from obliviate.audit import MembershipLoss, run_audit


def test_membership_wrapper(digits, digits_cnn):
    r = MembershipLoss(max_samples=200)(digits_cnn, digits)
    assert r.family == "inversion" and r.threat.knowledge == "score-based"
    for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "advantage"):
        assert not math.isnan(r.metrics[key])
    assert 0.0 <= r["auc"] <= 1.0 and r["members"] == 200


def test_membership_in_the_suite_table(digits, digits_cnn):
    report = run_audit(["membership_loss:max_samples=100"], {"original": digits_cnn}, digits)
    headers, rows = report.table("inversion")
    assert "auc" in headers and rows[0][:2] == ["membership_loss", "original"]
