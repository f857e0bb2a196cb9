"""The scheduler in process: plan choice by predicted cost, and recovery across the crash windows."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests._helpers import run_cli
from tests.service._server import copy_run
from obliviate.service.config import SchedulerSettings
from obliviate.service.ledger import Ledger
from obliviate.service.receipts import verify_receipt
from obliviate.service.scheduler import Scheduler, choose_plan, model_fingerprint, predict_cost
from obliviate.training import open_run
from obliviate.unlearning import forget


def test_plan_follows_predicted_cost(service_run_master):
    run = service_run_master
    early, late = int(run.block_ids(1)[0]), int(run.block_ids(5)[0])
    # exact: coalescing never costs more (one replay from the first block)
    mode, groups, pred = choose_plan(run, [("a", [early]), ("b", [late])], "exact", predict_cost)
    assert mode == "coalesced" and groups == [["a", "b"]] and pred["coalesced_s"] <= pred["sequential_s"]
    # a cost model where each one-block forget is cheap and a long replay is dear: sequential wins
    def cost(_run, ids, _method):
        return 1.0 if len(ids) == 1 else 5.0
    mode, groups, pred = choose_plan(run, [("a", [early]), ("b", [late])], "deepobliviate", cost)
    assert mode == "sequential" and groups == [["a"], ["b"]] and pred == {"coalesced_s": 5.0, "sequential_s": 2.0}


def _submit(ledger, key, ids):
    return ledger.submit(key, key.ljust(64, "0")[:64], {"subject_request_id": key, "regulation": "gdpr",
                                                        "subject_request_type": "erasure"}, [], ids)[0]


def test_recovery_never_applies_a_committed_forget_twice(service_run_master, tmp_path):
    run = open_run(copy_run(service_run_master.path, tmp_path / "run"))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    key = Ed25519PrivateKey.generate()
    a, b, c = int(run.block_ids(2)[0]), int(run.block_ids(3)[0]), int(run.block_ids(4)[0])
    r1, r2, r3 = _submit(ledger, "k1", [a]), _submit(ledger, "k2", [b]), _submit(ledger, "k3", [c])
    # batch 1: its forget was committed in the store, then the process died before the ledger heard of it
    b1 = ledger.create_batch([r1, r2], "coalesced", [[r1, r2]], {"coalesced_s": 1.0, "sequential_s": 2.0},
                             model_fingerprint(run))
    ledger.set_status([r1, r2], "unlearning")
    forget(run, [a, b], client_ref=f"svc-b{b1}-a0")
    # batch 2: planned, then the process died before its forget committed anything
    ledger.create_batch([r3], "coalesced", [[r3]], {"coalesced_s": 1.0, "sequential_s": 1.0}, model_fingerprint(run))
    committed = len(run.requests)
    sched = Scheduler(open_run(run.path), ledger, SchedulerSettings(window_s=0.0), key)
    sched.recover()
    after = open_run(run.path)
    assert len(after.requests) == committed + 1  # batch 1 not re-applied, batch 2 applied once
    assert [r["client_ref"] for r in after.requests] == [f"svc-b{b1}-a0", f"svc-b{b1 + 1}-a0"]
    assert not {a, b, c} & set(after.block_of())
    for rid in (r1, r2, r3):
        row = ledger.get(rid)
        assert row["status"] == "completed"
        assert verify_receipt(bytes(row["receipt"]), key.public_key())["request_id"] == rid
    assert ledger.open_batches() == []
    sched.recover()  # nothing left to do
    assert len(open_run(run.path).requests) == committed + 1


def test_cancel_only_while_pending(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    r1, r2 = _submit(ledger, "k1", [1]), _submit(ledger, "k2", [2])
    assert ledger.cancel(r1) == "cancelled" and ledger.cancel("nope") is None
    assert ledger.create_batch([r1, r2], "coalesced", [[r1, r2]], {}, {}) is not None
    assert ledger.cancel(r2) == "scheduled"
    assert [h["status"] for h in ledger.get(r1)["history"]] == ["pending", "cancelled"]


@pytest.mark.slow
def test_verification_verdict_goes_into_the_receipt(service_run_master, tmp_path):
    run = open_run(copy_run(service_run_master.path, tmp_path / "run"))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    key = Ed25519PrivateKey.generate()
    rid = _submit(ledger, "k1", [int(run.block_ids(4)[0])])
    sched = Scheduler(run, ledger, SchedulerSettings(window_s=0.0, verify=True, verify_oracles=4), key)
    assert sched.step()
    row = ledger.get(rid)
    assert [h["status"] for h in row["history"]] == ["pending", "scheduled", "unlearning", "verifying", "completed"]
    v = verify_receipt(bytes(row["receipt"]), key.public_key())["verification"]
    assert v["enabled"] and v["verdict"] in ("pass", "fail", "inconclusive") and v["forgotten"] and v["faithful"]


@pytest.mark.slow
def test_serve_bad_config_exit_2(service_run_master, tmp_path):
    proc = run_cli("serve", service_run_master.path, "--port", "1")
    assert proc.returncode == 2 and "serve-token" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tokens]]\nname = "x"\nsha256 = "abc"\nscopes = ["root"]\n')
    proc = run_cli("serve", service_run_master.path, "--config", bad)
    assert proc.returncode == 2 and "unknown scope" in proc.stderr
    proc = run_cli("serve-token", "--name", "desk", "--scopes", "submit,read")
    assert proc.returncode == 0 and "[[tokens]]" in proc.stdout and "obl_" in proc.stdout
