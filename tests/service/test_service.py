"""The deletion service as a client sees it: a real `obliviate serve` subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from tests._helpers import run_cli, store_files
from tests.service._server import SUBJECT_SECRET, Server, copy_run, erasure
from obliviate.errors import CheckFailed
from obliviate.service.receipts import verify_receipt
from obliviate.subjects import attach_subjects, subject_hash
from obliviate.training import open_run

pytestmark = pytest.mark.slow  # each test starts a real server process (several seconds)


@pytest.fixture
def served(service_run_master, tmp_path):
    run = open_run(copy_run(service_run_master.path, tmp_path / "run"))
    subjects = {"customer-4711": [int(run.block_ids(2)[0]), int(run.block_ids(4)[3])],
                "customer-4712": [int(run.block_ids(1)[5])]}
    attach_subjects(run, subjects, key=SUBJECT_SECRET)
    server = Server(run.path, tmp_path / "svc").start()
    yield run, server, subjects
    server.stop()


def test_auth_request_lifecycle_receipt_and_nothing_secret_logged(served, tmp_path):
    run, server, subjects = served
    body = erasure("dsr-0001", subjects=["customer-4711"], ids=[int(run.block_ids(3)[0])])
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        assert c.post("/requests", json=body).status_code == 401
        assert c.post("/requests", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/requests", json=body, headers={"Authorization": "Basic abc"}).status_code == 401
        assert c.post("/requests", json=body, headers=server.headers("reader")).status_code == 403
        assert c.get("/discovery", headers=server.headers("submitter")).status_code == 403
        assert c.get("/requests", headers=server.headers("desk")).status_code == 403
        r = c.post("/requests", json=body, headers=server.headers("submitter"))
        assert r.status_code == 202, r.text
        rid = r.json()["request_id"]
        assert r.json()["samples"] == 3
        with sqlite3.connect(server.ledger) as db:  # durable before the 202: the row is there
            assert db.execute("SELECT COUNT(*) FROM requests WHERE id=?", (rid,)).fetchone()[0] == 1
        again = c.post("/requests", json=body, headers=server.headers("submitter"))
        assert again.status_code == 202 and again.json()["request_id"] == rid
        other = c.post("/requests", json={**body, "regulation": "ccpa"}, headers=server.headers("submitter"))
        assert other.status_code == 409 and "dsr-0001" in other.json()["detail"]
        assert c.get("/requests/nope", headers=server.headers("reader")).status_code == 404
        unknown = c.post("/requests", json=erasure("dsr-0002", subjects=["customer-9999"]),
                         headers=server.headers("desk"))
        assert unknown.status_code == 404 and "subject_identities[0]" in unknown.json()["detail"]
        done = server.wait_all_done([rid], timeout=60)[rid]
        assert done["status"] == "completed", done
        status = c.get(f"/requests/{rid}", headers=server.headers("reader")).json()
        assert [h["status"] for h in status["history"]] == ["pending", "scheduled", "unlearning", "completed"]
        assert status["subject_key_hashes"] == [subject_hash("customer-4711", SUBJECT_SECRET)]
        receipt = c.get(f"/receipts/{rid}", headers=server.headers("reader")).content
        assert c.delete(f"/requests/{rid}", headers=server.headers("submitter")).status_code == 409
        disc = c.get("/discovery", headers=server.headers("reader")).json()
        assert disc["supported_subject_request_types"] == ["erasure"]
    # the store deleted exactly those samples, once, tagged with the service's reference
    run.store.reload()
    wanted = sorted(subjects["customer-4711"] + [int(body["sample_ids"][0])])
    records = [r for r in run.requests if r.get("client_ref")]
    assert len(records) == 1 and records[0]["ids_deleted"] == wanted
    assert records[0]["subject_hashes"] == [subject_hash("customer-4711", SUBJECT_SECRET)]
    # the receipt verifies with the public key, in Python and on the CLI, and names the hashes only
    content = verify_receipt(receipt, server.public_key)
    assert content["samples"] == 3 and content["model_before"] != content["model_after"]
    assert content["subject_key_hashes"] == status["subject_key_hashes"] and "does_not_prove" in content
    f = tmp_path / "receipt.json"
    f.write_bytes(receipt)
    proc = run_cli("receipt", "verify", f, "--public-key", server.public_key)
    assert proc.returncode == 0 and "receipt OK" in proc.stdout, proc.stderr
    f.write_bytes(receipt.replace(b'"samples":3', b'"samples":2'))
    proc = run_cli("receipt", "verify", f, "--public-key", server.public_key)
    assert proc.returncode == 1 and "signature does not verify" in proc.stderr
    # nothing secret in the logs, the ledger or the store
    server.stop()
    log = server.log.read_bytes()
    assert b"POST /requests" in log  # the access log is on ...
    secrets = [t.encode() for t in server.tokens.values()] + [b"customer-4711", b"customer-9999",
                                                                SUBJECT_SECRET.encode()]
    for s in secrets:  # ... and holds no token, subject key or secret
        assert s not in log
        assert s not in server.ledger.read_bytes()
        assert all(s not in data for data in store_files(run.path).values())


def test_every_changed_byte_breaks_the_receipt(served):
    _, server, _ = served
    with httpx.Client(base_url=server.url, headers=server.headers("desk"), timeout=30.0) as c:
        rid = c.post("/requests", json=erasure("dsr-b", subjects=["customer-4712"])).json()["request_id"]
        server.wait_all_done([rid], timeout=60)
        blob = c.get(f"/receipts/{rid}").content
    assert verify_receipt(blob, server.public_key)["request_id"] == rid
    for pos in range(len(blob)):
        for flip in (0x01, 0x20):
            changed = bytearray(blob)
            changed[pos] ^= flip
            with pytest.raises(CheckFailed):
                verify_receipt(bytes(changed), server.public_key)
    with pytest.raises(CheckFailed):
        verify_receipt(blob[:-1], server.public_key)
    with pytest.raises(CheckFailed):
        verify_receipt(blob + b" ", server.public_key)


MALFORMED = [
    b"not json", b"[]", b"{}", b'{"subject_request_id": "x"}',
    json.dumps({**erasure("m1", ids=[1]), "subject_request_type": "access"}).encode(),
    json.dumps({**erasure("m2", ids=[1]), "regulation": "mars"}).encode(),
    json.dumps({**erasure("m3", ids=[1]), "submitted_time": "yesterday"}).encode(),
    json.dumps({**erasure("m4", ids=[1]), "submitted_time": "2026-12-01T10:00:00"}).encode(),
    json.dumps(erasure("m5")).encode(),
    json.dumps({**erasure("m6", ids=[1]), "sample_ids": ["1"]}).encode(),
    json.dumps({**erasure("m7", ids=[1]), "sample_ids": [-3]}).encode(),
    json.dumps({**erasure("m8", ids=[1]), "sample_ids": [1.5]}).encode(),
    json.dumps({**erasure("m9", ids=[1]), "unexpected": True}).encode(),
    json.dumps({**erasure("bad id with spaces", ids=[1])}).encode(),
    json.dumps({**erasure("m11", subjects=["a"]), "subject_identities": [{"identity_value": "a"}]}).encode(),
    json.dumps({**erasure("m12", subjects=["a"]), "subject_identities": [
        {"identity_type": "email", "identity_value": "a", "identity_format": "sha256"}]}).encode(),
    json.dumps({**erasure("m13", ids=[1]), "status_callback_urls": ["http://example.invalid/cb"]}).encode(),
    json.dumps(erasure("m14", ids=[10 ** 9])).encode(),
    json.dumps(erasure("m15", subjects=["customer-0000"])).encode(),
    json.dumps({**erasure("m16", ids=[1]), "subject_identities": "customer-4711"}).encode(),
]


def test_malformed_bodies_get_a_clear_4xx_and_change_nothing(served):
    run, server, _ = served
    before = store_files(run.path)
    with httpx.Client(base_url=server.url, headers=server.headers("desk"), timeout=30.0) as c:
        assert len(MALFORMED) == 20
        for raw in MALFORMED:
            r = c.post("/requests", content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (raw, r.status_code, r.text)
            detail = r.json()["detail"]
            assert isinstance(detail, str) and 10 < len(detail) < 600 and "\n" not in detail, detail
        assert c.get("/requests", headers=server.headers("admin")).json()["requests"] == []
    assert store_files(run.path) == before
