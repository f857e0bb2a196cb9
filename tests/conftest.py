"""Shared test fixtures. Tests are offline and build the small files they need."""

from __future__ import annotations

import os

import pytest
import torch

from obliviate.data.paths import DATA_DIR_ENV, dataset_dir

torch.set_num_threads(1)  # determinism across the suite and fewer cores fighting on CI


@pytest.fixture(scope="session")
def mnist_t10k_dir():
    """The official MNIST test files; skipped (naming the variable) when absent."""
    path = dataset_dir("mnist-t10k")
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test files not found at {path}; set {DATA_DIR_ENV} to the folder holding mnist-t10k/")
    return path


import shutil
import subprocess
import sys
from pathlib import Path

from obliviate.training import RunConfig, open_run, train_run

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**sections) -> RunConfig:
    """A digits run that trains in about a second: 5 blocks, 2 epochs each."""
    base = RunConfig.from_dict({"training": {"blocks": 5, "epochs_per_block": 2, "lr": 0.003},
                                "store": {"snapshot_every": 2}})
    return base.replace(**sections) if sections else base


@pytest.fixture(scope="session")
def tiny_run_master(tmp_path_factory):
    return train_run(tiny_config(), tmp_path_factory.mktemp("master") / "run")


@pytest.fixture
def tiny_run(tiny_run_master, tmp_path):
    """A fresh copy of a small trained digits run (so a test may change it)."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run_master.path, dst)
    return open_run(dst)


def run_cli(*args, env=None, timeout=300):
    """Run ``obliviate ARGS`` in a real subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "obliviate", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def store_files(path):
    """Every file under a run store with its bytes (to prove a failed command changed nothing)."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(Path(path).rglob("*"))
            if p.is_file() and p.name != ".lock"}
