"""The scheduler: one worker per run applies pending requests in batches, by the cheaper plan.

A batch starts when its oldest pending request has waited ``window_s`` or ``max_batch`` requests are
pending. Its plan is chosen by predicted cost: *coalesced* (one forget of the union: one replay from the
first affected block) or *sequential* (one forget per request: cheaper when a stitch keeps each replay
short and the requests are scattered). Every forget carries a ``client_ref`` tag recorded in the run
store's request record, and the ledger notes each one done only after it returns, i.e. after the store
commit. After a crash, :meth:`Scheduler.recover` resumes every open batch: a forget whose tag is found
in the store is not applied again; one not found was never committed and is applied now. So every
accepted request is applied exactly once and completed only when its chain is committed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .._faults import crash_point
from .._json import jsonable
from ..errors import ObliviateError
from ..unlearning.planner import predict_cost  # the engine's planner: what choose_plan weighs
from .ledger import Ledger
from .receipts import DOES_NOT_PROVE, FORMAT, PROVES, VERSION, sign_receipt

log = logging.getLogger(__name__)
RETRY_S = 5.0  # pause after an unexpected error of the worker before it tries again

def choose_plan(run: Any, requests: list[tuple[str, list[int]]], method: str,
                cost: Callable[[Any, list[int], str], float] = predict_cost,
                ) -> tuple[str, list[list[str]], dict[str, float]]:
    """``(mode, groups of request ids, predicted seconds of both plans)``; coalesced on a tie."""
    union = sorted({i for _, ids in requests for i in ids})
    coalesced = cost(run, union, method)
    sequential = sum(cost(run, ids, method) for _, ids in requests)
    predicted = {"coalesced_s": float(coalesced), "sequential_s": float(sequential)}
    if len(requests) > 1 and sequential < coalesced:
        return "sequential", [[rid] for rid, _ in requests], predicted
    return "coalesced", [[rid for rid, _ in requests]], predicted


def model_fingerprint(run: Any) -> dict[str, str]:
    """Hashes of the run's current model: of its final state payload and of the chain of block updates."""
    from ..store.files import sha256_chunks
    from ..store.payloads import encode_tensors
    from ..training.chain import state_after

    blocks = run.manifest["blocks"]
    state = state_after(run.store, len(blocks))
    chain = hashlib.sha256("".join(b["update"]["sha256"] for b in blocks).encode()).hexdigest()
    return {"state_sha256": sha256_chunks(encode_tensors(state)), "chain_sha256": chain}


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _finite(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become None (a receipt is strict JSON)."""
    return jsonable(obj)


class Scheduler(threading.Thread):
    """The run's single worker thread. ``stop()`` lets the batch in flight finish."""

    def __init__(self, run: Any, ledger: Ledger, settings: Any, signing_key: Any) -> None:
        super().__init__(name="obliviate-scheduler", daemon=True)
        self.run_ = run
        self.ledger = ledger
        self.settings = settings
        self.key = signing_key
        self._stop_event = threading.Event()
        self.batches_done = 0
        self.error: str | None = None

    def stop(self, timeout: float = 60.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:  # the thread's body
        recovered = False
        while not self._stop_event.is_set():
            try:
                if not recovered:
                    self.recover()
                    recovered = True
                if not self.step():
                    self._stop_event.wait(self.settings.poll_s)
                self.error = None
            except Exception as exc:  # reported by /healthz; the ledger stays consistent; retried after a pause
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("scheduler step failed; retrying in %.0f s", RETRY_S)
                self._stop_event.wait(RETRY_S)

    # -- batches ---------------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish every batch a previous process left open."""
        for batch in self.ledger.open_batches():
            log.info("resuming batch %d after a restart", batch["id"])
            self.apply(batch)

    def step(self) -> bool:
        """Start and apply one batch if one is due; True when a batch ran."""
        s = self.settings
        pending = self.ledger.pending(s.max_batch)
        if not pending or (len(pending) < s.max_batch and time.time() - pending[0]["received"] < s.window_s):
            return False
        run = self.run_
        run.store.reload()
        mode, groups, predicted = choose_plan(run, [(r["id"], r["sample_ids"]) for r in pending], s.method)
        batch_id = self.ledger.create_batch([r["id"] for r in pending], mode, groups, predicted,
                                            model_fingerprint(run))
        if batch_id is None:
            return False
        batch = next(b for b in self.ledger.open_batches() if b["id"] == batch_id)
        self.apply(batch)
        return True

    def apply(self, batch: dict[str, Any]) -> None:
        from ..unlearning import forget

        run, s = self.run_, self.settings
        apps = self.ledger.applications(batch["id"])
        rows = {rid: r for a in apps for rid in a["request_ids"] if (r := self.ledger.get(rid)) is not None}
        live = [rid for rid, r in rows.items() if r and r["status"] in ("scheduled", "unlearning", "verifying")]
        self.ledger.set_status([rid for rid in live if rows[rid]["status"] == "scheduled"], "unlearning")
        crash_point("service:unlearning")
        failed: set[str] = set()
        for app in apps:
            rids = [rid for rid in app["request_ids"] if rid in live]
            if app["done"] or not rids:
                continue
            record = self._committed(app["tag"])
            if record is None:
                ids = sorted({i for rid in rids for i in rows[rid]["sample_ids"]})
                hashes = sorted({h for rid in rids for h in rows[rid]["subject_hashes"]})
                try:
                    result = forget(run, ids, method=s.method, wait=120.0, subject_hashes=hashes,
                                    client_ref=app["tag"])
                except ObliviateError as exc:
                    self.ledger.fail(rids, f"the forget failed: {exc}")
                    failed.update(rids)
                    continue
                except Exception as exc:  # an internal error: fail the requests rather than retry forever
                    log.exception("forget of %s failed", app["tag"])
                    self.ledger.fail(rids, f"internal error while unlearning ({type(exc).__name__}); see the log")
                    failed.update(rids)
                    continue
                crash_point("service:applied")
                record = self._committed(app["tag"]) if result.request_id is not None else None
                summary = _summary(record, len(ids), method=s.method)
            else:
                summary = _summary(record, None, method=s.method)
            self.ledger.application_done(app["tag"], summary)
        apps = self.ledger.applications(batch["id"])
        done = [rid for rid in live if rid not in failed]
        verification = self._verify(apps, done)
        after = model_fingerprint(run)
        now = time.time()
        receipts = {}
        for app in apps:
            for rid in app["request_ids"]:
                if rid in done and app["result"] is not None:
                    receipt = self._receipt(rows[rid], app, batch, after, verification, now)
                    receipts[rid] = sign_receipt(receipt, self.key)
        crash_point("service:receipts-signed")
        self.ledger.complete(receipts)
        self.ledger.close_batch(batch["id"])
        self.batches_done += 1

    def _committed(self, tag: str) -> dict[str, Any] | None:
        """The run store's request record made by the forget tagged ``tag``, if it was committed."""
        self.run_.store.reload()
        found = [r for r in self.run_.requests if r.get("client_ref") == tag]
        return found[-1] if found else None

    def _verify(self, apps: list[dict[str, Any]], done: list[str]) -> dict[str, Any]:
        if not self.settings.verify:
            return {"enabled": False}
        store_ids = [a["result"]["store_request_id"] for a in apps if a["result"] and a["result"]["store_request_id"]]
        if not store_ids:
            return {"enabled": True, "verdict": "not applicable", "reasons": ["no sample was deleted by this batch"]}
        self.ledger.set_status(done, "verifying")
        from ..verify import verify_request

        report = verify_request(self.run_, store_ids[-1], oracles=self.settings.verify_oracles, wait=120.0)
        summary: dict[str, Any] = _finite({
            "enabled": True, "store_request_id": store_ids[-1], "verdict": report.verdict,
            "reasons": list(report.reasons),
            "forgotten": report.forgotten.get("verdict"), "faithful": report.faithful.get("verdict"),
            "faithful_p_value": report.faithful.get("p_value")})
        return summary

    def _receipt(self, row: dict[str, Any], app: dict[str, Any], batch: dict[str, Any], after: dict[str, str],
                 verification: dict[str, Any], now: float) -> dict[str, Any]:
        from .. import __version__

        info, res = row["info"], app["result"]
        ids = sorted(row["sample_ids"])
        receipt: dict[str, Any] = _finite({
            "format": FORMAT, "version": VERSION,
            "request_id": row["id"], "subject_request_id": info.get("subject_request_id"),
            "subject_request_type": info.get("subject_request_type", "erasure"),
            "regulation": info.get("regulation"),
            "subject_key_hashes": row["subject_hashes"],
            "subject_key_hash_algorithm": "HMAC-SHA256 (the key is held by the processor, outside the run store)",
            "samples": len(ids),
            "sample_ids_sha256": hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest(),
            "run": {"name": self.run_.path.name, "data_fingerprint": self.run_.manifest["data"]["fingerprint"]},
            "model_before": batch["model_before"], "model_after": after,
            "method": res["method"], "outcome": res["outcome"], "blocks_retrained": res["blocks_retrained"],
            "blocks_total": self.run_.num_blocks, "first_block": res["d"], "last_retrained_block": res["t"],
            "samples_deleted_by_batch_step": res["n_deleted"], "store_request_id": res["store_request_id"],
            "batch": {"id": batch["id"], "mode": batch["mode"], "predicted": batch["predicted"],
                      "step": app["position"], "requests_in_step": len(app["request_ids"])},
            "verification": verification,
            "timestamps": {"submitted": info.get("submitted_time"), "received": iso_time(row["received"]),
                           "completed": iso_time(now)},
            "library_version": __version__,
            "proves": PROVES, "does_not_prove": DOES_NOT_PROVE,
        })
        return receipt


def _summary(record: dict[str, Any] | None, n_ids: int | None, *, method: str) -> dict[str, Any]:
    if record is None:  # a no-op: every sample was deleted already
        return {"store_request_id": None, "method": method, "outcome": "no-op", "d": None, "t": None,
                "blocks_retrained": 0, "n_deleted": 0}
    return {"store_request_id": record["request_id"], "method": record["method"], "outcome": record["outcome"],
            "d": record["d"], "t": record["t"], "blocks_retrained": record["blocks_retrained"],
            "n_deleted": record["n_deleted"]}
