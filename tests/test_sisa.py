"""The SISA baseline: accuracy, exact unlearning against a from-scratch oracle, bad requests, aggregation,
stored checkpoints."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from obliviate.data import load_digits
from obliviate.errors import ConfigError, IntegrityError, RequestError, StoreError
from obliviate.models import build_model
from obliviate.training.config import TrainingConfig
from obliviate.training.block import make_optimizer, train_block
from obliviate.training.chain import load_state
from obliviate.unlearning.sisa import SisaConfig, SisaEnsemble, prediction_latency
from obliviate.unlearning.sisa.training import seeded_assignment

# the paper's budget: e = 5 epochs of an unsliced shard, e' = 2R/(R+1) e = 8 spread as 2 per slice
CFG = SisaConfig(shards=3, slices=4, epochs=5, training=TrainingConfig(lr=0.01, batch_size=64, schedule="constant"),
                 seed=0)


def small_cnn():
    return build_model("small_cnn", (1, 8, 8), 10)


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def trained(digits):
    """The S=3, R=4 ensemble; tests must not change it (they forget on a copy)."""
    return SisaEnsemble.train(CFG, digits.train, small_cnn)


@pytest.fixture(scope="module")
def forgotten(trained):
    """A copy of ``trained`` after forgetting one id in shard 0, slice 3 and two in shard 2, slices 2 and 4."""
    ens = copy.deepcopy(trained)
    parts = ens.assignment
    ids = [int(parts[0][2][5]), int(parts[2][1][0]), int(parts[2][3][7])]
    before = [list(shard) for shard in ens._checkpoints]
    result = ens.forget(ids)
    return ens, result, ids, before


def test_config_validation_speaks_one_voice():
    for key, value, want in [("shards", 0, "an int >= 1"), ("slices", 1.5, "an int >= 1"),
                             ("epochs", 0, "an int >= 1"), ("epochs_per_slice", True, "an int >= 0"),
                             ("seed", -1, "an int >= 0")]:
        with pytest.raises(ConfigError, match=f"Expected `{key}` to be {want}, but got {value!r}"):
            SisaConfig(**{key: value})
    with pytest.raises(ConfigError, match="Expected `aggregation` to be one of mean_proba, vote, but got 'max'"):
        SisaConfig(aggregation="max")
    with pytest.raises(ConfigError, match="Expected `training.lr` to be a float > 0"):
        SisaConfig(training=TrainingConfig(lr=0.0))
    with pytest.raises(ConfigError, match="unknown SISA key"):
        SisaConfig.from_dict({"shard": 3})
    assert SisaConfig.from_dict(CFG.to_dict()) == CFG
    cfg = CFG.shard_training(1, 3)
    assert (cfg.epochs_per_block, cfg.blocks, cfg.lr) == (2, 4, 0.01) and cfg.seed != CFG.shard_training(0, 3).seed
    with pytest.raises(ConfigError, match=r"Expected `epochs` to be at least \(slices \+ 1\) / 2 = 3 .* but got 2"):
        SisaConfig(slices=5, epochs=2)
    assert SisaConfig(slices=5, epochs=2, epochs_per_slice=1).slice_epochs() == (1,) * 5


def reference_slice_epochs(epochs, slices):
    """The reference code's rule (cleverhans-lab/machine-unlearning, sisa.py), in floats as it is written."""
    avg = 2 * slices / (slices + 1) * epochs / slices
    return tuple(int((sl + 1) * avg) - int(sl * avg) for sl in range(slices))


@pytest.mark.parametrize("slices,epochs", [(1, 5), (2, 5), (3, 5), (4, 5), (4, 10), (4, 12), (5, 3), (8, 20), (10, 6)])
def test_slice_epochs_follow_the_papers_budget(slices, epochs):
    cfg = SisaConfig(shards=5, slices=slices, epochs=epochs)
    got = cfg.slice_epochs()
    assert got == reference_slice_epochs(epochs, slices) and min(got) >= 1
    assert sum(got) == 2 * slices * epochs // (slices + 1)  # e' = 2R/(R+1) e, floored
    # slice r trains on r/R of the shard: the work is e epochs of the shard, within one epoch (the flooring),
    # exactly e when the epochs per slice are equal
    work = sum(r * e for r, e in enumerate(got, 1)) / slices
    assert abs(work - epochs) < 1
    if 2 * slices * epochs % (slices + 1) == 0 and len(set(got)) == 1:
        assert work == epochs
    # the last slice is the cheapest to retrain; its speedup is the ceiling S (R + 1) / 2 for equal epochs
    speedups = [cfg.analytical_speedup(r) for r in range(1, slices + 1)]
    assert speedups == sorted(speedups) and speedups[0] == pytest.approx(5)
    if len(set(got)) == 1:
        assert speedups[-1] == pytest.approx(cfg.speedup_ceiling())


def test_every_shard_has_its_own_seeds_and_the_rate_stays_constant(trained):
    first = [next(m.parameters()).detach() for m in trained.models]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert len({CFG.shard_training(s, 1).seed for s in range(3)}) == 3
    for shard in trained._checkpoints:  # the reference code's constant rate: every stored lr is the configured one
        for ck in shard:
            assert all(g["lr"] == CFG.training.lr for g in trained._keeper.states(ck)[1]["param_groups"])
    assert [ck.epochs for ck in trained._checkpoints[0]] == [0, 2, 2, 2, 2]


def test_assignment_is_seeded_disjoint_and_complete(trained, digits):
    parts = trained.assignment
    assert [len(shard) for shard in parts] == [4, 4, 4]
    flat = np.concatenate([p for shard in parts for p in shard])
    assert np.array_equal(np.sort(flat), np.sort(digits.train.ids.numpy()))
    sizes = [len(p) for shard in parts for p in shard]
    assert max(sizes) - min(sizes) <= 1
    again = seeded_assignment(CFG, digits.train)
    other = seeded_assignment(dataclasses.replace(CFG, seed=1), digits.train)
    assert all(np.array_equal(a, b) for sa, sb in zip(parts, again) for a, b in zip(sa, sb))
    assert not np.array_equal(parts[0][0], other[0][0])
    with pytest.raises(ConfigError, match="3 shards of 4 slices"):
        SisaEnsemble.train(CFG, digits.train, small_cnn, assignment=[[[1]]])
    broken = [[p.copy() for p in shard] for shard in parts]
    broken[0][0] = broken[0][0][1:]
    with pytest.raises(ConfigError, match=r"exactly once \(unknown: \[\], missing: \[\d+\], duplicates: 0\)"):
        SisaEnsemble.train(CFG, digits.train, small_cnn, assignment=broken)
    with pytest.raises(ConfigError, match="at most the 3 training samples"):
        SisaEnsemble.train(CFG, digits.train.take(torch.arange(3)), small_cnn)


def test_accuracy_well_above_chance_with_both_aggregations(trained, digits):
    vote = trained.evaluate(digits.test)
    mean = trained.evaluate(digits.test, aggregation="mean_proba")
    assert vote >= 0.85 and mean >= 0.85, (vote, mean)


def test_forget_retrains_only_the_affected_shards_from_the_right_slice(trained, forgotten):
    ens, result, ids, before = forgotten
    assert result.outcome == "retrained" and result.ids_deleted == sorted(ids) and not result.ids_already_deleted
    assert result.shards_affected == [0, 2]
    assert [(e["shard"], e["from_slice"], e["slices_retrained"]) for e in result.retrained] == [(0, 3, 2), (2, 2, 3)]
    assert result.slices_retrained == 5 and result.slices_total == 12
    assert 0 < result.samples_retrained < result.samples_total
    assert states_equal(ens.models[1], trained.models[1])  # untouched shard
    assert not states_equal(ens.models[0], trained.models[0]) and not states_equal(ens.models[2], trained.models[2])
    kept = {0: 3, 1: 5, 2: 2}  # checkpoints 0..first-1 are reused as they were
    for s, n in kept.items():
        assert all(ens._checkpoints[s][r] is before[s][r] for r in range(n))
        assert all(ens._checkpoints[s][r] is not before[s][r] for r in range(n, 5))
    assert ens.deleted_ids == sorted(ids)
    assert not np.isin(np.concatenate([p for shard in ens.assignment for p in shard]), ids).any()
    d = result.to_dict()
    assert d["shards_affected"] == [0, 2] and d["wall_time_s"] > 0 and d["speedup_vs_recorded"] > 0


def test_forgotten_ensemble_equals_training_from_scratch_without_the_ids(forgotten, digits):
    ens, _, ids, _ = forgotten
    kept = digits.train.ids[~torch.isin(digits.train.ids, torch.tensor(ids))]
    oracle = SisaEnsemble.train(CFG, digits.train.select(kept), small_cnn, assignment=ens.assignment)
    assert all(states_equal(a, b) for a, b in zip(ens.models, oracle.models))
    assert torch.equal(ens.predict_proba(digits.test.x), oracle.predict_proba(digits.test.x))


def test_forget_equals_retraining_the_shard_from_its_slice_checkpoint_by_hand(trained, digits):
    """Bit for bit on CPU, one machine and one thread count: the forgotten shard equals shard 1 restored
    by hand to its checkpoint after slice 1 and trained on slices 2..4 without the id."""
    ens = copy.deepcopy(trained)
    parts = ens.assignment[1]
    victim = int(parts[1][3])
    result = ens.forget([victim])
    assert [(e["shard"], e["from_slice"]) for e in result.retrained] == [(1, 2)]
    state, opt_state = trained._keeper.states(trained._checkpoints[1][1])
    model = small_cnn()
    load_state(model, state)
    optimizer = make_optimizer(model, CFG.training)
    optimizer.load_state_dict(opt_state)
    kept = [p[p != victim] for p in parts]
    for r in (2, 3, 4):
        union = torch.from_numpy(np.sort(np.concatenate(kept[:r])))
        pos = digits.train.positions(union)
        train_block(model, optimizer, digits.train.x[pos], digits.train.y[pos], block=r, num_blocks=4,
                    cfg=dataclasses.replace(CFG.training, epochs_per_block=2, blocks=4,
                                            seed=CFG.shard_training(1, r).seed))
    assert states_equal(model, ens.models[1])
    assert not states_equal(model, trained.models[1])
    assert all(states_equal(ens.models[s], trained.models[s]) for s in (0, 2))
    # the request's sample-epochs: slices 2..4 of the shard, 2 epochs each, against the whole ensemble's
    sizes = np.cumsum([len(p) for p in kept])
    assert result.samples_retrained == 2 * int(sizes[1:].sum())
    assert result.samples_total == sum(2 * int(np.cumsum([len(p) for p in shard]).sum()) for shard in ens.assignment)
    assert result.analytical_speedup == pytest.approx(CFG.analytical_speedup(2), rel=0.02)


def test_unknown_ids_raise_listing_them_and_change_nothing(trained):
    ens = copy.deepcopy(trained)
    known = int(ens.assignment[1][0][0])
    with pytest.raises(RequestError, match=r"unknown sample ids \[100000, 100001\]"):
        ens.forget([known, 100001, 100000])
    assert ens.deleted_ids == [] and ens.shard_of(known) == (1, 1)
    assert all(states_equal(a, b) for a, b in zip(ens.models, trained.models))
    with pytest.raises(RequestError, match="no sample ids"):
        ens.forget([])


def test_repeated_ids_are_a_reported_noop(forgotten):
    ens, _, ids, _ = forgotten
    ens = copy.deepcopy(ens)
    states = [copy.deepcopy(m.state_dict()) for m in ens.models]
    again = ens.forget([ids[0], ids[0], *ids])
    assert again.noop and again.ids_already_deleted == sorted(ids) and again.ids_deleted == []
    assert again.slices_retrained == 0 and again.shards_affected == []
    assert all(all(torch.equal(s[k], m.state_dict()[k]) for k in s) for s, m in zip(states, ens.models))
    # a mix deletes the new id and reports the old ones; a last-slice id retrains one slice
    new = int(ens.assignment[1][3][0])
    mixed = ens.forget([ids[1], new])
    assert mixed.ids_deleted == [new] and mixed.ids_already_deleted == [ids[1]]
    assert [(e["shard"], e["from_slice"]) for e in mixed.retrained] == [(1, 4)] and mixed.slices_retrained == 1
    with pytest.raises(RequestError, match="it was deleted"):
        ens.shard_of(new)


def test_vote_and_mean_proba_aggregate_as_documented(trained, digits, monkeypatch):
    x = digits.test.x[:50]
    vote = trained.predict_proba(x)
    assert torch.allclose(vote.sum(1), torch.ones(50))
    assert torch.allclose(vote * 3, (vote * 3).round())  # vote shares of 3 shards
    mean = trained.predict_proba(x, aggregation="mean_proba")
    assert torch.allclose(mean, trained.shard_proba(x).mean(0))
    assert torch.equal(trained.predict(x, aggregation="mean_proba"), mean.argmax(1))
    with pytest.raises(ConfigError, match="Expected `aggregation` to be one of"):
        trained.predict(x, aggregation="max")
    # crafted shard outputs: a 2-1 vote beats a higher mean probability; a tie goes to the higher mean
    ens = copy.deepcopy(trained)
    probs = torch.tensor([[[0.6, 0.4, 0.0]], [[0.55, 0.45, 0.0]], [[0.0, 1.0, 0.0]]])
    monkeypatch.setattr(ens, "shard_proba", lambda _x: probs)
    assert ens.predict(x[:1]).tolist() == [0] and ens.predict(x[:1], aggregation="mean_proba").tolist() == [1]
    tie = torch.tensor([[[0.5, 0.4, 0.1]], [[0.1, 0.9, 0.0]], [[0.2, 0.1, 0.7]]])
    monkeypatch.setattr(ens, "shard_proba", lambda _x: tie)
    assert ens.predict(x[:1]).tolist() == [1]


def test_prediction_latency_is_a_positive_median(trained, digits):
    ens_s = trained.prediction_latency(digits.test.x, repeats=3)
    one_s = prediction_latency(trained.models[0], digits.test.x, repeats=3)
    assert ens_s > 0 and one_s > 0
    with pytest.raises(ConfigError, match="repeats"):
        trained.prediction_latency(digits.test.x, repeats=0)


# -- stored checkpoints -------------------------------------------------------------------------------

SMALL = SisaConfig(shards=2, slices=3, epochs=2, training=TrainingConfig(lr=0.01, batch_size=64), seed=3)


@pytest.fixture(scope="module")
def small_train(digits):
    return digits.train.take(torch.arange(300))


def test_stored_checkpoints_reload_and_forget_exactly(small_train, tmp_path):
    memory = SisaEnsemble.train(SMALL, small_train, small_cnn)
    stored = SisaEnsemble.train(SMALL, small_train, small_cnn, store_dir=tmp_path / "sisa")
    files = sorted(p.name for p in (tmp_path / "sisa").rglob("*") if p.is_file())
    assert "manifest.json" in files and all(f.endswith(".safetensors") for f in files if f not in
                                            ("manifest.json", ".lock"))
    reloaded = SisaEnsemble.load(tmp_path / "sisa", small_cnn, train=small_train)
    assert all(states_equal(a, b) for a, b in zip(memory.models, reloaded.models))
    assert all(states_equal(a, b) for a, b in zip(memory.models, stored.models))

    victim = int(memory.assignment[1][1][0])
    expected = memory.forget([victim])
    result = reloaded.forget([victim])
    assert result.retrained == expected.retrained and result.purged_files  # the stale checkpoints are gone
    again = SisaEnsemble.load(tmp_path / "sisa", small_cnn, train=small_train)
    assert again.deleted_ids == [victim] and again.forget([victim]).noop
    assert all(states_equal(a, b) for a, b in zip(memory.models, again.models))
    left = {p.name for p in (tmp_path / "sisa" / "payloads").iterdir()}
    assert not left & set(result.purged_files)

    predict_only = SisaEnsemble.load(tmp_path / "sisa", small_cnn)
    assert torch.equal(predict_only.predict(small_train.x[:20]), memory.predict(small_train.x[:20]))
    with pytest.raises(StoreError, match="without its training data"):
        predict_only.forget([int(memory.assignment[0][0][0])])
    with pytest.raises(StoreError, match="not the data"):
        SisaEnsemble.load(tmp_path / "sisa", small_cnn, train=small_train.with_data(small_train.x + 1, small_train.y))
    with pytest.raises(StoreError, match="already holds a run"):
        SisaEnsemble.train(SMALL, small_train, small_cnn, store_dir=tmp_path / "sisa")


def test_corrupted_checkpoint_raises_integrity_error(small_train, tmp_path):
    root = tmp_path / "sisa"
    ens = SisaEnsemble.train(SMALL, small_train, small_cnn, store_dir=root)
    manifest = ens._store.manifest

    def corrupt(ref):
        path = root / ref["file"]
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 0xFF
        path.write_bytes(bytes(blob))

    corrupt(manifest["shards"][0]["slices"][1]["model"])  # an intermediate checkpoint: needed only to forget
    loaded = SisaEnsemble.load(root, small_cnn, train=small_train)
    manifest_bytes = (root / "manifest.json").read_bytes()
    models = [copy.deepcopy(m.state_dict()) for m in loaded.models]
    with pytest.raises(IntegrityError, match="content hash"):
        loaded.forget([int(loaded.assignment[0][1][0])])
    assert (root / "manifest.json").read_bytes() == manifest_bytes and loaded.deleted_ids == []
    assert all(all(torch.equal(s[k], m.state_dict()[k]) for k in s) for s, m in zip(models, loaded.models))

    corrupt(manifest["shards"][1]["slices"][3]["optimizer"])  # a final checkpoint: needed to load
    with pytest.raises(IntegrityError, match="content hash"):
        SisaEnsemble.load(root, small_cnn, train=small_train)
