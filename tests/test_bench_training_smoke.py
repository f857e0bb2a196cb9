"""Smoke test of benchmarks/bench_training.py: its --quick mode runs and writes a sane JSON.

The quick mode trains small CNNs on scikit-learn's digits only (no MNIST files needed), so this runs
offline in seconds; the real figures come from the full run documented in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests._helpers import REPO, cli_env

SCRIPT = REPO / "benchmarks" / "bench_training.py"


@pytest.mark.slow
def test_bench_training_quick(tmp_path: Path) -> None:
    out = tmp_path / "training.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())

    assert result["quick"] is True
    assert result["machine"]["torch_threads"] == 1
    for key in ("benchmark", "date", "command", "total_wall_s", "markdown"):
        assert key in result

    acc = result["accuracy"]
    groups = {r["group"] for r in acc["rows"]}
    assert groups == {"reproduction", "sweep", "recipe"}
    for row in acc["rows"]:
        assert row["runs"], row
        for run in row["runs"]:
            assert 0.0 <= run["test_accuracy"] <= 1.0
            assert run["wall_s"] > 0
            if row["validation_fraction"] > 0:
                assert 0.0 <= run["validation_accuracy"] <= 1.0
            else:
                assert run["validation_accuracy"] is None
        assert row["min_test_accuracy"] <= row["mean_test_accuracy"] <= row["max_test_accuracy"]
    repro = [r for r in acc["rows"] if r["group"] == "reproduction"]
    assert {r["blocks"] for r in repro} >= {1}
    assert all(len(r["runs"]) == 2 for r in repro)  # two seeds for the key rows
    assert {r["validation_fraction"] for r in acc["rows"] if r["group"] == "recipe"} == {0.0, 0.1}
    assert "reproduction" in acc["gap_vs_ordinary"]

    cases = result["overhead"]["cases"]
    assert cases
    for case in cases:
        assert case["repeats"] >= 2
        assert len(case["times"]["recorded"]) == len(case["times"]["unrecorded"]) == case["repeats"]
        assert case["ratio"] > 0 and math.isfinite(case["ratio"])
        assert case["ratio_loop_only"] > 0
        assert case["median"]["recorded"]["wall_s"] > 0 and case["median"]["unrecorded"]["wall_s"] > 0
        assert case["identical_models"] is True  # the unrecorded loop is the same training
        assert isinstance(case["meets_target"], bool)
        prof = case["profile"]
        assert prof["training_thread_s"]["train_block"] > 0
        assert prof["writer_thread_s"]["busy (all block jobs)"] > 0
        assert prof["writer_thread_s"]["fsync (manifest, folder)"] >= 0
        lo, hi = case["ratio_90ci_bootstrap"]
        assert 0 < lo <= hi
