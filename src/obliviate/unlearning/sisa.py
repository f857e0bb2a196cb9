"""SISA: Sharded, Isolated, Sliced, Aggregated training (Bourtoule et al., "Machine Unlearning", S&P 2021).

The baseline DeepObliviate is compared against. The training ids are dealt at random (seeded) into ``S``
shards, and each shard's ids into ``R`` slices. Every shard trains its own model, incrementally: slice
``r`` trains ``epochs_per_slice`` epochs on the union of slices ``1..r``, continuing from the model and
optimizer state after slice ``r - 1``, and a checkpoint (model and optimizer state) is kept after every
slice. Predictions aggregate the ``S`` models (majority vote or mean probability).

Unlearning is exact: for every shard holding a deleted id, the shard is restored to its checkpoint before
the earliest slice holding one, and the remaining slices are retrained without the deleted ids. Slice
training goes through :func:`obliviate.training.train_block`, so the result equals, bit for bit on CPU,
an ensemble trained from scratch on the same shard/slice assignment without those ids.

Indexing: shards are numbered ``0..S-1`` (positions in :attr:`SisaEnsemble.models`); slices ``1..R`` like
DeepObliviate's blocks, checkpoint ``0`` being the shard's initial model and fresh optimizer.

Seeds: every random choice comes from :attr:`SisaConfig.seed`: the assignment, each shard's initial
weights (``model_factory`` is called under a torch seed derived from ``(seed, shard)``, so an unseeded
factory is deterministic too) and each shard's minibatch order (``train_block`` runs with
``training.seed`` replaced by a seed derived from ``(seed, shard)`` and ``block`` = slice, so every
(shard, slice) has its own stream and the learning-rate schedule spans a shard's ``R`` slices).

>>> import numpy as np
>>> from obliviate.data import from_arrays
>>> from obliviate.models import build_model
>>> x = np.random.default_rng(0).random((40, 1, 4, 4), dtype=np.float32)
>>> train = from_arrays(x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(int), num_classes=2, name="toy")
>>> config = SisaConfig(shards=2, slices=2, epochs_per_slice=1)
>>> ensemble = SisaEnsemble.train(config, train, lambda: build_model("mlp", (1, 4, 4), 2))
>>> ensemble.predict(train.x[:3]).shape
torch.Size([3])
>>> result = ensemble.forget([5])
>>> result.outcome, len(result.shards_affected), result.ids_deleted
('retrained', 1, [5])
>>> ensemble.forget([5]).outcome
'no-op'
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import IndexedDataset
from ..errors import ConfigError, RequestError, StoreError
from ..store import RunStore, flatten_optimizer_state, unflatten_optimizer_state
from ..training.block import make_optimizer, predict_logits, train_block
from ..training.chain import clone_state, load_state
from ..training.config import RunConfig, TrainingConfig

log = logging.getLogger(__name__)

ModelFactory = Callable[[], nn.Module]
State = dict[str, torch.Tensor]
KIND = "sisa-ensemble"

__all__ = ["SisaConfig", "SisaEnsemble", "SisaForgetResult", "aggregation_names", "prediction_latency",
           "register_aggregation"]


# -- aggregation --------------------------------------------------------------------------------------

Aggregation = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _vote(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Majority vote: probabilities are vote shares; ties go to the class with the higher mean probability."""
    counts = F.one_hot(probs.argmax(-1), probs.shape[-1]).sum(0).to(probs.dtype)
    # mean probabilities lie in [0, 1], so half of them never outweighs a whole vote: they only break ties
    return counts / probs.shape[0], counts + 0.5 * probs.mean(0)


def _mean_proba(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = probs.mean(0)
    return mean, mean


_AGGREGATIONS: dict[str, Aggregation] = {"vote": _vote, "mean_proba": _mean_proba}


def register_aggregation(name: str, fn: Aggregation) -> None:
    """Make ``fn`` available as an aggregation: it maps the shards' class probabilities ``(S, n, C)`` to
    ``(proba, scores)``, both ``(n, C)``: what ``predict_proba`` returns and what ``predict`` takes the
    argmax of."""
    _AGGREGATIONS[name] = fn


def aggregation_names() -> list[str]:
    return sorted(_AGGREGATIONS)


def _check_aggregation(name: Any, key: str = "aggregation") -> str:
    if not isinstance(name, str) or name not in _AGGREGATIONS:
        raise ConfigError(f"Expected `{key}` to be one of {', '.join(aggregation_names())}, but got {name!r}")
    return name


# -- configuration ------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SisaConfig:
    """Settings of a SISA ensemble.

    ``training`` supplies the optimizer, learning rate and its schedule (over a shard's ``R`` slices),
    batch size and weight decay; its ``blocks``, ``epochs_per_block``, ``partition``, ``order_file`` and
    ``seed`` are not used: ``slices``, ``epochs_per_slice`` and ``seed`` here take their place.

    >>> SisaConfig(shards=0)
    Traceback (most recent call last):
    ...
    obliviate.errors.ConfigError: Expected `shards` to be an int >= 1, but got 0
    """

    shards: int = 5
    slices: int = 4
    epochs_per_slice: int = 5
    aggregation: str = "vote"
    training: TrainingConfig = field(default_factory=TrainingConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("shards", "slices", "epochs_per_slice"):
            value = getattr(self, key)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"Expected `{key}` to be an int >= 1, but got {value!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"Expected `seed` to be an int >= 0, but got {self.seed!r}")
        _check_aggregation(self.aggregation)
        if not isinstance(self.training, TrainingConfig):
            raise ConfigError(f"Expected `training` to be an obliviate.training.config.TrainingConfig, "
                              f"but got {type(self.training).__name__}")
        # the run config's checks of the training keys, in the same words (keys SISA ignores neutralised)
        RunConfig(training=dataclasses.replace(self.training, blocks=1, partition="random", order_file=""))

    def shard_training(self, shard: int) -> TrainingConfig:
        """The :class:`TrainingConfig` that ``train_block`` gets for ``shard``."""
        return dataclasses.replace(self.training, blocks=self.slices, epochs_per_block=self.epochs_per_slice,
                                   seed=_derive(self.seed, 3, shard))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SisaConfig":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise ConfigError(f"unknown SISA key(s) {unknown}; allowed keys: {', '.join(names)}")
        values = dict(raw)
        if isinstance(values.get("training"), dict):
            tnames = {f.name for f in dataclasses.fields(TrainingConfig)}
            bad = sorted(set(values["training"]) - tnames)
            if bad:
                raise ConfigError(f"unknown key(s) {bad} in `training`; allowed keys: {', '.join(sorted(tnames))}")
            values["training"] = TrainingConfig(**values["training"])
        return cls(**values)


def _derive(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and small non-negative integers, stable across platforms."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


# -- result -------------------------------------------------------------------------------------------

@dataclass
class SisaForgetResult:
    """What a SISA forget request did.

    ``retrained`` has one entry per affected shard: ``{"shard", "from_slice", "slices_retrained", "ids"}``.
    ``samples_retrained`` and ``samples_total`` count sample-epochs (the training cost of the request and
    of training the ensemble from scratch on the data it holds now). ``speedup_vs_recorded`` divides the
    recorded full training time by this request's wall time.
    """

    ids_requested: list[int]
    ids_deleted: list[int]
    ids_already_deleted: list[int]
    shards_total: int
    slices_per_shard: int
    shards_affected: list[int]
    retrained: list[dict[str, Any]]
    slices_retrained: int
    slices_total: int
    samples_retrained: int
    samples_total: int
    outcome: str  # "retrained" or "no-op"
    wall_time_s: float = 0.0
    retrain_time_s: float = 0.0
    recorded_train_s: float = 0.0
    speedup_vs_recorded: float = float("nan")
    purged_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def noop(self) -> bool:
        return self.outcome == "no-op"


# -- checkpoints --------------------------------------------------------------------------------------

@dataclass
class _Checkpoint:
    """A shard's state after a slice: in memory (tensors) or in the store (refs)."""

    size: int  # samples the slice trained on (the union of slices 1..r)
    loss: float
    wall_time_s: float
    model: State | None = None
    optimizer: tuple[State, dict[str, str]] | None = None
    refs: dict[str, Any] | None = None

    def record(self, index: int) -> dict[str, Any]:
        loss = None if self.loss != self.loss else self.loss  # NaN (empty slice) is not JSON
        return {"index": index, "size": self.size, "loss": loss, "wall_time_s": self.wall_time_s, **(self.refs or {})}


def _partition_payload(assignment: list[list[np.ndarray]]) -> State:
    flat = [part for shard in assignment for part in shard]
    offsets = np.cumsum([0] + [len(p) for p in flat])
    ids = np.concatenate(flat) if flat else np.zeros(0)
    return {"ids": torch.from_numpy(ids.astype(np.int64)), "offsets": torch.from_numpy(offsets.astype(np.int64))}


def _partition_from_payload(tensors: State, shards: int, slices: int) -> list[list[np.ndarray]]:
    ids, offsets = tensors["ids"].numpy(), tensors["offsets"].numpy()
    if len(offsets) != shards * slices + 1:
        raise StoreError(f"the stored partition has {len(offsets) - 1} slices, the config says {shards} x {slices}")
    flat = [ids[offsets[i]:offsets[i + 1]].copy() for i in range(shards * slices)]
    return [flat[s * slices:(s + 1) * slices] for s in range(shards)]


# -- the ensemble -------------------------------------------------------------------------------------

class SisaEnsemble:
    """``S`` shard models trained on disjoint shards, with per-slice checkpoints for exact unlearning.

    Build one with :meth:`train`, reopen a stored one with :meth:`load`.
    """

    def __init__(self, config: SisaConfig, model_factory: ModelFactory, models: list[nn.Module],
                 assignment: list[list[np.ndarray]], checkpoints: list[list[_Checkpoint]], *,
                 train: IndexedDataset | None, deleted: np.ndarray, train_wall_s: float,
                 store: RunStore | None = None) -> None:
        self._config = config
        self._factory = model_factory
        self._models = models
        self._assignment = assignment
        self._checkpoints = checkpoints
        self._train = train
        self._deleted = np.sort(np.asarray(deleted, dtype=np.int64))
        self._train_wall_s = train_wall_s
        self._store = store
        self.requests: list[SisaForgetResult] = []

    # -- properties -------------------------------------------------------------------------------
    @property
    def config(self) -> SisaConfig:
        return self._config

    @property
    def models(self) -> tuple[nn.Module, ...]:
        """The shard models (shard ``s`` at position ``s``)."""
        return tuple(self._models)

    @property
    def assignment(self) -> list[list[np.ndarray]]:
        """Current ids of every shard's slices (deleted ids removed), ``assignment[s][r - 1]``, sorted; a copy.

        Pass it to :meth:`train` to train another ensemble on the same shards and slices."""
        return [[part.copy() for part in shard] for shard in self._assignment]

    @property
    def deleted_ids(self) -> list[int]:
        return self._deleted.tolist()

    @property
    def train_wall_s(self) -> float:
        """Wall time of training the whole ensemble, shard after shard (SISA can train shards in parallel;
        this is the total work), checkpoints included."""
        return self._train_wall_s

    @property
    def store_dir(self) -> Path | None:
        return None if self._store is None else self._store.root

    def shard_of(self, sample_id: int) -> tuple[int, int]:
        """``(shard, slice)`` holding a current (not deleted) id."""
        for s, shard in enumerate(self._assignment):
            for r, part in enumerate(shard, 1):
                i = np.searchsorted(part, sample_id)
                if i < len(part) and part[i] == sample_id:
                    return s, r
        raise RequestError(f"sample id {sample_id} is not in the ensemble"
                           f"{' (it was deleted)' if sample_id in set(self.deleted_ids) else ''}")

    # -- training ---------------------------------------------------------------------------------
    @classmethod
    def train(cls, config: SisaConfig, train: IndexedDataset, model_factory: ModelFactory, *,
              store_dir: str | Path | None = None,
              assignment: Sequence[Sequence[Sequence[int] | np.ndarray]] | None = None) -> "SisaEnsemble":
        """Train the ensemble on ``train``.

        ``model_factory()`` builds one untrained model (called once per shard, under a seed derived from
        ``(config.seed, shard)``). With ``store_dir`` (a new or empty folder) every checkpoint is written
        there as safetensors and the ensemble can be reopened with :meth:`load`; otherwise checkpoints
        stay in memory. ``assignment`` (``S`` lists of ``R`` id lists, covering every id of ``train``
        exactly once) replaces the seeded assignment, e.g. another ensemble's :attr:`assignment`.
        """
        if not isinstance(config, SisaConfig):
            raise ConfigError(f"Expected `config` to be a SisaConfig, but got {type(config).__name__}")
        parts = cls._check_assignment(config, train, assignment) if assignment is not None else \
            cls._seeded_assignment(config, train)
        store: RunStore | None = None
        if store_dir is not None:
            store = RunStore.create(Path(store_dir), {
                "kind": KIND, "status": "training", "revision": 0, "config": config.to_dict(),
                "data": {"name": train.name, "n_train": len(train)}})
        ensemble = cls(config, model_factory, [], parts, [], train=train, deleted=np.zeros(0, np.int64),
                       train_wall_s=0.0, store=store)
        if store is None:
            ensemble._train_all()
        else:
            with store.lock(exclusive=True):
                ensemble._train_all()
                store.commit(ensemble._manifest(status="complete"))
        return ensemble

    @staticmethod
    def _seeded_assignment(config: SisaConfig, train: IndexedDataset) -> list[list[np.ndarray]]:
        n, cells = len(train), config.shards * config.slices
        if n < cells:
            raise ConfigError(f"Expected `shards * slices` to be at most the {n} training samples, but got "
                              f"{config.shards} x {config.slices} = {cells}")
        ids = np.sort(train.ids.numpy())
        order = ids[np.random.default_rng([config.seed, 0x5157A]).permutation(n)]
        return [[np.sort(part) for part in np.array_split(shard, config.slices)]
                for shard in np.array_split(order, config.shards)]

    @staticmethod
    def _check_assignment(config: SisaConfig, train: IndexedDataset,
                          assignment: Sequence[Sequence[Sequence[int] | np.ndarray]]) -> list[list[np.ndarray]]:
        shape = (config.shards, config.slices)
        if len(assignment) != shape[0] or any(len(shard) != shape[1] for shard in assignment):
            raise ConfigError(f"Expected `assignment` to hold {shape[0]} shards of {shape[1]} slices each")
        parts = [[np.sort(np.asarray(part, dtype=np.int64).reshape(-1)) for part in shard] for shard in assignment]
        flat = np.concatenate([p for shard in parts for p in shard])
        have = np.sort(train.ids.numpy())
        if len(flat) != len(have) or not np.array_equal(np.sort(flat), have):
            extra = np.setdiff1d(flat, have)[:10].tolist()
            missing = np.setdiff1d(have, flat)[:10].tolist()
            dup = len(flat) - len(np.unique(flat))
            raise ConfigError(f"Expected `assignment` to hold every id of the training set exactly once "
                              f"(unknown: {extra}, missing: {missing}, duplicates: {dup})")
        return parts

    def _train_all(self) -> None:
        # timed from the built model and optimizer on (torch imports modules lazily when the first
        # optimizer of a process is built, seconds that would inflate every speedup against this time)
        total = 0.0
        for s in range(self._config.shards):
            model = self._new_model(s)
            optimizer = make_optimizer(model, self._config.training)
            t0 = time.perf_counter()
            checkpoints = [self._checkpoint(s, 0, model, optimizer, size=0, loss=float("nan"), wall=0.0)]
            checkpoints += self._train_slices(s, model, optimizer, self._assignment[s], 1)
            total += time.perf_counter() - t0
            self._models.append(model)
            self._checkpoints.append(checkpoints)
            log.info("SISA shard %d/%d trained", s + 1, self._config.shards)
        self._train_wall_s = total

    def _new_model(self, shard: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derive(self._config.seed, 2, shard))
            model = self._factory()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"Expected `model_factory` to return an nn.Module, but got {type(model).__name__}")
        return model

    def _train_slices(self, shard: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                      parts: list[np.ndarray], first: int) -> list[_Checkpoint]:
        """Train slices ``first..R`` of ``shard`` (model and optimizer hold the state after ``first - 1``)."""
        train = self._require_train()
        cfg = self._config.shard_training(shard)
        R = self._config.slices
        device = next(model.parameters()).device
        out = []
        for r in range(first, R + 1):
            union = np.sort(np.concatenate(parts[:r]))
            pos = train.positions(torch.from_numpy(union))
            t0 = time.perf_counter()
            loss = train_block(model, optimizer, train.x[pos].to(device), train.y[pos].to(device),
                               block=r, num_blocks=R, cfg=cfg)
            wall = time.perf_counter() - t0
            out.append(self._checkpoint(shard, r, model, optimizer, size=len(union), loss=loss, wall=wall))
        return out

    def _checkpoint(self, shard: int, r: int, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                    size: int, loss: float, wall: float) -> _Checkpoint:
        state = clone_state(model)
        opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
        if self._store is None:
            return _Checkpoint(size, loss, wall, model=state, optimizer=(opt_tensors, opt_meta))
        tag = f"s{shard:03d}-r{r:03d}"
        refs = {"model": self._store.put(f"{tag}-model", state),
                "optimizer": self._store.put(f"{tag}-optimizer", opt_tensors, opt_meta)}
        return _Checkpoint(size, loss, wall, refs=refs)

    def _restore(self, shard: int, r: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A fresh model and optimizer holding ``shard``'s state after slice ``r``."""
        ck = self._checkpoints[shard][r]
        if ck.refs is not None:
            assert self._store is not None
            state = self._store.get(ck.refs["model"])
            opt_tensors, opt_meta = self._store.get_with_metadata(ck.refs["optimizer"])
        else:
            assert ck.model is not None and ck.optimizer is not None
            state, (opt_tensors, opt_meta) = ck.model, ck.optimizer
        model = self._new_model(shard)
        load_state(model, state)
        optimizer = make_optimizer(model, self._config.training)
        optimizer.load_state_dict(unflatten_optimizer_state(opt_tensors, opt_meta))
        return model, optimizer

    def _require_train(self) -> IndexedDataset:
        if self._train is None:
            raise StoreError("this ensemble was loaded without its training data; reopen it with "
                             "SisaEnsemble.load(store_dir, model_factory, train=...) to forget")
        return self._train

    # -- storing ----------------------------------------------------------------------------------
    def _manifest(self, *, status: str, assignment: list[list[np.ndarray]] | None = None,
                  deleted: np.ndarray | None = None, checkpoints: list[list[_Checkpoint]] | None = None,
                  request: dict[str, Any] | None = None) -> dict[str, Any]:
        store = self._store
        assert store is not None
        assignment = self._assignment if assignment is None else assignment
        deleted = self._deleted if deleted is None else deleted
        checkpoints = self._checkpoints if checkpoints is None else checkpoints
        manifest = dict(store.manifest)
        kept = np.sort(np.concatenate([p for shard in assignment for p in shard]))
        train = self._require_train()
        manifest.update({
            "status": status,
            "revision": int(manifest.get("revision", 0)) + 1,
            "partition": store.put("partition", _partition_payload(assignment)),
            "deleted": store.put("deleted", {"ids": torch.from_numpy(np.asarray(deleted, dtype=np.int64))}),
            "data": {**manifest.get("data", {}), "n_kept": int(len(kept)),
                     "kept_fingerprint": train.select(torch.from_numpy(kept)).fingerprint()},
            "timing": {"train_wall_s": self._train_wall_s},
            "shards": [{"slices": [ck.record(r) for r, ck in enumerate(shard)]} for shard in checkpoints],
            "requests": [*manifest.get("requests", []), *([request] if request else [])],
        })
        return manifest

    @classmethod
    def load(cls, store_dir: str | Path, model_factory: ModelFactory, *,
             train: IndexedDataset | None = None) -> "SisaEnsemble":
        """Reopen an ensemble trained with ``store_dir``. Every payload is checked against its content
        hash before use (:class:`~obliviate.errors.IntegrityError` when altered). ``train`` (the training
        set, with or without the deleted samples) is needed only to forget."""
        store = RunStore.open(store_dir)
        with store.lock(exclusive=False):
            store.reload()
            m = store.manifest
            if m.get("kind") != KIND:
                raise StoreError(f"{store.root} is not a SISA ensemble (kind {m.get('kind')!r})")
            if m.get("status") != "complete":
                raise StoreError(f"{store.root} holds a SISA ensemble whose training did not finish; train again")
            config = SisaConfig.from_dict(m["config"])
            assignment = _partition_from_payload(store.get(m["partition"]), config.shards, config.slices)
            deleted = store.get(m["deleted"])["ids"].numpy()
            if train is not None:
                kept = np.sort(np.concatenate([p for shard in assignment for p in shard]))
                try:
                    fingerprint = train.select(torch.from_numpy(kept)).fingerprint()
                except RequestError:
                    fingerprint = None
                if fingerprint != m["data"]["kept_fingerprint"]:
                    raise StoreError(f"`train` is not the data {store.root} was trained on (its samples or "
                                     f"labels differ, or ids are missing); pass the original training set")
            checkpoints = [[_Checkpoint(rec["size"], rec["loss"] if rec["loss"] is not None
                                        else float("nan"), rec["wall_time_s"],
                                        refs={"model": rec["model"], "optimizer": rec["optimizer"]})
                            for rec in shard["slices"]] for shard in m["shards"]]
            ensemble = cls(config, model_factory, [], assignment, checkpoints, train=train, deleted=deleted,
                           train_wall_s=float(m["timing"]["train_wall_s"]), store=store)
            for s in range(config.shards):
                model, _ = ensemble._restore(s, config.slices)
                ensemble._models.append(model)
        return ensemble

    # -- unlearning -------------------------------------------------------------------------------
    def forget(self, ids: Sequence[int] | torch.Tensor | np.ndarray) -> SisaForgetResult:
        """Exactly unlearn ``ids``: retrain every affected shard from its checkpoint before the earliest
        slice holding one of them. Ids the ensemble never had raise :class:`~obliviate.errors.RequestError`
        (nothing changes); ids already deleted are reported and skipped (all of them: a no-op).

        Atomic: in memory and in the store, the ensemble is the old one or the new one, never a mix; with a
        store, the checkpoints that still hold the deleted samples are purged from the folder.
        """
        t0 = time.perf_counter()
        requested = [int(i) for i in np.asarray(torch.as_tensor(ids, dtype=torch.int64)).reshape(-1)]
        if not requested:
            raise RequestError("the request names no sample ids; give at least one id to forget")
        unique = np.unique(np.asarray(requested, dtype=np.int64))
        current = np.sort(np.concatenate([p for shard in self._assignment for p in shard]))
        already = unique[np.isin(unique, self._deleted)]
        unknown = unique[~np.isin(unique, current) & ~np.isin(unique, self._deleted)]
        if len(unknown):
            shown = unknown[:20].tolist()
            raise RequestError(f"unknown sample ids {shown}{' ...' if len(unknown) > 20 else ''}: the ensemble "
                               f"was never trained on them; check the ids (nothing was changed)")
        new = unique[np.isin(unique, current)]
        S, R = self._config.shards, self._config.slices
        base = dict(ids_requested=requested, ids_deleted=new.tolist(), ids_already_deleted=already.tolist(),
                    shards_total=S, slices_per_shard=R, slices_total=S * R,
                    recorded_train_s=self._train_wall_s)
        if not len(new):
            wall = time.perf_counter() - t0
            return self._finish(SisaForgetResult(**base, shards_affected=[], retrained=[], slices_retrained=0,
                                                 samples_retrained=0, samples_total=self._samples_total(),
                                                 outcome="no-op", wall_time_s=wall))
        self._require_train()
        if self._store is None:
            result = self._retrain(new, base)
        else:
            with self._store.lock(exclusive=True):
                revision = self._store.manifest.get("revision")
                self._store.reload()
                if self._store.manifest.get("revision") != revision:
                    raise StoreError(f"{self._store.root} was changed by another process since it was loaded; "
                                     f"reload it with SisaEnsemble.load and repeat the request")
                result = self._retrain(new, base)
        result.wall_time_s = time.perf_counter() - t0
        result.speedup_vs_recorded = self._train_wall_s / result.wall_time_s
        return self._finish(result)

    def _retrain(self, new: np.ndarray, base: dict[str, Any]) -> SisaForgetResult:
        """Retrain the shards holding ``new``, commit (store: manifest, then purge), then swap in memory."""
        S, R = self._config.shards, self._config.slices
        assignment = [[part[~np.isin(part, new)] for part in shard] for shard in self._assignment]
        checkpoints = [list(shard) for shard in self._checkpoints]
        models = list(self._models)
        retrained: list[dict[str, Any]] = []
        samples = 0
        t_train = 0.0
        for s in range(S):
            hit = [r for r in range(1, R + 1) if np.isin(self._assignment[s][r - 1], new).any()]
            if not hit:
                continue
            first = hit[0]
            model, optimizer = self._restore(s, first - 1)
            t1 = time.perf_counter()
            fresh = self._train_slices(s, model, optimizer, assignment[s], first)
            t_train += time.perf_counter() - t1
            checkpoints[s][first:] = fresh
            models[s] = model
            shard_ids = np.concatenate(self._assignment[s])
            retrained.append({"shard": s, "from_slice": first, "slices_retrained": R - first + 1,
                              "ids": shard_ids[np.isin(shard_ids, new)].tolist()})
            samples += sum(ck.size for ck in fresh) * self._config.epochs_per_slice
        deleted = np.union1d(self._deleted, new)
        result = SisaForgetResult(**base, shards_affected=[e["shard"] for e in retrained], retrained=retrained,
                                  slices_retrained=sum(e["slices_retrained"] for e in retrained),
                                  samples_retrained=samples, samples_total=self._samples_total(assignment),
                                  outcome="retrained",
                                  retrain_time_s=t_train)
        if self._store is not None:
            summary = {k: v for k, v in result.to_dict().items()
                       if k not in ("purged_files", "wall_time_s", "speedup_vs_recorded")}
            self._store.commit(self._manifest(status="complete", assignment=assignment, deleted=deleted,
                                              checkpoints=checkpoints, request=summary))
            result.purged_files = self._store.collect_garbage()
        self._assignment, self._checkpoints, self._models, self._deleted = assignment, checkpoints, models, deleted
        return result

    def _samples_total(self, assignment: list[list[np.ndarray]] | None = None) -> int:
        """Sample-epochs of training the ensemble from scratch on its current data (or on ``assignment``)."""
        parts = self._assignment if assignment is None else assignment
        return int(sum(np.cumsum([len(p) for p in shard]).sum() for shard in parts)) * self._config.epochs_per_slice

    def _finish(self, result: SisaForgetResult) -> SisaForgetResult:
        self.requests.append(result)
        log.info("SISA forget: %s, shards %s, %d slices retrained in %.3f s", result.outcome,
                 result.shards_affected, result.slices_retrained, result.wall_time_s)
        return result

    # -- prediction -------------------------------------------------------------------------------
    @torch.no_grad()
    def shard_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Every shard model's class probabilities on ``x``, shape ``(S, n, C)``, on the CPU."""
        out = []
        for model in self._models:
            device = next(model.parameters()).device
            out.append(torch.softmax(predict_logits(model, x.to(device)), dim=-1).cpu())
        return torch.stack(out)

    def predict_proba(self, x: torch.Tensor, *, aggregation: str | None = None) -> torch.Tensor:
        """Aggregated class probabilities ``(n, C)``; for ``vote``, the share of shards voting each class.

        ``aggregation`` overrides the configured one (it does not affect training)."""
        fn = _AGGREGATIONS[_check_aggregation(aggregation or self._config.aggregation)]
        return fn(self.shard_proba(x))[0]

    def predict(self, x: torch.Tensor, *, aggregation: str | None = None) -> torch.Tensor:
        """Predicted labels ``(n,)``; a tied vote goes to the tied class with the higher mean probability."""
        fn = _AGGREGATIONS[_check_aggregation(aggregation or self._config.aggregation)]
        return fn(self.shard_proba(x))[1].argmax(-1)

    def evaluate(self, test: IndexedDataset, *, aggregation: str | None = None) -> float:
        """Accuracy of the aggregated prediction on ``test``."""
        if len(test) == 0:
            return float("nan")
        return float((self.predict(test.x, aggregation=aggregation) == test.y).float().mean())

    def prediction_latency(self, x: torch.Tensor, repeats: int = 20, *, aggregation: str | None = None) -> float:
        """Median wall time, in seconds, of one batched :meth:`predict` on ``x`` (after one warm-up call).

        Compare with :func:`prediction_latency` of a single model on the same ``x``."""
        return _median_time(lambda: self.predict(x, aggregation=aggregation), repeats)


def prediction_latency(model: nn.Module, x: torch.Tensor, repeats: int = 20) -> float:
    """Median wall time of one batched prediction (argmax of the logits) of a single ``model`` on ``x``:
    the other side of the SISA latency comparison (measured the same way as
    :meth:`SisaEnsemble.prediction_latency`)."""
    device = next(model.parameters()).device
    return _median_time(lambda: predict_logits(model, x.to(device)).argmax(-1).cpu(), repeats)


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    if not _is_int(repeats) or repeats < 1:
        raise ConfigError(f"Expected `repeats` to be an int >= 1, but got {repeats!r}")
    fn()  # warm-up (allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
