"""The ledger alone: concurrent submissions (group commit), idempotency, durability settings."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from obliviate.service.ledger import IdempotencyConflict, Ledger


def test_concurrent_submissions_each_recorded_once(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    ids: dict[str, set[str]] = {}
    conflicts: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for j in range(25):
            key = f"req-{j % 10}"  # every client submits the same 10 keys, some with another body
            body = "a" * 64 if (k + j) % 7 else "b" * 64
            try:
                rid, _ = ledger.submit(key, body, {"k": k}, [], [j])
            except IdempotencyConflict:
                with lock:
                    conflicts.append(key)
                continue
            with lock:
                ids.setdefault(key, set()).add(rid)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(ids) <= {f"req-{j}" for j in range(10)}
    assert all(len(v) == 1 for v in ids.values())  # one request per key, whoever won
    with sqlite3.connect(tmp_path / "l.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 10
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conflicts  # the other body was refused at least once
    assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_conflict_names_the_key_and_keeps_the_first(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    rid, new = ledger.submit("dsr-1", "a" * 64, {}, [], [1])
    with pytest.raises(IdempotencyConflict, match="dsr-1"):
        ledger.submit("dsr-1", "b" * 64, {}, [], [2])
    assert ledger.get(rid)["sample_ids"] == [1] and new
    reopened = Ledger(tmp_path / "l.sqlite")
    assert reopened.get(rid)["status"] == "pending"
