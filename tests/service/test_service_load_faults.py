"""The deletion service under load and under SIGKILL: every accepted request is applied exactly once."""

from __future__ import annotations

import json
import random
import sqlite3
import time

import pytest

from tests._helpers import run_cli
from tests.service._server import Server, check_exactly_once, copy_run, erasure, submit_all
from obliviate.training import open_run

pytestmark = pytest.mark.slow


def _bodies(run, n, seed, prefix):
    pool = sorted(int(i) for k in range(1, run.num_blocks + 1) for i in run.block_ids(k))
    ids = random.Random(seed).sample(pool, n)
    return [erasure(f"{prefix}-{j:04d}", ids=[i]) for j, i in enumerate(ids)]


def test_load_8_clients_x_50_requests(service_run_master, tmp_path):
    run = open_run(copy_run(service_run_master.path, tmp_path / "run"))
    bodies = _bodies(run, 400, 1, "load")
    server = Server(run.path, tmp_path / "svc", window_s=0.3, max_batch=64).start()
    try:
        accepted, _ = submit_all(server, bodies, clients=8)
        assert len(accepted) == 400
        done = server.wait_all_done(accepted.values(), timeout=300)
        assert all(r["status"] == "completed" for r in done.values())
    finally:
        server.stop()
    counts = check_exactly_once(run.path, server.ledger, {b["subject_request_id"]: b["sample_ids"] for b in bodies})
    assert counts["samples"] == 400
    proc = run_cli("inspect", run.path, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["consistent"]


def _wait_for_batch(ledger, timeout=60.0):
    """Until some request is being applied (a batch is in flight), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as db:
                n = db.execute("SELECT COUNT(*) FROM requests WHERE status IN ('scheduled','unlearning')").fetchone()[0]
            if n:
                return True
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    return False


def test_sigkill_at_5_random_moments_during_batches(service_run_master, tmp_path):
    import threading

    run = open_run(copy_run(service_run_master.path, tmp_path / "run"))
    bodies = _bodies(run, 48, 2, "fault")
    server = Server(run.path, tmp_path / "svc", window_s=0.1, max_batch=8).start()
    rng = random.Random(5)
    result: dict = {}

    def submit() -> None:  # two slow clients keep batches coming while the server dies and restarts
        result["accepted"], _ = submit_all(server, bodies, clients=2, retry_for=120.0)

    submitter = threading.Thread(target=submit)
    submitter.start()
    kills = 0
    try:
        while kills < 5:
            assert _wait_for_batch(server.ledger), "no batch started"
            time.sleep(rng.uniform(0.0, 0.4))
            server.kill()
            kills += 1
            server.start()
        submitter.join(timeout=180)
        assert not submitter.is_alive()
        accepted = result["accepted"]
        assert len(accepted) == len(bodies)
        server.wait_all_done(accepted.values(), timeout=180)
    finally:
        server.stop()
        submitter.join(timeout=5)
    assert server.starts == 6
    check_exactly_once(run.path, server.ledger, {b["subject_request_id"]: b["sample_ids"] for b in bodies})
    proc = run_cli("inspect", run.path, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["consistent"]
