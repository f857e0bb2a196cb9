"""Tensor payloads as safetensors bytes (never pickles), and optimizer state flattened into them.

:func:`encode_tensors` lays a payload out as safetensors chunks (the header, then the tensors' data:
zero-copy views of large tensors, small ones joined) so the store can hash and write it without
building a large file in memory first: on the background writer that keeps the interpreter lock free
for the training thread (hashing and file writes of large buffers release it; a serialiser building a
``bytes`` object does not).

>>> import torch
>>> blob = tensors_to_bytes({"w": torch.ones(2)}, {"kind": "test"})
>>> t, meta = tensors_from_bytes(blob)
>>> t["w"].tolist(), meta["kind"]
([1.0, 1.0], 'test')
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch
from safetensors.torch import load as st_load

# torch dtype -> safetensors dtype name (the format's own names; see the safetensors specification)
_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
for _torch_name, _st_name in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"), ("uint16", "U16"),
                              ("uint32", "U32"), ("uint64", "U64")):
    if hasattr(torch, _torch_name):
        _DTYPES[getattr(torch, _torch_name)] = _st_name


def encode_tensors(tensors: dict[str, torch.Tensor],
                   metadata: dict[str, str] | None = None) -> list[memoryview | bytes]:
    """The safetensors file for ``tensors`` as chunks whose concatenation is the file: the header and the
    tensors' data, small pieces joined (see ``_coalesced``).

    Deterministic: tensors ordered by decreasing element size then name (every tensor stays aligned),
    metadata keys sorted, header padded with spaces to 8 bytes. Chunks of large tensors are views of
    their memory (each view keeps its tensor alive).

    >>> chunks = encode_tensors({"w": torch.ones(2)})
    >>> tensors_from_bytes(b"".join(chunks))[0]["w"].tolist()
    [1.0, 1.0]
    """
    if sys.byteorder != "little":  # safetensors is little-endian; views of native memory would be wrong
        raise NotImplementedError("writing payloads needs a little-endian machine")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    views: list[memoryview | bytes] = []
    offset = 0
    for name in sorted(tensors, key=lambda n: (-tensors[n].element_size(), n)):
        t = tensors[name].detach()
        if t.dtype not in _DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {t.dtype}, which a payload cannot hold; convert it to "
                            f"one of {sorted(str(d) for d in _DTYPES)}")
        t = t.cpu().contiguous()
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
        # numpy's stubs declare ndarray's buffer protocol (__buffer__) only for Python >= 3.12
        views.append(memoryview(t.reshape(-1).view(torch.uint8).numpy()) if n else b"")  # type: ignore[arg-type]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % 8)
    return _coalesced([len(text).to_bytes(8, "little") + text, *views])


#: A payload up to ``_JOIN_WHOLE`` bytes is written as one ``bytes`` (one copy, then one hash update
#: and one write); in a larger one, runs of chunks below ``_JOIN_BELOW`` are joined and large tensors
#: stay zero-copy views. Each hash update and write lets the training thread and the writer trade the
#: interpreter lock, which costs more than the copy for small models with many small tensors.
_JOIN_WHOLE = 1 << 20
_JOIN_BELOW = 64 * 1024


def _coalesced(chunks: list[memoryview | bytes]) -> list[memoryview | bytes]:
    """``chunks`` with small ones joined, as described above."""
    sizes = [memoryview(c).nbytes for c in chunks]
    if sum(sizes) <= _JOIN_WHOLE:
        return [b"".join(chunks)]
    out: list[memoryview | bytes] = []
    run: list[memoryview | bytes] = []
    for chunk, size in zip(chunks, sizes):
        if size < _JOIN_BELOW:
            run.append(chunk)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(chunk)
    if run:
        out.append(b"".join(run))
    return out


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return b"".join(encode_tensors(tensors, metadata))


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
