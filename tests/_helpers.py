"""Helpers shared by the tests (imported as `_helpers`; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from obliviate.training import RunConfig

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**sections) -> RunConfig:
    """A digits run that trains in about a second: 5 blocks, 2 epochs each."""
    base = RunConfig.from_dict({"training": {"blocks": 5, "epochs_per_block": 2, "lr": 0.003},
                                "store": {"snapshot_every": 2}})
    return base.replace(**sections) if sections else base


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for CLI subprocesses: one compute thread each (tests run many small processes,
    and on a shared 2-core machine two threads per process thrash), plus ``extra``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def run_cli(*args, env=None, timeout=600):
    """Run ``obliviate ARGS`` in a real subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "obliviate", *map(str, args)], capture_output=True, text=True,
                          env=env or cli_env(), timeout=timeout, cwd=REPO)


def store_files(path):
    """Every file under a run store with its bytes (to prove a failed command changed nothing)."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(Path(path).rglob("*"))
            if p.is_file() and p.name != ".lock"}
