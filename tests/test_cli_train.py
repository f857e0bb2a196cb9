"""`obliviate train` and `inspect` as a user runs them: real subprocesses."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests._helpers import REPO, cli_env, run_cli, store_files
from obliviate.training import open_run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("train", REPO / "configs" / "digits.toml", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_example_config_trains_and_inspect_reports_it(digits_run):
    out, _ = digits_run  # wall time is measured in benchmarks, not asserted here (shared machines)
    proc = run_cli("inspect", out, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["consistent"] and report["status"] == "complete"
    assert report["test_accuracy"] >= 0.95
    assert report["blocks_done"] == report["blocks_total"] == 20
    assert all(len(b["update_sha256"]) == 64 and len(b["optimizer_sha256"]) == 64 for b in report["blocks"])
    assert report["storage_bytes"] > 0


def _write(tmp_path, text):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    return cfg


def test_wrong_config_key_exits_2_and_creates_nothing(tmp_path):
    cfg = _write(tmp_path, "[training]\nblockz = 3\n")
    proc = run_cli("train", cfg, "--out", tmp_path / "run")
    assert proc.returncode == 2
    assert "unknown key `training.blockz`" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_missing_data_file_exits_2_naming_the_file(tmp_path):
    cfg = _write(tmp_path, f'[data]\nname = "mnist"\noptions = {{ root = "{tmp_path / "nowhere"}" }}\n')
    proc = run_cli("train", cfg, "--out", tmp_path / "run")
    assert proc.returncode == 2
    assert "train-images-idx3-ubyte" in proc.stderr and "nowhere" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_corrupted_payload_exits_2_on_use_1_on_inspect_and_changes_nothing(digits_run, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(digits_run[0], out)
    ref = json.loads((out / "manifest.json").read_text())["blocks"][3]["update"]
    path = out / ref["file"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    before = store_files(out)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{open_run(out).block_ids(4)[0]}\n")
    proc = run_cli("forget", out, "--ids", ids)
    assert proc.returncode == 2, proc.stderr
    assert path.name in proc.stderr and "content hash" in proc.stderr
    proc = run_cli("inspect", out)
    assert proc.returncode == 1 and "PROBLEMS" in proc.stdout and path.name in proc.stdout
    assert store_files(out) == before


def test_other_format_version_exits_2_and_changes_nothing(digits_run, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(digits_run[0], out)
    m = json.loads((out / "manifest.json").read_text())
    m["format_version"] = 2
    (out / "manifest.json").write_text(json.dumps(m))
    before = store_files(out)
    for args in (["inspect", out], ["train", REPO / "configs" / "digits.toml", "--out", out, "--resume"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "format version 2" in proc.stderr
    assert store_files(out) == before


def test_resume_with_another_config_is_refused(digits_run, tmp_path):
    cfg = _write(tmp_path, (REPO / "configs" / "digits.toml").read_text().replace("seed = 0", "seed = 5"))
    proc = run_cli("train", cfg, "--out", digits_run[0], "--resume")
    assert proc.returncode == 2 and "different one" in proc.stderr


def _small_cfg(tmp_path):
    return _write(tmp_path, "[data]\nname = \"digits\"\n[training]\nblocks = 8\nepochs_per_block = 2\n"
                            "[store]\nsnapshot_every = 3\ncommit_interval_s = 0.0\n")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the small config trained without interruption."""
    folder = tmp_path_factory.mktemp("ref")
    cfg = _small_cfg(folder)
    assert run_cli("train", cfg, "--out", folder / "ref").returncode == 0
    return folder / "ref"


@pytest.mark.parametrize("point", ["train:payloads-4", "train:block-4", None])
def test_sigkill_mid_training_leaves_a_consistent_store_and_resume_matches(tmp_path, point, uninterrupted):
    cfg = _small_cfg(tmp_path)
    ref = uninterrupted
    out = tmp_path / "run"
    env = cli_env()
    if point:
        env["OBLIVIATE_CRASH_AT"] = point
        proc = run_cli("train", cfg, "--out", out, env=env)
        assert proc.returncode == -signal.SIGKILL
    else:  # kill from outside at an arbitrary moment once some blocks are stored
        proc = subprocess.Popen([sys.executable, "-m", "obliviate", "train", str(cfg), "--out", str(out)],
                                cwd=REPO, env=cli_env(), stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            m = out / "manifest.json"
            if m.exists() and len(json.loads(m.read_text()).get("blocks", [])) >= 2:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    report = json.loads(run_cli("inspect", out, "--json").stdout)
    assert report["consistent"], report["problems"]
    if point:
        assert report["status"] == "training"
        assert report["blocks_done"] == (3 if point.startswith("train:payloads") else 4)
    done = report["blocks_done"]
    assert [b["index"] for b in report["blocks"]] == list(range(1, done + 1))
    proc = run_cli("train", cfg, "--out", out, "--resume")
    assert proc.returncode == 0, proc.stderr
    final = json.loads(run_cli("inspect", out, "--json").stdout)
    assert final["consistent"] and final["status"] == "complete" and final["unreferenced_files"] == []
    a, b = open_run(out).final_model().state_dict(), open_run(ref).final_model().state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert [x["update_sha256"] for x in final["blocks"]] == \
        [x["update_sha256"] for x in json.loads(run_cli("inspect", ref, "--json").stdout)["blocks"]]
