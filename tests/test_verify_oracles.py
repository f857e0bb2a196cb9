"""The oracle bank: the run-seed oracle is the exact retrain bit for bit; the cache is reused, checked and
dropped when stale; only models trained without the deleted samples are ever written."""

import json
import shutil

import pytest
import torch

from obliviate.errors import RequestError, UsageError
from obliviate.training import open_run
from obliviate.unlearning import forget
from obliviate.verify import OracleBank, cached_exact_state, prune_stale
from obliviate.verify.oracles import oracle_seeds, verify_folder


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def stitched_and_exact(tiny_run_master, tmp_path):
    """Two copies of the tiny run with the same sample of block 2 forgotten: DeepObliviate and exact."""
    victim = [int(tiny_run_master.block_ids(2)[5])]
    runs = {}
    for method in ("deepobliviate", "exact"):
        shutil.copytree(tiny_run_master.path, tmp_path / method)
        runs[method] = open_run(tmp_path / method)
        forget(runs[method], victim, method=method)
    return runs


def test_run_seed_oracle_is_the_exact_mode_bit_for_bit(stitched_and_exact):
    do, ex = stitched_and_exact["deepobliviate"], stitched_and_exact["exact"]
    bank = OracleBank(do, 1)
    oracles = bank.get(2)
    assert oracles.exact_seed == do.config.training.seed and oracles.seeds == oracle_seeds(0, 2)
    assert _equal(oracles.exact, ex.final_model().state_dict())  # trained on the DeepObliviate copy
    # the other seeds change only the data order after block d - 1: different models
    assert not _equal(oracles.states[0], oracles.exact) and not _equal(oracles.states[0], oracles.states[1])
    assert oracles.trained == 3 and oracles.reused == 0
    assert (oracles.d, oracles.shared_blocks, oracles.retrained_blocks) == (2, 1, 4)
    if do.requests[0]["outcome"] == "stitched":  # the replicas of the stitch need the state after t
        assert oracles.after_t is not None and len(oracles.after_t) == 2


def test_cache_is_reused_and_extended(tiny_run):
    forget(tiny_run, [int(tiny_run.block_ids(4)[0])], method="exact")
    first = OracleBank(tiny_run, 1).get(2)
    folder = verify_folder(tiny_run, 1)
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors")}
    assert files == ["oracle-0.safetensors", "oracle-1000.safetensors", "oracle-1001.safetensors"]

    again = OracleBank(open_run(tiny_run.path), 1)
    second = again.get(2)
    assert (second.trained, second.reused, again.trained_total) == (0, 3, 0)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors")} == mtimes
    assert all(_equal(a, b) for a, b in zip(first.states, second.states)) and _equal(first.exact, second.exact)

    more = OracleBank(tiny_run, 1).get(3)  # one more oracle: only that one is trained
    assert (more.trained, more.reused) == (1, 3) and _equal(more.states[1], first.states[1])
    assert _equal(cached_exact_state(tiny_run), first.exact)
    index = json.loads((folder / "index.json").read_text())
    for entry in index["files"].values():  # every cached file is an oracle trained without U, hash-checked
        assert entry["seed"] in (0, 1000, 1001, 1002)


def test_corrupted_oracle_is_retrained(tiny_run):
    forget(tiny_run, [int(tiny_run.block_ids(5)[0])], method="exact")
    first = OracleBank(tiny_run, 1).get(2)
    path = verify_folder(tiny_run, 1) / "oracle-1000.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    again = OracleBank(tiny_run, 1).get(2)
    assert (again.trained, again.reused) == (1, 2) and _equal(again.states[0], first.states[0])


@pytest.mark.slow
def test_stale_cache_is_dropped_when_a_later_request_changes_the_chain(tiny_run):
    forget(tiny_run, [int(tiny_run.block_ids(4)[0])], method="exact")
    before = OracleBank(tiny_run, 1).get(2)
    assert verify_folder(tiny_run, 1).is_dir()
    forget(tiny_run, [int(tiny_run.block_ids(2)[0])], method="exact")  # changes blocks 2..5 < d = 4 of request 1
    assert cached_exact_state(tiny_run, 1) is None
    assert prune_stale(tiny_run) == ["request-1"] and not verify_folder(tiny_run, 1).exists()
    rebuilt = OracleBank(tiny_run, 1).get(2)
    assert rebuilt.trained == 3 and rebuilt.key != before.key
    assert not _equal(rebuilt.exact, before.exact)
    assert _equal(rebuilt.exact, tiny_run.final_model().state_dict())  # both exact: the current model


@pytest.mark.slow
def test_a_later_deletion_after_d_also_makes_the_cache_stale(tiny_run):
    forget(tiny_run, [int(tiny_run.block_ids(3)[0])], method="exact")
    before = OracleBank(tiny_run, 1).get(2)
    forget(tiny_run, [int(tiny_run.block_ids(5)[1])], method="exact")  # membership of a block after d changed
    rebuilt = OracleBank(tiny_run, 1).get(2)
    assert rebuilt.trained == 3 and rebuilt.key != before.key


def test_bad_requests_are_clear_errors(tiny_run):
    with pytest.raises(RequestError, match="no forget requests"):
        OracleBank(tiny_run)
    forget(tiny_run, [int(tiny_run.block_ids(5)[0])], method="exact")
    with pytest.raises(RequestError, match=r"no request 7; its requests are \[1\]"):
        OracleBank(tiny_run, 7)
    with pytest.raises(UsageError, match="int >= 1"):
        OracleBank(tiny_run, 1).get(0)
    assert cached_exact_state(tiny_run, 7) is None
