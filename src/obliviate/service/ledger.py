"""The durable request ledger: SQLite in WAL mode with ``synchronous=FULL`` (every commit fsynced).

Tables: ``requests`` (one row per accepted request, its current status, its receipt), ``history`` (every
status change with its time), ``batches`` (what the scheduler decided: the plan and the model before) and
``applications`` (each forget call of a batch, tagged ``client_ref`` in the run store's request record, so
that after a crash the ledger learns from the store whether that call was committed).

A request is ``completed`` only after the forget that deletes its samples is committed in the run store;
a restart resumes every batch not ``done`` (see :mod:`obliviate.service.scheduler`).

>>> import tempfile, pathlib
>>> led = Ledger(pathlib.Path(tempfile.mkdtemp()) / "l.sqlite")
>>> rid, new = led.submit("key-1", "f" * 64, {"regulation": "gdpr"}, [], [3, 4])
>>> new, led.get(rid)["status"], led.submit("key-1", "f" * 64, {}, [], [3, 4]) == (rid, False)
(True, 'pending', True)
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError

STATUSES = ("pending", "scheduled", "unlearning", "verifying", "completed", "failed", "cancelled")
OPEN = ("scheduled", "unlearning", "verifying")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests(
  id TEXT PRIMARY KEY, idempotency_key TEXT UNIQUE NOT NULL, body_sha256 TEXT NOT NULL,
  info TEXT NOT NULL, subject_hashes TEXT NOT NULL, sample_ids TEXT NOT NULL,
  status TEXT NOT NULL, received REAL NOT NULL, updated REAL NOT NULL,
  batch_id INTEGER, application TEXT, failure_reason TEXT, receipt BLOB);
CREATE INDEX IF NOT EXISTS requests_status ON requests(status, received);
CREATE TABLE IF NOT EXISTS history(request_id TEXT NOT NULL, status TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_request ON history(request_id);
CREATE TABLE IF NOT EXISTS batches(
  id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, mode TEXT NOT NULL, plan TEXT NOT NULL,
  predicted TEXT NOT NULL, model_before TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS applications(
  tag TEXT PRIMARY KEY, batch_id INTEGER NOT NULL, position INTEGER NOT NULL, request_ids TEXT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0, result TEXT);
"""


class IdempotencyConflict(UsageError):
    """The idempotency key was used before with another body."""


class Ledger:
    """One SQLite connection shared by the server's threads behind a lock (writes are serial anyway)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Submission] = []
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise UsageError(f"the ledger {self.path} cannot use WAL mode (got {mode}); put it on a local disk")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> _Tx:
        return _Tx(self)

    # -- submission ------------------------------------------------------------------------------
    def submit(self, idempotency_key: str, body_sha256: str, info: dict[str, Any], subject_hashes: list[str],
               sample_ids: list[int]) -> tuple[str, bool]:
        """Record a request durably; returns ``(request id, newly created)``. The same key with the same
        body returns the first request; with another body it raises :class:`IdempotencyConflict`.

        Group commit: submissions that arrive while another thread commits wait for the lock, and the
        first of them to get it writes all that are queued in one transaction (one fsync for all); each
        returns only after the commit holding its row."""
        item = _Submission(idempotency_key, body_sha256, info, subject_hashes, sample_ids)
        with self._queue_lock:
            self._queue.append(item)
        with self._lock:
            if not item.done:  # no other thread committed it meanwhile: commit everything queued
                with self._queue_lock:
                    todo, self._queue = self._queue, []
                outcomes: list[tuple[str, bool] | BaseException] = []
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    for it in todo:
                        try:
                            outcomes.append(self._insert(self._db, it))
                        except IdempotencyConflict as exc:
                            outcomes.append(exc)
                    self._db.execute("COMMIT")
                except BaseException as exc:  # noqa: BLE001 - rolled back, then handed to every waiting caller
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    outcomes = [exc] * len(todo)
                for it, out in zip(todo, outcomes):  # results exist only once their commit is durable
                    if isinstance(out, BaseException):
                        it.error = out
                    else:
                        it.result = out
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    @staticmethod
    def _insert(db: sqlite3.Connection, it: _Submission) -> tuple[str, bool]:
        row = db.execute("SELECT id, body_sha256 FROM requests WHERE idempotency_key=?",
                         (it.idempotency_key,)).fetchone()
        if row is not None:
            if row["body_sha256"] != it.body_sha256:
                raise IdempotencyConflict(
                    f"subject_request_id {it.idempotency_key!r} was already used for a different request "
                    f"(request {row['id']}); use a new subject_request_id for a new request")
            return str(row["id"]), False
        rid = uuid.uuid4().hex
        now = time.time()
        db.execute("INSERT INTO requests(id, idempotency_key, body_sha256, info, subject_hashes, sample_ids, "
                   "status, received, updated) VALUES (?,?,?,?,?,?,?,?,?)",
                   (rid, it.idempotency_key, it.body_sha256, json.dumps(it.info), json.dumps(it.subject_hashes),
                    json.dumps(it.sample_ids), "pending", now, now))
        db.execute("INSERT INTO history VALUES (?,?,?)", (rid, "pending", now))
        return rid, True

    # -- reading ---------------------------------------------------------------------------------
    def get(self, rid: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM requests WHERE id=?", (rid,)).fetchone()
            if row is None:
                return None
            hist = self._db.execute("SELECT status, at FROM history WHERE request_id=? ORDER BY rowid",
                                    (rid,)).fetchall()
        out = _row(row)
        out["history"] = [{"status": h["status"], "at": h["at"]} for h in hist]
        return out

    # `builtins.list` in the annotations below: this class defines a method named `list`
    def list(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            q = "SELECT * FROM requests" + (" WHERE status=?" if status else "") + " ORDER BY received LIMIT ?"
            rows = self._db.execute(q, ((status, limit) if status else (limit,))).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM requests GROUP BY status").fetchall()
        return {r["status"]: int(r["n"]) for r in rows}

    def pending(self, limit: int) -> builtins.list[dict[str, Any]]:
        return self.list("pending", limit)

    # -- transitions -----------------------------------------------------------------------------
    def cancel(self, rid: str) -> str | None:
        """Cancel a pending request; returns the status it has afterwards (None: no such request)."""
        with self._tx() as db:
            row = db.execute("SELECT status FROM requests WHERE id=?", (rid,)).fetchone()
            if row is None:
                return None
            if row["status"] != "pending":
                return str(row["status"])
            _set(db, [rid], "cancelled")
            return "cancelled"

    def create_batch(self, request_ids: builtins.list[str], mode: str, groups: builtins.list[builtins.list[str]],
                     predicted: dict[str, float], model_before: dict[str, str]) -> int | None:
        """Move still-pending requests into a new batch with its plan; None when none was still pending."""
        with self._tx() as db:
            marks = ",".join("?" * len(request_ids))
            live = {r["id"] for r in db.execute(
                f"SELECT id FROM requests WHERE status='pending' AND id IN ({marks})", request_ids)}
            groups = [[r for r in g if r in live] for g in groups]
            groups = [g for g in groups if g]
            if not groups:
                return None
            cur = db.execute("INSERT INTO batches(created, mode, plan, predicted, model_before, status) "
                             "VALUES (?,?,?,?,?,?)", (time.time(), mode, json.dumps(groups), json.dumps(predicted),
                                                      json.dumps(model_before), "open"))
            batch_id = int(cur.lastrowid or 0)
            for pos, g in enumerate(groups):
                tag = f"svc-b{batch_id}-a{pos}"
                db.execute("INSERT INTO applications(tag, batch_id, position, request_ids) VALUES (?,?,?,?)",
                           (tag, batch_id, pos, json.dumps(g)))
                db.execute(f"UPDATE requests SET batch_id=?, application=? WHERE id IN ({','.join('?' * len(g))})",
                           (batch_id, tag, *g))
            _set(db, sorted(live), "scheduled")
            return batch_id

    def set_status(self, request_ids: Iterable[str], status: str) -> None:
        with self._tx() as db:
            _set(db, list(request_ids), status)

    def fail(self, request_ids: Iterable[str], reason: str) -> None:
        ids = list(request_ids)
        with self._tx() as db:
            _set(db, ids, "failed")
            db.execute(f"UPDATE requests SET failure_reason=? WHERE id IN ({','.join('?' * len(ids))})", (reason, *ids))

    def application_done(self, tag: str, result: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE applications SET done=1, result=? WHERE tag=?", (json.dumps(result), tag))

    def complete(self, receipts: dict[str, bytes]) -> None:
        """Mark requests completed with their signed receipts, in one transaction."""
        with self._tx() as db:
            for rid, receipt in receipts.items():
                db.execute("UPDATE requests SET receipt=? WHERE id=?", (receipt, rid))
            _set(db, list(receipts), "completed")

    def close_batch(self, batch_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE batches SET status='done' WHERE id=?", (batch_id,))

    # -- batches ---------------------------------------------------------------------------------
    def open_batches(self) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM batches WHERE status='open' ORDER BY id").fetchall()
        return [{**dict(r), "plan": json.loads(r["plan"]), "predicted": json.loads(r["predicted"]),
                 "model_before": json.loads(r["model_before"])} for r in rows]

    def applications(self, batch_id: int) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM applications WHERE batch_id=? ORDER BY position",
                                    (batch_id,)).fetchall()
        return [{**dict(r), "request_ids": json.loads(r["request_ids"]),
                 "result": json.loads(r["result"]) if r["result"] else None} for r in rows]

    def all_applications(self) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM applications ORDER BY batch_id, position").fetchall()
        return [{**dict(r), "request_ids": json.loads(r["request_ids"]),
                 "result": json.loads(r["result"]) if r["result"] else None} for r in rows]


class _Submission:
    def __init__(self, idempotency_key: str, body_sha256: str, info: dict[str, Any], subject_hashes: list[str],
                 sample_ids: list[int]) -> None:
        self.idempotency_key, self.body_sha256, self.info = idempotency_key, body_sha256, info
        self.subject_hashes, self.sample_ids = subject_hashes, sample_ids
        self.result: tuple[str, bool] | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (fsynced: synchronous=FULL) under the ledger's lock."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def __enter__(self) -> sqlite3.Connection:
        self.ledger._lock.acquire()
        self.ledger._db.execute("BEGIN IMMEDIATE")
        return self.ledger._db

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self.ledger._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.ledger._lock.release()


def _set(db: sqlite3.Connection, ids: list[str], status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if not ids:
        return
    now = time.time()
    db.execute(f"UPDATE requests SET status=?, updated=? WHERE id IN ({','.join('?' * len(ids))})", (status, now, *ids))
    db.executemany("INSERT INTO history VALUES (?,?,?)", [(rid, status, now) for rid in ids])


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["info"] = json.loads(out["info"])
    out["subject_hashes"] = json.loads(out["subject_hashes"])
    out["sample_ids"] = json.loads(out["sample_ids"])
    return out
