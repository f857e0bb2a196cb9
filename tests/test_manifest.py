"""The typed manifest (run, block and request records): reading a stored manifest and writing it again
gives the same bytes, unknown keys survive, and the typed accessors agree with the JSON."""

from __future__ import annotations

import json

from obliviate.training.manifest import BlockRecord, RequestRecord, RunManifest, typed
from obliviate.unlearning import forget


def _compact(d):
    return json.dumps(d, separators=(",", ":")).encode()  # as RunStore.commit writes it


def test_a_stored_manifest_round_trips_byte_for_byte(tiny_run):
    raw = (tiny_run.path / "manifest.json").read_bytes()
    assert _compact(RunManifest.from_dict(json.loads(raw)).to_dict()) == raw
    forget(tiny_run, [int(tiny_run.block_ids(2)[0])], method="exact")
    raw = (tiny_run.path / "manifest.json").read_bytes()
    record = RunManifest.from_dict(json.loads(raw))
    assert _compact(record.to_dict()) == raw  # with a request record and a retrained block
    assert [b.index for b in record.blocks] == list(range(1, tiny_run.num_blocks + 1))
    assert record.blocks[1].origin == "retrained" and record.blocks[0].origin == "trained"
    (req,) = record.requests
    assert isinstance(req, RequestRecord) and req.method == "exact" and req.first_block == req.d == 2
    assert tiny_run.record.deleted_ids() == set(req.ids_deleted) == {int(i) for i in req.ids_deleted}
    assert tiny_run.record is typed(tiny_run.manifest)  # parsed once per stored manifest


def test_unknown_keys_and_their_order_survive():
    d = {"zeta": 1, "status": "complete", "format": "obliviate-run", "blocks": [
        {"origin": "trained", "index": 1, "later_key": [1, 2], "update": {"file": "f", "sha256": "s", "bytes": 3}}],
        "requests": [], "from_the_future": {"x": None}}
    record = RunManifest.from_dict(d)
    assert record.extra == {"zeta": 1, "from_the_future": {"x": None}}
    assert record.blocks[0].extra == {"later_key": [1, 2]}
    assert _compact(record.to_dict()) == _compact(d)
    record.status = "training"
    record.metrics = {"test_accuracy": 0.5}  # a field the source lacked is added after the keys read
    out = record.to_dict()
    assert list(out) == [*d, "metrics"] and out["status"] == "training"


def test_a_new_record_writes_every_field_in_declaration_order():
    rec = BlockRecord(index=3, size=10, loss=0.25, wall_time_s=0.5, origin="retrained")
    out = rec.to_dict()
    assert list(out)[:5] == ["index", "size", "loss", "wall_time_s", "origin"]
    assert BlockRecord.from_dict(out) == rec
