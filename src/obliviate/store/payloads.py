"""Tensor payloads as safetensors bytes (never pickles), and optimizer state flattened into them.

>>> import torch
>>> blob = tensors_to_bytes({"w": torch.ones(2)}, {"kind": "test"})
>>> t, meta = tensors_from_bytes(blob)
>>> t["w"].tolist(), meta["kind"]
([1.0, 1.0], 'test')
"""

from __future__ import annotations

import json
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return st_save(clean, metadata=metadata)


def tensors_from_bytes(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = st_load(data)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return tensors, header.get("__metadata__", {}) or {}


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``optimizer.state_dict()`` as flat tensors ``state.<param>.<name>`` plus JSON metadata.

    Non-tensor per-parameter values (rare) are kept in the metadata. Param groups are JSON.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in state_dict["state"].items():
        for name, value in st.items():
            key = f"state.{pid}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().clone()
            else:
                scalars[key] = value
    meta = {"param_groups": json.dumps(state_dict["param_groups"]), "scalars": json.dumps(scalars)}
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    items: list[tuple[str, Any]] = list(tensors.items()) + list(json.loads(meta.get("scalars", "{}")).items())
    for key, value in items:
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}
