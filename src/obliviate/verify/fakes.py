"""A catalogue of fake deletions: models a dishonest or broken unlearner might submit for ``U``.

Each fake takes the run, ``U`` and the original's state and returns a candidate state; the verifier
must fail every one of them on users the original memorises. Shared by the tests and
``benchmarks/bench_verify.py``.

- ``noop``: the original, unchanged.
- ``noise``: the original plus Gaussian noise of 1% of each tensor's standard deviation.
- ``finetune_retained``: the original fine-tuned one epoch on the retained samples of blocks ``d..B``.
- ``gradient_ascent``: five steps of gradient ascent on ``U``'s loss.
- ``retrain_block_no_stitch``: block ``d`` retrained without ``U`` from the stored state before it, and
  returned as is (the later blocks' updates are not added back). Identical to the exact deletion when
  ``d = B``, so it only counts as a fake for ``d < B``.
- ``relabel_finetune``: ``U`` relabelled at random and the original fine-tuned on it (with as many
  retained samples) for one epoch.

>>> sorted(FAKES)[:3]
['finetune_retained', 'gradient_ascent', 'noise']
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..training.chain import advance
from ..training.chain import State, clone_state, load_state, optimizer_state_after, state_after
from ..training.run import Run

__all__ = ["FAKES", "make_fake"]

Fake = Callable[[Run, Sequence[int], State, int], State]


def _model(run: Run, state: State) -> torch.nn.Module:
    m = run.build_model()
    load_state(m, {k: v.clone() for k, v in state.items()})
    return m


def _rng(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 7919 + salt)


def noop(run: Run, ids: Sequence[int], original: State, seed: int) -> State:
    return {k: v.clone() for k, v in original.items()}


def noise(run: Run, ids: Sequence[int], original: State, seed: int) -> State:
    g = _rng(seed, 1)
    out = {}
    for k, v in original.items():
        if torch.is_floating_point(v) and v.numel() > 1:
            out[k] = v + 0.01 * v.std() * torch.randn(v.shape, generator=g)
        else:
            out[k] = v.clone()
    return out


def _retained(run: Run, ids: Sequence[int], d: int) -> np.ndarray:
    u = set(int(i) for i in ids)
    return np.array([i for k in range(d, run.num_blocks + 1) for i in run.block_ids(k) if int(i) not in u],
                    dtype=np.int64)


def _finetune(run: Run, state: State, x: torch.Tensor, y: torch.Tensor, seed: int, lr: float) -> State:
    model = _model(run, state)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = _rng(seed, 2)
    model.train()
    perm = torch.randperm(len(y), generator=g)
    bs = run.config.training.batch_size
    for i in range(0, len(y), bs):
        idx = perm[i:i + bs]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return clone_state(model)


def _d(run: Run, ids: Sequence[int]) -> int:
    where = run.block_of()
    return min(where[int(i)] for i in ids)


def finetune_retained(run: Run, ids: Sequence[int], original: State, seed: int) -> State:
    keep = _retained(run, ids, _d(run, ids))
    pos = run.train.positions(torch.from_numpy(keep))
    return _finetune(run, original, run.train.x[pos], run.train.y[pos], seed, run.config.training.lr * 0.3)


def gradient_ascent(run: Run, ids: Sequence[int], original: State, seed: int) -> State:
    model = _model(run, original)
    u = run.train.select(torch.tensor(list(ids), dtype=torch.int64))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        (-F.cross_entropy(model(u.x), u.y)).backward()
        opt.step()
    return clone_state(model)


def retrain_block_no_stitch(run: Run, ids: Sequence[int], original: State, seed: int) -> State:
    d = _d(run, ids)
    u = set(int(i) for i in ids)
    model = _model(run, state_after(run.store, d - 1))
    cfg = run.config.training
    opt = run.trainer.make_optimizer(model, cfg)
    opt.load_state_dict(copy.deepcopy(optimizer_state_after(run.store, d - 1)))
    data = run.block_data(d, u)  # the engine's minibatch rule (recorded slots, U left out)
    _, state, _ = advance(model, opt, state_after(run.store, d - 1), run.rows(data.positions), block=d,
                          num_blocks=run.num_blocks, cfg=cfg, trainer=run.trainer, slots=data.slots,
                          num_slots=data.num_slots)
    return state


def relabel_finetune(run: Run, ids: Sequence[int], original: State, seed: int) -> State:
    u = run.train.select(torch.tensor(list(ids), dtype=torch.int64))
    g = _rng(seed, 3)
    c = run.train.num_classes
    wrong = (u.y + 1 + torch.randint(0, c - 1, u.y.shape, generator=g)) % c
    keep = _retained(run, ids, _d(run, ids))
    chosen = keep[torch.randperm(len(keep), generator=g)[:max(len(ids), 32)].numpy()]
    pos = run.train.positions(torch.from_numpy(np.sort(chosen)))
    x = torch.cat([u.x.repeat(4, 1, 1, 1), run.train.x[pos]])
    y = torch.cat([wrong.repeat(4), run.train.y[pos]])
    return _finetune(run, original, x, y, seed, run.config.training.lr * 0.3)


FAKES: dict[str, Fake] = {"noop": noop, "noise": noise, "finetune_retained": finetune_retained,
                          "gradient_ascent": gradient_ascent, "retrain_block_no_stitch": retrain_block_no_stitch,
                          "relabel_finetune": relabel_finetune}


def make_fake(name: str, run: Run, ids: Sequence[int], original: State, *, seed: int = 0) -> State:
    """The fake ``name`` for ``U = ids`` of ``run`` (before the deletion is committed)."""
    return FAKES[name](run, ids, original, seed)
