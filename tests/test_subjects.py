"""Deletion by data subject: the keyed-hash index, `forget --subject`, `inspect --subject`, no clear key stored."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests._helpers import cli_env, run_cli, store_files
from obliviate.subjects import attach_subjects, forget_subject, lookup_subjects, subject_hash
from obliviate.errors import DataError, RequestError
from obliviate.subjects import SubjectKeyError, UnknownSubjectError

SECRET = "0123456789abcdef-test-secret"


def _write_map(path, layout):
    path.write_text("subject,sample_id\n" + "".join(f"{s},{i}\n" for s, ids in layout.items() for i in ids))
    return path


def _layout(run, n_subjects, per_subject, seed):
    import random

    rng = random.Random(seed)
    pool = [int(i) for k in range(1, run.num_blocks + 1) for i in run.block_ids(k)]
    chosen = rng.sample(pool, n_subjects * per_subject)
    return {f"customer-{4700 + s}": chosen[s * per_subject:(s + 1) * per_subject] for s in range(n_subjects)}


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_subjects=st.integers(2, 6), per_subject=st.integers(1, 4), seed=st.integers(0, 10_000),
       victim=st.integers(0, 5))
def test_forget_subject_removes_exactly_its_samples(tiny_run_master, tmp_path_factory, n_subjects, per_subject,
                                                    seed, victim):
    import shutil

    from obliviate.training import open_run

    dst = tmp_path_factory.mktemp("subj") / "run"
    shutil.copytree(tiny_run_master.path, dst)
    run = open_run(dst)
    layout = _layout(run, n_subjects, per_subject, seed)
    attach_subjects(run, layout, key=SECRET)
    name = sorted(layout)[victim % n_subjects]
    before = set(run.block_of())
    result = forget_subject(run, [name], key=SECRET, method="exact")
    after = set(run.block_of())
    assert before - after == set(layout[name])
    assert run.requests[-1]["subject_hashes"] == [subject_hash(name, SECRET)]
    for other, ids in layout.items():
        if other != name:
            assert set(ids) <= after
    assert sorted(result.ids_deleted) == sorted(layout[name])


@pytest.mark.slow
def test_cli_subjects_forget_inspect_and_no_clear_key_in_store(tiny_run, tmp_path):
    layout = _layout(tiny_run, 4, 3, 1)
    env = cli_env(OBLIVIATE_SUBJECT_KEY=SECRET)
    proc = run_cli("subjects", tiny_run.path, "--map", _write_map(tmp_path / "map.csv", layout), env=env)
    assert proc.returncode == 0, proc.stderr
    name = sorted(layout)[1]
    proc = run_cli("inspect", tiny_run.path, "--subject", name, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)["subjects"][0]
    block_of = tiny_run.block_of()
    assert listed["sample_ids"] == sorted(layout[name])
    assert listed["blocks"] == [block_of[i] for i in sorted(layout[name])]
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{sorted(layout)[2]}\n")
    proc = run_cli("forget", tiny_run.path, "--subject", name, "--subjects-file", keys, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ids_deleted"] == sorted(layout[name] + layout[sorted(layout)[2]])
    proc = run_cli("inspect", tiny_run.path, "--subject", name, "--json", env=env)
    assert json.loads(proc.stdout)["subjects"][0]["deleted"] == sorted(layout[name])
    assert json.loads(run_cli("inspect", tiny_run.path, "--json").stdout)["consistent"]
    blobs = store_files(tiny_run.path)
    for key in layout:
        for rel, data in blobs.items():
            assert key.encode() not in data, f"clear subject key {key} found in {rel}"
            assert key.encode("utf-16-le") not in data
    assert all(SECRET.encode() not in data for data in blobs.values())


@pytest.mark.slow
def test_unknown_subject_exit_2_nothing_changed(tiny_run, tmp_path):
    layout = _layout(tiny_run, 2, 2, 3)
    attach_subjects(tiny_run, layout, key=SECRET)
    before = store_files(tiny_run.path)
    env = cli_env(OBLIVIATE_SUBJECT_KEY=SECRET)
    proc = run_cli("forget", tiny_run.path, "--subject", sorted(layout)[0], "--subject", "customer-nobody", env=env)
    assert proc.returncode == 2 and "not in the run's subject index" in proc.stderr and "Traceback" not in proc.stderr
    assert "customer-nobody" not in proc.stderr  # keys are not echoed into logs
    wrong = cli_env(OBLIVIATE_SUBJECT_KEY="another-secret-of-enough-length")
    proc = run_cli("forget", tiny_run.path, "--subject", sorted(layout)[0], env=wrong)
    assert proc.returncode == 2 and "differs from the one the index was made with" in proc.stderr
    env_nokey = {k: v for k, v in cli_env().items() if k != "OBLIVIATE_SUBJECT_KEY"}
    proc = run_cli("inspect", tiny_run.path, "--subject", "x", env=env_nokey)
    assert proc.returncode == 2 and "OBLIVIATE_SUBJECT_KEY" in proc.stderr
    proc = run_cli("forget", tiny_run.path, env=env)
    assert proc.returncode == 2 and "--subject" in proc.stderr
    assert store_files(tiny_run.path) == before


def test_bad_maps_and_keys(tiny_run, tmp_path):
    with pytest.raises(RequestError, match="not training samples"):
        attach_subjects(tiny_run, {"a": [10**9]}, key=SECRET)
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,sample_id\nx,1\ny,zz\n")
    with pytest.raises(DataError, match="line 3"):
        attach_subjects(tiny_run, bad, key=SECRET)
    with pytest.raises(SubjectKeyError, match="at least 16"):
        attach_subjects(tiny_run, {"a": [int(tiny_run.block_ids(1)[0])]}, key="short")
    inside = tiny_run.path / "key.txt"
    inside.write_text(SECRET)
    with pytest.raises(SubjectKeyError, match="inside the run store"):
        attach_subjects(tiny_run, {"a": [int(tiny_run.block_ids(1)[0])]}, key_file=inside)
    inside.unlink()
    with pytest.raises(UnknownSubjectError, match="no subject index"):
        lookup_subjects(tiny_run, ["a"], key=SECRET)
    attach_subjects(tiny_run, {"a": [int(tiny_run.block_ids(1)[0])]}, key=SECRET)
    with pytest.raises(Exception, match="--replace"):
        attach_subjects(tiny_run, {"b": [int(tiny_run.block_ids(1)[1])]}, key=SECRET)
    attach_subjects(tiny_run, {"b": [int(tiny_run.block_ids(1)[1])]}, key=SECRET, replace=True)
    assert [s.sample_ids for s in lookup_subjects(tiny_run, ["b"], key=SECRET)] == [[int(tiny_run.block_ids(1)[1])]]
