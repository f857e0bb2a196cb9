import json

import pytest
import torch

from obliviate.errors import IntegrityError, StoreError, StoreFormatError, StoreLockedError
from obliviate.store import RunStore


def test_payload_roundtrip_and_content_addressing(tmp_path):
    store = RunStore.create(tmp_path / "s", {})
    a = store.put("x", {"w": torch.arange(4.0)})
    b = store.put("x", {"w": torch.arange(4.0)})
    assert a == b  # same content, same file
    assert torch.equal(store.get(a)["w"], torch.arange(4.0))
    assert (tmp_path / "s" / a["file"]).read_bytes()[:8]  # safetensors header length, not a pickle


def test_corrupted_payload_is_refused_naming_the_file(tmp_path):
    store = RunStore.create(tmp_path / "s", {})
    ref = store.put("x", {"w": torch.ones(8)})
    path = tmp_path / "s" / ref["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=ref["file"].split("/")[-1]):
        store.get(ref)
    path.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        store.get(ref)


def test_unknown_format_version_is_refused(tmp_path):
    RunStore.create(tmp_path / "s", {})
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreFormatError, match="version 99"):
        RunStore.open(tmp_path / "s")


def test_not_a_store_and_existing_store(tmp_path):
    with pytest.raises(StoreError, match="not an obliviate run"):
        RunStore.open(tmp_path)
    RunStore.create(tmp_path / "s", {})
    with pytest.raises(StoreError, match="already holds a run"):
        RunStore.create(tmp_path / "s", {})


def test_garbage_collection_keeps_exactly_the_referenced_payloads(tmp_path):
    store = RunStore.create(tmp_path / "s", {})
    keep = store.put("keep", {"w": torch.ones(2)})
    drop = store.put("drop", {"w": torch.zeros(2)})
    store.commit({**store.manifest, "nested": [{"ref": keep}]})
    removed = store.collect_garbage()
    assert removed == [drop["file"].split("/")[-1]]
    assert (tmp_path / "s" / keep["file"]).exists()
    assert not (tmp_path / "s" / drop["file"]).exists()


def test_exclusive_lock_excludes_a_second_writer(tmp_path):
    store = RunStore.create(tmp_path / "s", {})
    other = RunStore.open(tmp_path / "s")
    with store.lock(exclusive=True):
        with pytest.raises(StoreLockedError, match="in use"):
            with other.lock(exclusive=True, timeout=0.2):
                pass
    with other.lock(exclusive=True, timeout=0.2):
        pass
