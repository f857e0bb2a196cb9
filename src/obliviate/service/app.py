"""The deletion service's HTTP API (FastAPI), shaped like OpenDSR (github.com/opengdpr/OpenDSR).

Routes and scopes: ``POST /requests`` (submit: 202 once the request is durable in the ledger),
``GET /requests/{id}`` (read), ``DELETE /requests/{id}`` (submit: cancel while pending), ``GET /requests``
(admin: list), ``GET /receipts/{id}`` (read: the signed receipt), ``GET /discovery`` (read),
``GET /healthz`` (no token: liveness only). Errors: 401 no or unknown token, 403 missing scope,
422 malformed body, 404 unknown subject, sample or request, 409 idempotency key reused with another
body. Every error body is ``{"detail": "one line naming the problem and the fix"}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .auth import TokenEntry
from .core import DeletionService, NotFound, Unavailable
from .ledger import IdempotencyConflict
from .scheduler import iso_time
from .schema import MAX_IDENTITIES, MAX_SAMPLE_IDS, ErasureRequest

API_VERSION = "obliviate-dsr-1"


def _iso(t: float | None) -> str | None:
    return None if t is None else iso_time(t)


def create_app(service: DeletionService, *, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                service.stop()

    app = FastAPI(title="Obliviate deletion service", version=API_VERSION, lifespan=lifespan,
                  description="Erasure requests for a recorded model (OpenDSR-shaped), applied by machine unlearning, "
                              "answered with signed receipts.")

    def require(scope: str) -> Callable[..., TokenEntry]:
        def check(authorization: str | None = Header(None)) -> TokenEntry:
            entry = service.config.auth.authenticate(authorization)
            if entry is None:
                raise HTTPException(401, "missing or unknown bearer token; send 'Authorization: Bearer TOKEN'",
                                    headers={"WWW-Authenticate": "Bearer"})
            if not entry.allows(scope):
                raise HTTPException(403, f"this token lacks the '{scope}' scope")
            return entry
        return check

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{loc}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": "malformed request: " + "; ".join(problems)}, status_code=422)

    @app.post("/requests", status_code=202)
    def submit(body: ErasureRequest, response: Response, _: TokenEntry = Depends(require("submit"))) -> dict[str, Any]:
        try:
            rid, created = service.submit(body)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except IdempotencyConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except Unavailable as exc:
            raise HTTPException(503, str(exc)) from None
        row = service.ledger.get(rid)
        assert row is not None
        if not created:
            response.headers["Idempotent-Replay"] = "true"
        return {"request_id": rid, "subject_request_id": body.subject_request_id, "status": row["status"],
                "received_time": _iso(row["received"]), "samples": len(row["sample_ids"])}

    def _view(row: dict[str, Any]) -> dict[str, Any]:
        info = row["info"]
        return {"request_id": row["id"], "subject_request_id": info["subject_request_id"], "status": row["status"],
                "subject_request_type": info["subject_request_type"], "regulation": info["regulation"],
                "submitted_time": info["submitted_time"], "received_time": _iso(row["received"]),
                "updated_time": _iso(row["updated"]), "subject_key_hashes": row["subject_hashes"],
                "samples": len(row["sample_ids"]), "failure_reason": row["failure_reason"],
                "history": [{"status": h["status"], "time": _iso(h["at"])} for h in row.get("history", [])],
                "receipt": f"/receipts/{row['id']}" if row["status"] == "completed" else None}

    def _get(rid: str) -> dict[str, Any]:
        row = service.ledger.get(rid)
        if row is None:
            raise HTTPException(404, f"no request {rid!r}; use the request_id that POST /requests returned")
        return row

    @app.get("/requests/{rid}")
    def status(rid: str, _: TokenEntry = Depends(require("read"))) -> dict[str, Any]:
        return _view(_get(rid))

    @app.delete("/requests/{rid}")
    def cancel(rid: str, _: TokenEntry = Depends(require("submit"))) -> dict[str, Any]:
        _get(rid)
        now = service.ledger.cancel(rid)
        if now != "cancelled":
            raise HTTPException(409, f"request {rid} is {now}; only a pending request can be cancelled")
        return _view(_get(rid))

    @app.get("/requests")
    def list_requests(status: str | None = None, limit: int = 1000,
                      _: TokenEntry = Depends(require("admin"))) -> dict[str, Any]:
        rows = service.ledger.list(status, min(max(limit, 1), 10_000))
        return {"requests": [_view(r) for r in rows], "counts": service.ledger.counts()}

    @app.get("/receipts/{rid}")
    def receipt(rid: str, _: TokenEntry = Depends(require("read"))) -> Response:
        row = _get(rid)
        if row["status"] != "completed" or not row["receipt"]:
            raise HTTPException(404, f"request {rid} is {row['status']}: a receipt exists once it is completed")
        return Response(bytes(row["receipt"]), media_type="application/json")

    @app.get("/discovery")
    def discovery(_: TokenEntry = Depends(require("read"))) -> dict[str, Any]:
        return {"api_version": API_VERSION, "supported_subject_request_types": ["erasure"],
                "supported_regulations": ["gdpr", "ccpa"], "supported_identity_formats": ["raw"],
                "sample_ids": True, "status_callbacks": False,
                "limits": {"subject_identities": MAX_IDENTITIES, "sample_ids": MAX_SAMPLE_IDS},
                "scheduler": {"window_s": service.config.scheduler.window_s,
                              "max_batch": service.config.scheduler.max_batch,
                              "method": service.config.scheduler.method,
                              "verify": service.config.scheduler.verify},
                "receipt_signing": {"algorithm": "Ed25519", "key_id": service.key_id,
                                    "public_key_pem": service.public_key_pem}}

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        sched = service.scheduler
        ok = sched.is_alive() and sched.error is None
        return JSONResponse({"status": "ok" if ok else "degraded", "scheduler_alive": sched.is_alive(),
                             "scheduler_error": sched.error, "batches_done": sched.batches_done,
                             "counts": service.ledger.counts()}, status_code=200 if ok else 503)

    return app
