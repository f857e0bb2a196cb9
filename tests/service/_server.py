"""A real `obliviate serve` subprocess on 127.0.0.1 for the service tests and the benchmark."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from obliviate.service.auth import new_token
from obliviate.training import RunConfig, train_run

REPO = Path(__file__).resolve().parents[2]
SUBJECT_SECRET = "service-test-subject-secret-0123456789"


def service_config() -> RunConfig:
    """A digits run whose forgets take well under a second: 5 blocks, 1 epoch each, a small MLP."""
    return RunConfig.from_dict({"training": {"blocks": 5, "epochs_per_block": 1, "lr": 0.003},
                                "model": {"name": "mlp", "options": {"hidden": [32]}},
                                "store": {"snapshot_every": 2}})


def train_service_run(path: Path):
    return train_run(service_config(), path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """Config (tokens for each scope), ledger and signing key beside the run; start/kill/restart the process."""

    def __init__(self, run_path: Path, work: Path, *, window_s: float = 0.3, max_batch: int = 32,
                 method: str = "deepobliviate", extra_env: dict[str, str] | None = None) -> None:
        self.run_path, self.work = Path(run_path), Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.tokens = {}
        lines = ['ledger = "ledger.sqlite"', 'signing_key = "receipt-key.pem"',
                 "[scheduler]", f"window_s = {window_s}", f"max_batch = {max_batch}", f'method = "{method}"']
        for name, scopes in {"submitter": ["submit"], "reader": ["read"], "desk": ["submit", "read"],
                             "admin": ["admin"]}.items():
            token, digest = new_token()
            self.tokens[name] = token
            lines += ["[[tokens]]", f'name = "{name}"', f'sha256 = "{digest}"', f"scopes = {json.dumps(scopes)}"]
        self.config = self.work / "service.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.public_key = self.work / "receipt-key.pem.pub"
        self.ledger = self.work / "ledger.sqlite"
        self.log = self.work / "server.log"
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "OBLIVIATE_SUBJECT_KEY": SUBJECT_SECRET,
                    **(extra_env or {})}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, who: str = "desk") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def start(self, timeout: float = 90.0) -> Server:
        self.port = free_port()
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "obliviate", "serve", str(self.run_path), "--port",
                                          str(self.port), "--config", str(self.config)], cwd=REPO, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2.0).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not come up:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_all_done(self, ids, timeout: float = 120.0) -> dict[str, dict]:
        """Poll until every request is completed, failed or cancelled (bounded)."""
        out: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        todo = set(ids)
        with httpx.Client(base_url=self.url, headers=self.headers("admin"), timeout=10.0) as c:
            while todo and time.monotonic() < deadline:
                listing = c.get("/requests", params={"limit": 10000}).json()["requests"]
                for r in listing:
                    if r["request_id"] in todo and r["status"] in ("completed", "failed", "cancelled"):
                        out[r["request_id"]] = r
                        todo.discard(r["request_id"])
                if todo:
                    time.sleep(0.2)
        if todo:
            raise AssertionError(f"{len(todo)} request(s) not done after {timeout} s")
        return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def erasure(key: str, *, ids=(), subjects=(), regulation: str = "gdpr") -> dict:
    body = {"subject_request_id": key, "subject_request_type": "erasure", "regulation": regulation,
            "submitted_time": "2026-12-01T10:00:00Z", "api_version": "1"}
    if ids:
        body["sample_ids"] = [int(i) for i in ids]
    if subjects:
        body["subject_identities"] = [{"identity_type": "controller_customer_id", "identity_value": s,
                                       "identity_format": "raw"} for s in subjects]
    return body


def submit_all(server: Server, bodies: list[dict], *, clients: int = 8, who: str = "submitter",
               retry_for: float = 0.0) -> tuple[dict[str, str], list[float]]:
    """POST every body from ``clients`` concurrent clients (body j goes to client j % clients, each client
    posts its share in order). Returns ``{subject_request_id: request_id}`` of the 202s and the latencies
    (seconds) of the successful POSTs. With ``retry_for`` > 0 a failed connection is retried with the same
    body (the idempotency key makes that safe) until that many seconds have passed."""
    import threading

    accepted: dict[str, str] = {}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(share: list[dict]) -> None:
        with httpx.Client(headers=server.headers(who), timeout=30.0) as c:
            for body in share:
                deadline = time.monotonic() + retry_for
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = c.post(server.url + "/requests", json=body)  # server.url follows restarts
                    except httpx.HTTPError as exc:
                        if time.monotonic() < deadline:
                            time.sleep(0.1)
                            continue
                        with lock:
                            errors.append(f"{body['subject_request_id']}: {type(exc).__name__}")
                        break
                    dt = time.perf_counter() - t0
                    with lock:
                        if r.status_code == 202:
                            accepted[body["subject_request_id"]] = r.json()["request_id"]
                            latencies.append(dt)
                        else:
                            errors.append(f"{body['subject_request_id']}: {r.status_code} {r.text[:200]}")
                    break

    threads = [threading.Thread(target=client, args=(bodies[k::clients],)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError(f"{len(errors)} POST(s) failed: {errors[:5]}")
    return accepted, latencies


def check_exactly_once(run_path: Path, ledger: Path, requested: dict[str, list[int]]) -> dict:
    """Every ledger request completed once; the store deleted each requested sample exactly once, by service
    forgets whose tags appear once each; the store is consistent. Returns counts."""
    import sqlite3

    from obliviate.training.inspect import inspect_run
    from obliviate.store import RunStore

    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT idempotency_key, status, application FROM requests").fetchall()
        apps = db.execute("SELECT tag, done FROM applications").fetchall()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)), "a request was recorded twice"
    assert set(keys) == set(requested), "ledger and accepted requests differ"
    assert all(r[1] == "completed" for r in rows), sorted({r[1] for r in rows})
    manifest = RunStore.open(run_path).manifest
    records = [r for r in manifest.get("requests", []) if r.get("client_ref")]
    tags = [r["client_ref"] for r in records]
    assert len(tags) == len(set(tags)), "a batch step was applied twice"
    assert set(tags) <= {a[0] for a in apps}
    deleted = [i for r in records for i in r["ids_deleted"]]
    assert len(deleted) == len(set(deleted)), "a sample was deleted twice"
    wanted = {i for ids in requested.values() for i in ids}
    assert set(deleted) == wanted, (len(set(deleted)), len(wanted))
    report = inspect_run(run_path)
    assert report["consistent"], report["problems"]
    return {"requests": len(keys), "store_records": len(records), "samples": len(deleted)}
