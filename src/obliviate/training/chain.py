"""The recorded chain of a run: how block states are stored and reconstructed.

For every block ``k`` the manifest holds the model *update* ``Delta_k`` and the optimizer state
``s_k``; every ``snapshot_every`` blocks, and always at the last block, a full model snapshot too.
The chain defines the model after block ``k`` as the nearest snapshot at or before ``k`` plus the
following updates, summed in order. Training itself continues from that reconstruction (not from
its own slightly different float sum), so the chain is the exact truth: replaying block ``k`` from
``state_after(k - 1)`` reproduces ``Delta_k`` bit for bit.

Storing updates is what makes DeepObliviate's stitch cheap: replacing blocks ``d..t`` keeps the
stored updates of the blocks after ``t`` as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..store import RunStore, flatten_optimizer_state, unflatten_optimizer_state
from .manifest import RunManifest, need, typed

if TYPE_CHECKING:
    from .block import BlockRows
    from .trainer import Trainer

State = dict[str, torch.Tensor]


def clone_state(model: torch.nn.Module) -> State:
    """A copy of ``model``'s state on the CPU (where the chain lives, whatever the training device)."""
    return {k: v.detach().clone() if v.device.type == "cpu" else v.detach().to("cpu", copy=True)
            for k, v in model.state_dict().items()}


def subtract(a: State, b: State) -> State:
    return {k: a[k] - b[k] for k in a}


def add(a: State, b: State) -> State:
    return {k: a[k] + b[k] for k in a}


def state_after(store: RunStore, k: int, manifest: dict[str, Any] | None = None) -> State:
    """The model state after block ``k`` (``k = 0``: the initial model), from the stored chain."""
    m = typed(store.manifest if manifest is None else manifest)
    blocks = m.blocks
    if not 0 <= k <= len(blocks):
        raise IndexError(f"block {k} is outside 0..{len(blocks)}")
    start = snapshot_at_or_before(m, k)
    state = store.get(need(blocks[start - 1].snapshot, f"snapshot of block {start}")) if start else \
        store.get(m.init["model"])
    for j in range(start + 1, k + 1):
        update = store.get(need(blocks[j - 1].update, f"update of block {j}"))
        state = add(state, update)
    return state


def snapshot_at_or_before(manifest: RunManifest, k: int) -> int:
    """The block whose snapshot :func:`state_after` starts from for block ``k`` (0: the initial model);
    it then reads ``k - snapshot_at_or_before(k)`` updates."""
    blocks = manifest.blocks
    for j in range(k, 0, -1):
        if blocks[j - 1].snapshot:
            return j
    return 0


def optimizer_state_after(store: RunStore, k: int, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """``optimizer.state_dict()`` after block ``k`` (``k = 0``: the fresh optimizer)."""
    m = typed(store.manifest if manifest is None else manifest)
    ref = m.init["optimizer"] if k == 0 else need(m.blocks[k - 1].optimizer, f"optimizer of block {k}")
    tensors, meta = store.get_with_metadata(ref)
    return unflatten_optimizer_state(tensors, meta)


def optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[State, dict[str, str]]:
    tensors, meta = flatten_optimizer_state(optimizer.state_dict())
    return {k: v if v.device.type == "cpu" else v.cpu() for k, v in tensors.items()}, meta


def load_state(model: torch.nn.Module, state: State) -> None:
    """Copy ``state`` into ``model`` in place (the optimizer keeps pointing at the same tensors)."""
    with torch.no_grad():
        own = model.state_dict()
        for k, v in state.items():
            own[k].copy_(v)


def advance(model: torch.nn.Module, optimizer: torch.optim.Optimizer, previous: State, rows: BlockRows, *,
            block: int, num_blocks: int, cfg: Any, trainer: Trainer | None = None, slots: torch.Tensor | None = None,
            num_slots: int | None = None) -> tuple[State, State, float]:
    """One step of the chain: train block ``block`` on ``rows`` from ``previous`` (already loaded in
    ``model``) with ``trainer`` (default: the built-in loop), then continue from the chain's own
    reconstruction ``previous + update`` (not from the model's slightly different float state), so that
    replaying the block from the stored state reproduces the stored update bit for bit. Returns
    ``(update, state, loss)`` (on the CPU); ``model`` holds ``state``.

    Every caller that trains a block of a run goes through here: recording, replay, the unlearning
    engine's modes, the oracles and the benchmarks' noise floors.
    """
    from .block import train_block

    loss = train_block(model, optimizer, rows.x, rows.y, block=block, num_blocks=num_blocks, cfg=cfg, slots=slots,
                       num_slots=num_slots, trainer=trainer, ids=rows.ids, fetch=rows.fetch)
    update = subtract(clone_state(model), previous)
    state = add(previous, update)
    load_state(model, state)
    return update, state, loss


def stitch(final: State, new_t: State, old_t: State, damping: float = 1.0) -> State:
    """DeepObliviate's stitch: ``theta_B + a (theta'_t - theta_t)``; ``a = 1`` is the paper's
    ``theta'_t + (theta_B - theta_t)`` (the stored updates after ``t`` kept as they are). The one
    definition of the formula: the engine, the commit's snapshot re-basing and verification use it."""
    if damping == 1.0:
        return {k: final[k] + (new_t[k] - old_t[k]) for k in final}
    return {k: final[k] + (new_t[k] - old_t[k]) * damping if final[k].is_floating_point()
            else final[k] + (new_t[k] - old_t[k]) for k in final}
