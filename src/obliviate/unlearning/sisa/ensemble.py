"""The SISA ensemble: ``S`` shard models with per-slice checkpoints, trained, forgotten, stored, queried."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data.base import IndexedDataset
from ...errors import ConfigError, RequestError, StoreError
from ...store import RunStore
from ...training.trainer import Trainer, resolve_trainer, trainer_for_run
from . import persistence, prediction, training
from .config import SisaConfig
from .forgetting import SisaForgetResult, affected_shards, split_request
from .persistence import KIND, Checkpoint, CheckpointKeeper
from .training import ModelFactory

log = logging.getLogger(__name__)


class SisaEnsemble:
    """``S`` shard models trained on disjoint shards, with per-slice checkpoints for exact unlearning.

    Build one with :meth:`train`, reopen a stored one with :meth:`load`. Shards are numbered ``0..S-1``
    (positions in :attr:`models`), slices ``1..R``; checkpoint ``0`` is a shard's initial model and fresh
    optimizer.
    """

    def __init__(self, config: SisaConfig, model_factory: ModelFactory, models: list[nn.Module],
                 assignment: list[list[np.ndarray]], checkpoints: list[list[Checkpoint]], *,
                 train: IndexedDataset | None, deleted: np.ndarray, train_wall_s: float,
                 store: RunStore | None = None, trainer: Trainer | None = None) -> None:
        self._config = config
        self._trainer = resolve_trainer(trainer)
        self._factory = model_factory
        self._models = models
        self._assignment = assignment
        self._checkpoints = checkpoints
        self._train = train
        self._deleted = np.sort(np.asarray(deleted, dtype=np.int64))
        self._train_wall_s = train_wall_s
        self._store = store
        self._keeper = CheckpointKeeper(store)
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
        deleted: list[int] = self._deleted.tolist()
        return deleted

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
              assignment: Sequence[Sequence[Sequence[int] | np.ndarray]] | None = None,
              trainer: Trainer | str | None = None) -> SisaEnsemble:
        """Train the ensemble on ``train``.

        ``model_factory()`` builds one untrained model (called once per shard, under a seed derived from
        ``(config.seed, shard)``). With ``store_dir`` (a new or empty folder) every checkpoint is written
        there as safetensors and the ensemble can be reopened with :meth:`load`; otherwise checkpoints
        stay in memory. ``assignment`` (``S`` lists of ``R`` id lists, covering every id of ``train``
        exactly once) replaces the seeded assignment, e.g. another ensemble's :attr:`assignment`.
        ``trainer`` (:mod:`obliviate.training.trainer`) trains every minibatch, in training and in forgetting.
        """
        chosen = resolve_trainer(trainer)
        if not isinstance(config, SisaConfig):
            raise ConfigError(f"Expected `config` to be a SisaConfig, but got {type(config).__name__}")
        parts = training.check_assignment(config, train, assignment) if assignment is not None else \
            training.seeded_assignment(config, train)
        store: RunStore | None = None
        if store_dir is not None:
            store = RunStore.create(Path(store_dir), {
                "kind": KIND, "status": "training", "revision": 0, "config": config.to_dict(),
                "data": {"name": train.name, "n_train": len(train)}, "trainer": chosen.describe()})
        ensemble = cls(config, model_factory, [], parts, [], train=train, deleted=np.zeros(0, np.int64),
                       train_wall_s=0.0, store=store, trainer=chosen)
        if store is None:
            ensemble._train_all()
        else:
            with store.lock(exclusive=True):
                ensemble._train_all()
                store.commit(ensemble._manifest(status="complete"))
        return ensemble

    def _train_all(self) -> None:
        train = self._require_train()
        for s in range(self._config.shards):
            model, checkpoints, wall = training.train_shard(self._config, train, self._factory, self._keeper, s,
                                                            self._assignment[s], self._trainer)
            self._train_wall_s += wall
            self._models.append(model)
            self._checkpoints.append(checkpoints)
            log.info("SISA shard %d/%d trained in %.2f s", s + 1, self._config.shards, wall)

    def _require_train(self) -> IndexedDataset:
        if self._train is None:
            raise StoreError("this ensemble was loaded without its training data; reopen it with "
                             "SisaEnsemble.load(store_dir, model_factory, train=...) to forget")
        return self._train

    # -- storing ----------------------------------------------------------------------------------
    def _manifest(self, *, status: str, assignment: list[list[np.ndarray]] | None = None,
                  deleted: np.ndarray | None = None, checkpoints: list[list[Checkpoint]] | None = None,
                  request: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._store is not None
        assignment = self._assignment if assignment is None else assignment
        kept = np.sort(np.concatenate([p for shard in assignment for p in shard]))
        fingerprint = self._require_train().select(torch.from_numpy(kept)).fingerprint()
        return persistence.build_manifest(
            self._store, status=status, assignment=assignment,
            deleted=self._deleted if deleted is None else deleted,
            checkpoints=self._checkpoints if checkpoints is None else checkpoints,
            kept_fingerprint=fingerprint, train_wall_s=self._train_wall_s, request=request)

    @classmethod
    def load(cls, store_dir: str | Path, model_factory: ModelFactory, *,
             train: IndexedDataset | None = None, trainer: Trainer | str | None = None) -> SisaEnsemble:
        """Reopen an ensemble trained with ``store_dir``. Every payload is checked against its content
        hash before use (:class:`~obliviate.errors.IntegrityError` when altered). ``train`` (the training
        set, with or without the deleted samples) is needed only to forget."""
        store = RunStore.open(store_dir)
        with store.lock(exclusive=False):
            store.reload()
            m, assignment, deleted, checkpoints = persistence.read_manifest(store)
            config = SisaConfig.from_dict(m["config"])
            chosen = trainer_for_run(m.get("trainer"), trainer, store.root)
            if train is not None:
                kept = np.sort(np.concatenate([p for shard in assignment for p in shard]))
                try:
                    fingerprint = train.select(torch.from_numpy(kept)).fingerprint()
                except RequestError:
                    fingerprint = None
                if fingerprint != m["data"]["kept_fingerprint"]:
                    raise StoreError(f"`train` is not the data {store.root} was trained on (its samples or "
                                     f"labels differ, or ids are missing); pass the original training set")
            ensemble = cls(config, model_factory, [], assignment, checkpoints, train=train, deleted=deleted,
                           train_wall_s=float(m["timing"]["train_wall_s"]), store=store, trainer=chosen)
            for s in range(config.shards):
                model, _ = training.restore(config, model_factory, ensemble._keeper, s, checkpoints[s][-1], chosen)
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
        current = np.sort(np.concatenate([p for shard in self._assignment for p in shard]))
        requested, new, already = split_request(ids, current, self._deleted)
        S, R = self._config.shards, self._config.slices
        base = dict(ids_requested=requested, ids_deleted=new.tolist(), ids_already_deleted=already.tolist(),
                    shards_total=S, slices_per_shard=R, slices_total=S * R, recorded_train_s=self._train_wall_s)
        if not len(new):
            return self._finish(SisaForgetResult(**base, shards_affected=[], retrained=[], slices_retrained=0,
                                                 samples_retrained=0, samples_total=self._samples_total(),
                                                 outcome="no-op", wall_time_s=time.perf_counter() - t0))
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
        R = self._config.slices
        train = self._require_train()
        assignment = [[part[~np.isin(part, new)] for part in shard] for shard in self._assignment]
        checkpoints = [list(shard) for shard in self._checkpoints]
        models = list(self._models)
        retrained: list[dict[str, Any]] = []
        samples = 0
        t_train = 0.0
        for s, first in affected_shards(self._assignment, new):
            model, optimizer = training.restore(self._config, self._factory, self._keeper, s,
                                                self._checkpoints[s][first - 1], self._trainer)
            t1 = time.perf_counter()
            fresh = training.train_slices(self._config, train, self._keeper, s, model, optimizer, assignment[s],
                                          first, self._trainer)
            t_train += time.perf_counter() - t1
            checkpoints[s][first:] = fresh
            models[s] = model
            shard_ids = np.concatenate(self._assignment[s])
            retrained.append({"shard": s, "from_slice": first, "slices_retrained": R - first + 1,
                              "ids": shard_ids[np.isin(shard_ids, new)].tolist()})
            samples += training.sample_epochs(self._config, assignment[s], first)
        deleted = np.union1d(self._deleted, new)
        result = SisaForgetResult(**base, shards_affected=[e["shard"] for e in retrained], retrained=retrained,
                                  slices_retrained=sum(e["slices_retrained"] for e in retrained),
                                  samples_retrained=samples, samples_total=self._samples_total(assignment),
                                  outcome="retrained", retrain_time_s=t_train)
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
        return sum(training.sample_epochs(self._config, shard) for shard in parts)

    def _finish(self, result: SisaForgetResult) -> SisaForgetResult:
        self.requests.append(result)
        log.info("SISA forget: %s, shards %s, %d slices retrained in %.3f s", result.outcome,
                 result.shards_affected, result.slices_retrained, result.wall_time_s)
        return result

    # -- prediction -------------------------------------------------------------------------------
    def shard_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Every shard model's class probabilities on ``x``, shape ``(S, n, C)``, on the CPU."""
        return prediction.shard_proba(self._models, x)

    def predict_proba(self, x: torch.Tensor, *, aggregation: str | None = None) -> torch.Tensor:
        """Aggregated class probabilities ``(n, C)``; for ``vote``, the share of shards voting each class.

        ``aggregation`` overrides the configured one (it does not affect training)."""
        return prediction.aggregate(self.shard_proba(x), aggregation or self._config.aggregation)[0]

    def predict(self, x: torch.Tensor, *, aggregation: str | None = None) -> torch.Tensor:
        """Predicted labels ``(n,)``; a tied vote goes to the tied class with the higher mean probability."""
        return prediction.aggregate(self.shard_proba(x), aggregation or self._config.aggregation)[1].argmax(-1)

    def evaluate(self, test: IndexedDataset, *, aggregation: str | None = None) -> float:
        """Accuracy of the aggregated prediction on ``test``."""
        if len(test) == 0:
            return float("nan")
        return float((self.predict(test.x, aggregation=aggregation) == test.y).float().mean())

    def prediction_latency(self, x: torch.Tensor, repeats: int = 20, *, aggregation: str | None = None) -> float:
        """Median wall time, in seconds, of one batched :meth:`predict` on ``x`` (after one warm-up call).

        Compare with :func:`prediction_latency` of a single model on the same ``x``."""
        return prediction.median_time(lambda: self.predict(x, aggregation=aggregation), repeats)
