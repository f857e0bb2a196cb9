"""The run manifest, typed: the run record, its block records and its request records.

The store (:mod:`obliviate.store.run_store`) keeps the manifest as plain JSON and knows nothing of its
shape; these dataclasses are how the library reads it. ``from_dict`` keeps every key it does not name
(``extra``) and the order the keys came in, so ``to_dict(from_dict(d)) == d`` key for key and in the same
order: a manifest read and written again is byte for byte the file it was (tested), and stores written
by earlier or later versions open unchanged. Values are taken as stored (no coercion), and payload refs
stay plain ``{"file", "sha256", "bytes"}`` dicts, as the store reads them.

>>> rec = BlockRecord.from_dict({"index": 1, "size": 5, "loss": 0.5, "wall_time_s": 0.1, "origin": "trained",
...                              "update": {"file": "payloads/u", "sha256": "ab", "bytes": 8}, "optimizer": None,
...                              "snapshot": None, "note": "kept"})
>>> rec.index, rec.update["sha256"], rec.extra
(1, 'ab', {'note': 'kept'})
>>> list(rec.to_dict())[-1]
'note'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict, TypeVar

from ..errors import IntegrityError

R = TypeVar("R", bound="_Record")


class PayloadRef(TypedDict):
    """Where a payload lies and what its content hash is (:meth:`RunStore.put` returns one)."""

    file: str
    sha256: str
    bytes: int


@dataclass(kw_only=True)
class _Record:
    """Base of the typed records: named fields, the keys it does not name, and the order keys came in."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    _keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    _NESTED: ClassVar[dict[str, type[_Record]]] = {}  # list-valued fields holding records

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "_keys")]

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        names = set(cls._names())
        values: dict[str, Any] = {}
        for key, value in d.items():
            if key in names:
                nested = cls._NESTED.get(key)
                values[key] = [nested.from_dict(v) for v in value] if nested is not None and isinstance(
                    value, list) else value
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**values, extra=extra, _keys=tuple(d))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict: the keys read, in their order, then any field set since, then new extras."""
        defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                    for f in dataclasses.fields(self)}
        names = self._names()
        order = list(self._keys) if self._keys is not None else names
        out: dict[str, Any] = {}
        for key in order:
            if key in names:
                out[key] = self._plain(key)
            elif key in self.extra:
                out[key] = self.extra[key]
        for key in names:  # fields a reader of an older manifest set since
            if key not in out and getattr(self, key) != defaults[key]:
                out[key] = self._plain(key)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def _plain(self, key: str) -> Any:
        value = getattr(self, key)
        if key in self._NESTED and isinstance(value, list):
            return [v.to_dict() if isinstance(v, _Record) else v for v in value]
        return value


@dataclass(kw_only=True)
class BlockRecord(_Record):
    """One recorded block: its size, loss and time, where it came from, and its payloads."""

    index: int
    size: int = 0
    loss: float | None = None
    wall_time_s: float = 0.0
    origin: str = "trained"  # "trained" at recording, "retrained" by a forget request
    update: PayloadRef | None = None  # the block's parameter update (state after minus state before)
    optimizer: PayloadRef | None = None  # the optimizer state after the block
    snapshot: PayloadRef | None = None  # the full model state after the block, every few blocks
    stitched_by_request: int | None = None  # the request whose stitch re-based this block's snapshot


class PaperNames:
    """Readable names beside the paper's ``d``, ``m``, ``t`` (for request records and forget results)."""

    d: int | None
    m: int | None
    t: int | None

    @property
    def first_block(self) -> int | None:
        """``d``: the first block that held a deleted sample."""
        return self.d

    @property
    def last_deleted_block(self) -> int | None:
        """``m``: the last block that held a deleted sample."""
        return self.m

    @property
    def last_retrained_block(self) -> int | None:
        """``t``: the last retrained block, after which the stored chain was stitched back on."""
        return self.t


@dataclass(kw_only=True)
class RequestRecord(PaperNames, _Record):
    """One forget request as the manifest keeps it. ``d``, ``m``, ``t`` are the paper's names: the first
    block holding a deleted sample, the last one, and the block after which the chain was stitched
    (readable aliases, as on :class:`~obliviate.unlearning.ForgetResult`: :attr:`first_block`,
    :attr:`last_deleted_block`, :attr:`last_retrained_block`)."""

    request_id: int
    created: str = ""
    method: str = ""
    outcome: str = ""
    summary: str = ""
    ids_requested: list[int] = field(default_factory=list)
    ids_deleted: list[int] = field(default_factory=list)
    ids_already_deleted: list[int] = field(default_factory=list)
    n_deleted: int = 0
    d: int | None = None
    m: int | None = None
    t: int | None = None
    blocks_retrained: int = 0
    damping: float | None = None
    memorised: Any = None
    stopping_rule: Any = None
    decisions: Any = None
    guard: Any = None
    plan: Any = None
    residuals: Any = None
    wall_time_s: float = 0.0
    retrain_time_s: float | None = None
    accuracy_before: Any = None
    accuracy_after: Any = None
    chain_sha256: list[str] = field(default_factory=list)
    canary: Any = None
    subject_hashes: list[str] | None = None
    client_ref: str | None = None



@dataclass(kw_only=True)
class RunManifest(_Record):
    """The whole manifest of a recorded run (``RUN/manifest.json``)."""

    format: str = ""
    format_version: int = 0
    created: str = ""
    library_versions: dict[str, str] = field(default_factory=dict)
    determinism: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] | None = None  # what trains a block (runs recorded before the trainer seam lack it)
    canary: dict[str, Any] = field(default_factory=dict)
    memorised: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    blocks: list[BlockRecord] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    init: dict[str, PayloadRef] = field(default_factory=dict)  # "model" and "optimizer" before block 1
    partition: PayloadRef | None = None
    samples: PayloadRef | None = None  # per-sample fingerprints (runs recorded before them lack it)
    metrics: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    subjects: dict[str, Any] | None = None
    validation_predictions: dict[str, Any] | None = None

    _NESTED: ClassVar[dict[str, type[_Record]]] = {"blocks": BlockRecord, "requests": RequestRecord}

    def deleted_ids(self) -> set[int]:
        """Every sample id a request of this run deleted."""
        return {int(i) for r in self.requests for i in r.ids_deleted}

    def canary_ids(self) -> list[int]:
        return list(self.canary.get("ids", []))


def need(ref: PayloadRef | None, what: str) -> PayloadRef:
    """``ref``, or an :class:`~obliviate.errors.IntegrityError` saying the manifest lacks ``what``."""
    if ref is None:
        raise IntegrityError(f"the run's manifest names no {what}: the store is damaged or was edited by hand; "
                             f"restore it from a backup")
    return ref


_CACHE: dict[int, tuple[dict[str, Any], RunManifest]] = {}


def typed(manifest: dict[str, Any]) -> RunManifest:
    """The typed view of a manifest dict, parsed once per dict (the store replaces its dict on every
    commit, so a cached view never goes stale; do not edit a manifest dict in place)."""
    hit = _CACHE.get(id(manifest))
    if hit is not None and hit[0] is manifest:
        return hit[1]
    view = RunManifest.from_dict(manifest)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[id(manifest)] = (manifest, view)
    return view


__all__ = ["BlockRecord", "PayloadRef", "RequestRecord", "RunManifest", "need", "typed"]
