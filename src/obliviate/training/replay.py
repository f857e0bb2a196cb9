"""Replaying one stored block from the stored state before it.

>>> import tempfile, torch
>>> from obliviate.training import RunConfig, train_run
>>> run = train_run(RunConfig.from_dict({"training": {"blocks": 3, "epochs_per_block": 1}}),
...                 tempfile.mkdtemp() + "/run")
>>> update = replay_block(run, 2)
>>> stored = run.store.get(run.manifest["blocks"][1]["update"])
>>> all(torch.equal(update[k], stored[k]) for k in stored)
True
"""

from __future__ import annotations


from .chain import State, advance, load_state, optimizer_state_after, state_after
from .determinism import check_conditions
from .run import Run


def replay_block(run: Run, k: int, *, strict: bool = False) -> State:
    """Retrain block ``k`` (1-based) on its current members from the stored ``theta_{k-1}, s_{k-1}``.

    Returns the update ``theta_k - theta_{k-1}``; on CPU, under the conditions recorded in the manifest
    (same torch, thread count and CPU kernels), it equals the stored update bit for bit. Under others it
    warns naming both (``strict=True``: raises :class:`~obliviate.errors.ReproducibilityError`).
    """
    check_conditions(run.manifest, f"replaying block {k}", strict=strict)
    model = run.build_model()
    before = state_after(run.store, k - 1)
    load_state(model, before)
    optimizer = run.trainer.make_optimizer(model, run.config.training)
    optimizer.load_state_dict(optimizer_state_after(run.store, k - 1))
    data = run.block_data(k)
    update, _, _ = advance(model, optimizer, before, run.rows(data.positions), block=k, num_blocks=run.num_blocks,
                           cfg=run.config.training, trainer=run.trainer, slots=data.slots, num_slots=data.num_slots)
    return update
