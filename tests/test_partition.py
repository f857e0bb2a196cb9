import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from obliviate.errors import ConfigError
from obliviate.training import partition_ids, read_id_file
import pytest


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), blocks=st.integers(1, 50), seed=st.integers(0, 2**31),
       strat=st.sampled_from(["random", "stratified"]), classes=st.integers(1, 10))
def test_every_id_lands_in_exactly_one_block(n, blocks, seed, strat, classes):
    blocks = min(blocks, n)
    rng = np.random.default_rng(seed)
    ids = rng.choice(10 * n, size=n, replace=False)
    labels = rng.integers(0, classes, size=n)
    parts = partition_ids(ids, labels, blocks, strategy=strat, seed=seed)
    assert len(parts) == blocks
    allids = np.concatenate(parts)
    assert len(allids) == n and set(allids.tolist()) == set(ids.tolist())
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no duplicates


@settings(max_examples=40, deadline=None)
@given(n=st.integers(50, 600), blocks=st.integers(2, 20), seed=st.integers(0, 2**31), classes=st.integers(2, 10))
def test_stratified_blocks_keep_label_proportions(n, blocks, seed, classes):
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    labels = rng.integers(0, classes, size=n)
    parts = partition_ids(ids, labels, blocks, strategy="stratified", seed=seed)
    for label in range(classes):
        total = int((labels == label).sum())
        counts = [int((labels[p] == label).sum()) for p in parts]
        # each block holds floor or ceil of its share of every label
        assert max(counts) - min(counts) <= 1
        assert sum(counts) == total


def test_partition_is_deterministic_in_the_seed():
    ids, labels = np.arange(100), np.zeros(100)
    a = partition_ids(ids, labels, 7, strategy="random", seed=3)
    b = partition_ids(ids, labels, 7, strategy="random", seed=3)
    c = partition_ids(ids, labels, 7, strategy="random", seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_order_strategy_keeps_the_users_order_and_checks_it():
    ids = np.arange(10)
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    parts = partition_ids(ids, np.zeros(10), 2, strategy="order", seed=0, order=order)
    assert parts[0].tolist() == [9, 8, 7, 6, 5]
    with pytest.raises(ConfigError, match="exactly once"):
        partition_ids(ids, np.zeros(10), 2, strategy="order", seed=0, order=[1, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ConfigError, match="training.blocks"):
        partition_ids(ids, np.zeros(10), 11, strategy="random", seed=0)


def test_id_file_errors_name_the_line(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("1\n# comment\n\n2\nthree\n")
    with pytest.raises(ConfigError, match="line 5"):
        read_id_file(f)
    f.write_text("1\n 2 # trailing comment\n")
    assert read_id_file(f) == [1, 2]
