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


def retrain_from_scratch(run, removed, *, loss=None, optimizer=None):
    """Independent oracle: blocks 1..B of the run's recorded partition without ``removed``, from the seeded
    init, with a block loop written here (not the library's ``train_block``): minibatches drawn over each
    block's recorded members with the seeds (run seed, block, epoch), removed samples left out of their
    minibatch (normalised by the recorded batch size), training continued from the chain's sum.

    ``loss`` (per-sample, ``reduction="none"``) and ``optimizer`` (``params -> Optimizer``) stand for a user
    trainer; without them, the built-in loop's cross-entropy and the config's optimizer."""
    import math

    import torch
    import torch.nn.functional as F

    from obliviate.models import build_model
    from obliviate.training import make_optimizer
    from obliviate.training.block import _mix, deterministic
    from obliviate.training.chain import add, clone_state, load_state, subtract
    from obliviate.training.schedule import lr_at

    def batch_loss(logits, y, recorded):
        if loss is not None:
            return loss(logits, y).sum() / recorded
        if len(y) == recorded:
            return F.cross_entropy(logits, y)
        return F.cross_entropy(logits, y, reduction="sum") / recorded

    cfg = run.config.training
    model = build_model(run.config.model.name, run.train.input_shape, 10, seed=cfg.seed, **run.config.model.options)
    opt = make_optimizer(model, cfg) if optimizer is None else optimizer(list(model.parameters()))
    state = clone_state(model)
    B = run.num_blocks
    for k in range(1, B + 1):
        recorded = [int(i) for i in run.recorded_block_ids(k)]
        n = len(recorded)
        nb = math.ceil(n / cfg.batch_size)
        model.train()
        with deterministic(_mix(cfg.seed, k)):
            for e in range(cfg.epochs_per_block):
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(cfg.seed, k, e)))
                for i in range(nb):
                    batch = [recorded[j] for j in perm[i * cfg.batch_size:(i + 1) * cfg.batch_size].tolist()]
                    kept = [sid for sid in batch if sid not in removed]
                    if not kept:
                        continue
                    for g in opt.param_groups:
                        g["lr"] = lr_at((k - 1 + (e + i / nb) / cfg.epochs_per_block) / B, lr=cfg.lr,
                                        schedule=cfg.schedule, min_lr_ratio=cfg.min_lr_ratio,
                                        warmup_fraction=cfg.warmup_fraction)
                    pos = run.train.positions(torch.tensor(kept, dtype=torch.int64))
                    opt.zero_grad(set_to_none=True)
                    batch_loss(model(run.train.x[pos]), run.train.y[pos], len(batch)).backward()
                    opt.step()
        state = add(state, subtract(clone_state(model), state))
        load_state(model, state)
    return state
