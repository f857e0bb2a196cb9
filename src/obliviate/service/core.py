"""The deletion service's state: the run, the ledger, the signing key, the subject index; submission checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import RequestError, UsageError
from ..store.files import file_lock
from .config import ServiceConfig
from .ledger import Ledger
from .receipts import key_id, load_or_create_signing_key, public_key_pem
from .scheduler import Scheduler
from .schema import ErasureRequest


class NotFound(RequestError):
    """An unknown subject, sample or request (HTTP 404)."""


class Unavailable(UsageError):
    """The service cannot serve this now (HTTP 503)."""


class DeletionService:
    """Everything ``obliviate serve`` holds. ``start()`` takes the run's serve lock and starts the worker."""

    def __init__(self, config: ServiceConfig) -> None:
        from ..training import open_run

        self.config = config
        self.run = open_run(config.run)
        self.signing_key = load_or_create_signing_key(config.signing_key)
        self.key_id = key_id(self.signing_key.public_key())
        self.ledger = Ledger(config.ledger)
        self.known_ids = set(self.run.block_of()) | self.run.deleted_ids()  # fixed once trained
        self._secret: bytes | None = None
        self._secret_error: str | None = None
        self._index: tuple[Any, dict[str, list[int]]] = (None, {})
        self._manifest_stamp: tuple[int, int, int] | None = None
        self._lock_cm: Any = None
        self.scheduler = Scheduler(self.run, self.ledger, config.scheduler, self.signing_key)
        try:
            from ..subjects import subject_secret

            self._secret = subject_secret(key_file=config.subject_key_file)
        except UsageError as exc:
            self._secret_error = str(exc)

    def start(self) -> None:
        self._lock_cm = file_lock(Path(self.run.path) / ".serve.lock", exclusive=True, timeout=0.0)
        try:
            self._lock_cm.__enter__()
        except UsageError:
            raise UsageError(f"another `obliviate serve` already serves {self.run.path}: one worker per run") from None
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        if self._lock_cm is not None:
            self._lock_cm.__exit__(None, None, None)
        self.ledger.close()

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.signing_key).decode()

    # -- subjects --------------------------------------------------------------------------------
    def _subject_index(self) -> dict[str, list[int]]:
        """The run's subject index, re-read when the manifest names another one."""
        from ..store import RunStore
        from ..store.run_store import MANIFEST
        from ..subjects import read_index

        st = (Path(self.run.path) / MANIFEST).stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._manifest_stamp:  # parse the manifest only when it was replaced
            entry = RunStore.open(self.run.path).manifest.get("subjects")
            ref = entry["index"]["sha256"] if entry else None
            if ref != self._index[0]:
                self._index = (ref, read_index(self.run.store, entry))
            self._manifest_stamp = stamp
        return self._index[1]

    def resolve(self, body: ErasureRequest) -> tuple[list[str], list[int]]:
        """``(subject key hashes, sample ids)`` of a request; unknown subjects or ids raise :class:`NotFound`."""
        from ..subjects import subject_hash

        hashes: list[str] = []
        ids = set(body.sample_ids)
        if body.subject_identities:
            if self._secret is None:
                raise Unavailable(f"this service cannot look subjects up: {self._secret_error}")
            index = self._subject_index()
            if not index:
                raise NotFound(f"the run has no subject index; attach one with `obliviate subjects {self.run.path} "
                               f"--map FILE`, or name sample_ids")
            hashes = [subject_hash(i.identity_value, self._secret) for i in body.subject_identities]
            missing = [n for n, h in enumerate(hashes) if h not in index]
            if missing:
                raise NotFound(f"subject_identities[{', '.join(map(str, missing[:20]))}] are not data subjects of "
                               f"this run; nothing was recorded")
            for h in hashes:
                ids.update(index[h])
        unknown = sorted(ids - self.known_ids)
        if unknown:
            shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
            raise NotFound(f"{len(unknown)} sample id(s) are not training samples of this run: {shown}; "
                           f"nothing was recorded")
        return sorted(set(hashes)), sorted(ids)

    def submit(self, body: ErasureRequest) -> tuple[str, bool]:
        """Validate and record a request durably; ``(request id, newly created)``."""
        hashes, ids = self.resolve(body)
        info = {"subject_request_id": body.subject_request_id, "subject_request_type": body.subject_request_type,
                "regulation": body.regulation, "submitted_time": body.submitted_time.isoformat(),
                "api_version": body.api_version,
                "identity_types": sorted({i.identity_type for i in body.subject_identities})}
        # the body's fingerprint holds no clear subject key: identities enter as their keyed hashes
        fingerprint = hashlib.sha256(json.dumps({**info, "subject_hashes": hashes,
                                                 "identities": len(body.subject_identities),
                                                 "sample_ids": sorted(set(body.sample_ids))},
                                                sort_keys=True).encode()).hexdigest()
        return self.ledger.submit(body.subject_request_id, fingerprint, info, hashes, ids)
