"""Memorised users: chosen deterministically inside the configured blocks, planted (wrong labels, inverted
images for `atypical`), and validated config."""

import numpy as np
import pytest
import torch

from obliviate.data.base import IndexedDataset
from obliviate.data.memorised import choose_memorised_users, plant_memorised
from obliviate.errors import ConfigError
from obliviate.training import RunConfig


def _toy(n=40):
    return IndexedDataset(torch.arange(n) + 100, torch.rand(n, 1, 4, 4), torch.arange(n) % 10, 10, "toy")


def test_users_go_round_robin_to_the_chosen_blocks_and_are_deterministic():
    ds = _toy()
    blocks = [ds.ids[i * 10:(i + 1) * 10].numpy() for i in range(4)]
    users = choose_memorised_users(ds, blocks, users=5, size=2, kind="mislabelled", first_block=3, seed=1)
    assert [u["block"] for u in users] == [3, 4, 3, 4, 3]
    assert all(set(u["ids"]) <= set(blocks[u["block"] - 1].tolist()) for u in users)
    assert len({i for u in users for i in u["ids"]}) == 10  # no sample shared between users
    assert users == choose_memorised_users(ds, blocks, users=5, size=2, kind="mislabelled", first_block=3, seed=1)
    last = choose_memorised_users(ds, blocks, users=1, size=1, kind="mislabelled", first_block=0, seed=1)
    assert last[0]["block"] == 4


def test_planting_changes_only_the_users_and_inverts_atypical_images():
    ds = _toy()
    blocks = [ds.ids.numpy()]
    users = choose_memorised_users(ds, blocks, users=2, size=3, kind="atypical", first_block=1, seed=0,
                                   exclude=ds.ids[:20].tolist())
    out = plant_memorised(ds, users)
    chosen = torch.tensor([i for u in users for i in u["ids"]])
    pos = ds.positions(chosen)
    assert bool((out.y[pos] != ds.y[pos]).all()) and torch.allclose(out.x[pos], 1.0 - ds.x[pos])
    rest = torch.from_numpy(np.setdiff1d(np.arange(len(ds)), pos.numpy()))
    assert torch.equal(out.y[rest], ds.y[rest]) and torch.equal(out.x[rest], ds.x[rest])
    assert min(chosen.tolist()) >= 120  # excluded ids are never used


@pytest.mark.parametrize("section,match", [
    ({"users": -1}, "memorised.users"), ({"size": 0}, "memorised.users and memorised.size"),
    ({"block": 99}, "memorised.block"), ({"kind": "noisy"}, "memorised.kind"),
])
def test_config_is_validated(section, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict({"memorised": section})


def test_too_many_users_for_a_block_is_a_clear_error():
    ds = _toy(10)
    with pytest.raises(ConfigError, match="too few samples"):
        choose_memorised_users(ds, [ds.ids.numpy()], users=6, size=2, kind="mislabelled", first_block=1, seed=0)
