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


def test_payload_layout_is_safetensors_readable_and_deterministic(tmp_path):
    from safetensors import safe_open

    from obliviate.store.payloads import tensors_from_bytes, tensors_to_bytes

    tensors = {"w": torch.randn(4, 6)[:, ::2],  # not contiguous
               "step": torch.tensor(7, dtype=torch.int64), "half": torch.ones(3, dtype=torch.bfloat16),
               "mask": torch.tensor([True, False, True]), "empty": torch.zeros(0, 5), "d": torch.arange(5.0).double()}
    meta = {"zeta": "1", "alpha": "2"}
    blob = tensors_to_bytes(tensors, meta)
    assert blob == tensors_to_bytes(dict(reversed(tensors.items())), dict(reversed(meta.items())))
    back, back_meta = tensors_from_bytes(blob)
    assert back_meta == meta
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    path = tmp_path / "p.safetensors"
    path.write_bytes(blob)
    with safe_open(str(path), "pt") as fh:  # the reference reader, memory-mapped, accepts the layout
        assert sorted(fh.keys()) == sorted(tensors) and fh.metadata() == meta
        assert torch.equal(fh.get_tensor("w"), tensors["w"])


def test_payload_of_an_unsupported_dtype_is_refused_naming_the_tensor(tmp_path):
    store = RunStore.create(tmp_path / "run", {})
    with pytest.raises(TypeError, match="'z'.*complex64"):
        store.put("bad", {"z": torch.zeros(2, dtype=torch.complex64)})


def test_a_failed_first_commit_leaves_the_folder_as_found(tmp_path):
    def fill(store):
        store.put("init", {"w": torch.ones(2)})
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        RunStore.create(tmp_path / "run", {}, fill=fill)
    assert list((tmp_path / "run").iterdir()) == []
    store = RunStore.create(tmp_path / "run", {}, fill=lambda s: {"init": s.put("init", {"w": torch.ones(2)})})
    assert RunStore.open(store.root).manifest["init"] == store.manifest["init"]
