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
    with store.lock(exclusive=True), pytest.raises(StoreLockedError, match="in use"), \
            other.lock(exclusive=True, timeout=0.2):
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


def test_payload_chunks_join_small_tensors_and_keep_large_ones_as_views(tmp_path):
    from obliviate.store import payloads

    small = {f"b{i}": torch.full((3,), float(i)) for i in range(20)}
    assert len(payloads.encode_tensors(small)) == 1  # a small payload is written as one buffer
    big = {**small, "w": torch.randn(payloads._JOIN_WHOLE // 4 + 1)}
    chunks = payloads.encode_tensors(big)
    views = [c for c in chunks if isinstance(c, memoryview)]
    assert len(views) == 1 and views[0].nbytes == big["w"].numel() * 4  # the large tensor is not copied
    assert len(chunks) <= 3  # the header and the small tensors joined around it
    back, _ = payloads.tensors_from_bytes(b"".join(chunks))
    assert all(torch.equal(back[k], v) for k, v in big.items())
    store = RunStore.create(tmp_path / "s", {})
    ref = store.put("x", big)  # written from the chunks: the same file as from the joined bytes
    assert (tmp_path / "s" / ref["file"]).read_bytes() == b"".join(chunks)


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


def test_forget_refuses_a_store_damaged_in_a_block_it_does_not_read(tiny_run, tmp_path, capsys):
    """Block 1's stored update is damaged; the request only retrains block 5 (from the snapshot after 4)."""
    import json

    from obliviate.cli import main
    from tests._helpers import store_files

    m = json.loads((tiny_run.path / "manifest.json").read_text())
    rel = m["blocks"][0]["update"]["file"]
    blob = bytearray((tiny_run.path / rel).read_bytes())
    blob[-3] ^= 0x10
    (tiny_run.path / rel).write_bytes(bytes(blob))
    before = store_files(tiny_run.path)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{int(tiny_run.block_ids(5)[0])}\n")
    assert main(["forget", str(tiny_run.path), "--ids", str(ids)]) == 2
    err = capsys.readouterr().err
    assert rel in err and "damaged" in err and "1 payload(s)" in err and "Traceback" not in err
    assert store_files(tiny_run.path) == before


def test_integrity_hashes_are_cached_per_file_version(tiny_run, monkeypatch):
    from obliviate.store import hash_cache, integrity

    hash_cache.clear(tiny_run.path)
    assert integrity.damaged_payloads(tiny_run.store) == []
    n = len(hash_cache._HASHES)
    assert n == len(tiny_run.store.referenced_files())
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: reads.append(p) or real_open(p, *a, **k))
    assert integrity.damaged_payloads(tiny_run.store) == [] and reads == []  # no file re-read
    hash_cache._HASHES.clear()  # a new process: the cache file outside the store answers
    assert integrity.damaged_payloads(tiny_run.store) == [] and reads == []
    monkeypatch.undo()


def test_integrity_cache_notices_a_rewritten_payload_of_the_same_size(tiny_run):
    """A payload overwritten in place with other bytes of the same size keeps its inode, size and (set back
    with os.utime) its mtime; its ctime moves, so the cached hash is not used and the damage is found."""
    import os
    import time

    from obliviate.store import integrity

    assert integrity.damaged_payloads(tiny_run.store) == []
    ref = tiny_run.store.manifest["blocks"][2]["update"]
    path = tiny_run.path / ref["file"]
    st = os.stat(path)
    time.sleep(0.05)  # past the file system's timestamp tick
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    damaged = integrity.damaged_payloads(tiny_run.store)
    assert len(damaged) == 1 and "does not match its content hash" in damaged[0]


def test_training_leaves_the_integrity_cache_warm(tmp_path, monkeypatch):
    """Payloads are hashed as they are written, so the first check after training reads no payload."""
    from obliviate.store import hash_cache, integrity

    from obliviate.training import train_run
    from tests._helpers import tiny_config

    run = train_run(tiny_config(), tmp_path / "r")
    hash_cache._HASHES.clear()  # as in a new process
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: reads.append(p) or real_open(p, *a, **k))
    assert integrity.damaged_payloads(run.store) == []
    monkeypatch.undo()
    assert not [p for p in reads if "payloads" in str(p)]


def test_size_guard_needs_force(tiny_run):
    import pytest

    from obliviate.errors import RequestError
    from obliviate.unlearning import forget

    everything = sorted(tiny_run.block_of())
    with pytest.raises(RequestError, match="--force"):
        forget(tiny_run, everything[: len(everything) * 6 // 10])
    with pytest.raises(RequestError, match="all .* training samples"):
        forget(tiny_run, everything)
    block = [int(i) for i in tiny_run.block_ids(2)]
    with pytest.raises(RequestError, match="every sample of block"):
        forget(tiny_run, block)
    result = forget(tiny_run, everything[: len(everything) * 6 // 10], force=True, method="exact")
    assert len(result.ids_deleted) == len(everything) * 6 // 10
