"""Determinism that is recorded: the manifest says what bit-exact replay depends on, replays check it.

Bit-for-bit claims here hold on one machine with one thread count: the run is trained with one torch
thread, resumed and replayed with the same one (bit-exact), and with two (a warning naming both; the
bits are not asserted either way, as another thread count may or may not change them).
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager

import pytest
import torch

from obliviate.cli import main
from obliviate.errors import ReproducibilityError
from obliviate.training import RunConfig, open_run, replay_block, train_run
from obliviate.training.determinism import current_conditions
from obliviate.unlearning import forget
from tests._helpers import store_files

CFG = RunConfig.from_dict({"training": {"blocks": 3, "epochs_per_block": 1}, "store": {"snapshot_every": 2}})


@contextmanager
def threads(n: int):
    was = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(was)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    with threads(1):
        return train_run(CFG, tmp_path_factory.mktemp("det") / "run").path


def _interrupted(src, dst, keep: int = 1):
    """A copy of the run as a crash after ``keep`` committed blocks leaves it (later payloads are orphans)."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["status"], m["blocks"] = "training", m["blocks"][:keep]
    m.pop("metrics", None)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _chain(path):
    return [b["update"]["sha256"] for b in json.loads((path / "manifest.json").read_text())["blocks"]]


def test_manifest_records_what_replay_depends_on(recorded):
    d = json.loads((recorded / "manifest.json").read_text())["determinism"]
    assert d["num_threads"] == 1 and d["torch"] == torch.__version__ and d["device"] == "cpu"
    assert d["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(d) >= {"deterministic_algorithms", "aten_cpu_capability_env", "machine"}


def test_resume_with_the_recorded_thread_count_is_bit_exact_and_silent(recorded, tmp_path, caplog):
    run = _interrupted(recorded, tmp_path / "r")
    with threads(1), caplog.at_level(logging.WARNING):
        train_run(CFG, run, resume=True)
    assert _chain(run) == _chain(recorded)
    assert not [r for r in caplog.records if "conditions" in r.getMessage()]


def test_resume_under_another_thread_count_warns_naming_both(recorded, tmp_path, caplog):
    run = _interrupted(recorded, tmp_path / "r")
    with threads(2), caplog.at_level(logging.WARNING):
        train_run(CFG, run, resume=True)
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("torch threads: recorded 1, now 2" in m and "OMP_NUM_THREADS=1" in m for m in msgs), msgs


def test_strict_resume_refuses_and_changes_nothing(recorded, tmp_path, capsys):
    run = _interrupted(recorded, tmp_path / "r")
    before = store_files(run)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "digits"\n[training]\nblocks = 3\nepochs_per_block = 1\n'
                   '[store]\nsnapshot_every = 2\n')
    with threads(2):
        with pytest.raises(ReproducibilityError, match="recorded 1, now 2"):
            train_run(CFG, run, resume=True, strict=True)
        assert main(["train", str(cfg), "--out", str(run), "--resume", "--strict"]) == 2
    assert "recorded 1, now 2" in capsys.readouterr().err
    assert store_files(run) == before


def test_replay_is_bit_exact_with_recorded_threads_and_warns_otherwise(recorded, caplog):
    run = open_run(recorded)
    stored = run.store.get(run.manifest["blocks"][1]["update"])
    with threads(1):
        update = replay_block(run, 2)
    assert all(torch.equal(update[k], stored[k]) for k in stored)
    with threads(2), caplog.at_level(logging.WARNING):
        replay_block(run, 2)
    assert any("recorded 1, now 2" in r.getMessage() for r in caplog.records)
    with threads(2), pytest.raises(ReproducibilityError):
        replay_block(run, 2, strict=True)


def test_exact_forget_warns_or_refuses_under_other_conditions(recorded, tmp_path, caplog, capsys):
    path = tmp_path / "r"
    shutil.copytree(recorded, path)
    run = open_run(path)
    victim = int(run.block_ids(3)[0])
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{victim}\n")
    before = store_files(path)
    with threads(2):
        assert main(["forget", str(path), "--ids", str(ids), "--method", "exact", "--strict"]) == 2
        assert "torch threads: recorded 1, now 2" in capsys.readouterr().err
        assert store_files(path) == before
        with caplog.at_level(logging.WARNING):
            forget(run, [victim], method="exact")
    assert any("torch threads: recorded 1, now 2" in r.getMessage() for r in caplog.records)


def test_other_cpu_kernels_are_named(recorded, tmp_path, caplog):
    path = tmp_path / "r"
    shutil.copytree(recorded, path)
    m = json.loads((path / "manifest.json").read_text())
    other = "AVX512" if current_conditions()["cpu_capability"] != "AVX512" else "AVX2"
    m["determinism"]["cpu_capability"] = other
    (path / "manifest.json").write_text(json.dumps(m))
    with threads(1), caplog.at_level(logging.WARNING):
        replay_block(open_run(path), 1)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert f"recorded {other}, now {current_conditions()['cpu_capability']}" in text
    assert f"ATEN_CPU_CAPABILITY={other.lower()}" in text
