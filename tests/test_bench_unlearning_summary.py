"""benchmarks/bench_unlearning.py's summary and table, on a small result file written here (the real
figures come from full runs documented in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests._helpers import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_unlearning", REPO / "benchmarks" / "bench_unlearning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _case(kind, dob, exact, retrain=None):
    """One case: (caller_s, train_s, outcome, blocks) per method."""
    def method(v):
        return {"caller_s": v[0], "train_s": v[1], "outcome": v[2], "blocks_retrained": v[3]}
    row = {"kind": kind, "deepobliviate": method(dob), "exact": method(exact),
           "agreement_with_exact": {"deepobliviate": 0.99, "floor": 0.985, "original": 0.995},
           "accuracy": {"exact": 0.95, "deepobliviate": 0.948}}
    if retrain is not None:
        row["retrain"] = {"caller_s": retrain}
    return row


def test_the_summary_separates_the_engines_own_time_from_training_drift(tmp_path: Path) -> None:
    bench = _bench()
    # same blocks trained, deepobliviate's training 10% slower (the machine), 20 ms more beside it; then equal
    rows = [_case("spread", (5.52, 5.28, "stitched", 94), (5.0, 4.78, "exact", 94), retrain=6.0),
            _case("spread", (5.0, 4.8, "stitched", 90), (5.1, 4.9, "exact", 97))]
    s = bench.summarize(rows, [6.0])["spread"]
    assert abs(s["max_time_vs_exact"] - 5.52 / 5.0) < 1e-9
    assert abs(s["max_extra_outside_training_s"] - 0.02) < 1e-9  # (5.52 - 5.28) - (5.0 - 4.78)
    assert abs(s["median_extra_outside_training_s"] - 0.01) < 1e-9  # the median of 0.02 and 0.0
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"runs": [{"seed": 7, "cases": rows}]}))
    header, rule, line = bench.render([str(path)]).splitlines()
    assert header.count("|") == rule.count("|") == line.count("|")
    assert "| 1.10 | +10 (+20) | 2/2 |" in line
