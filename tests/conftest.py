"""Shared test fixtures. Tests are offline and build the small files they need."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch

from obliviate.data.paths import DATA_DIR_ENV, dataset_dir
from obliviate.training import open_run, train_run
from tests._helpers import tiny_config

torch.set_num_threads(1)  # determinism across the suite and fewer cores fighting on CI
# the integrity hash cache (obliviate.store.hash_cache) of the suite's stores, not the user's ~/.cache
os.environ["OBLIVIATE_CACHE_DIR"] = tempfile.mkdtemp(prefix="obliviate-test-cache-")


@pytest.fixture(scope="session")
def mnist_t10k_dir():
    """The official MNIST test files; skipped (naming the variable) when absent."""
    path = dataset_dir("mnist-t10k")
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test files not found at {path}; set {DATA_DIR_ENV} to the folder holding mnist-t10k/")
    return path



@pytest.fixture(scope="session")
def tiny_run_master(tmp_path_factory):
    return train_run(tiny_config(), tmp_path_factory.mktemp("master") / "run")


@pytest.fixture
def tiny_run(tiny_run_master, tmp_path):
    """A fresh copy of a small trained digits run (so a test may change it)."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run_master.path, dst)
    return open_run(dst)
