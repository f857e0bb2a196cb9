"""A recorded run, opened: its store, its configuration and its data, ready to train or unlearn.

>>> import tempfile
>>> from obliviate.training import RunConfig, train_run
>>> cfg = RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}})
>>> run = train_run(cfg, tempfile.mkdtemp() + "/run")
>>> run.num_blocks, run.status, len(run.block_ids(1)) + len(run.block_ids(2)) == len(run.train)
(2, 'complete', True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import DatasetSplits, IndexedDataset, load_dataset, seeded_split
from ..data.memorised import memorised_user_ids, plant_memorised
from ..data.triggers import PatchTrigger, plant_backdoor
from ..data.fingerprints import changes
from ..errors import ConfigError, DataChangedError, IntegrityError, StoreError, StoreFormatError
from ..models import build_model
from ..store import RunStore
from .block import BlockRows, evaluate, predict_logits, resolve_device
from .chain import load_state, state_after
from .config import CUSTOM_MODEL, RunConfig
from .manifest import RunManifest, typed
from .trainer import DEFAULT as DEFAULT_TRAINER, Trainer, trainer_for_run

ModelFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class RunData:
    """The data a run trains on: the trainable pool (blocks), the held-out validation set, the test set."""

    train: IndexedDataset
    validation: IndexedDataset
    test: IndexedDataset
    fingerprint: str
    source: DatasetSplits | None = None  # the splits as loaded (for the per-sample record)


def prepare_data(config: RunConfig, splits: DatasetSplits | None = None) -> RunData:
    """Load the configured dataset (unless ``splits`` is given) and carve the validation set."""
    if splits is None:
        splits = load_dataset(config.data.name, **config.data.options)
    train = splits.train
    if train.fetch is not None and (config.canary.block or config.memorised.users):
        raise ConfigError("a canary or memorised users are planted into in-memory samples; a torch Dataset's samples "
                          "are fetched per minibatch: set canary.block = 0 and memorised.users = 0")
    frac = config.data.validation_fraction
    if frac > 0:
        tr, va = seeded_split(len(train), frac, config.training.seed + 7919)
        validation, train = train.take(torch.from_numpy(va)), train.take(torch.from_numpy(tr))
    else:
        validation = train.take(torch.zeros(0, dtype=torch.int64))
    fp = _fingerprint(splits)
    return RunData(train, validation, splits.test, fp, splits)


def check_source(store: RunStore, splits: DatasetSplits, name: str) -> None:
    """Refuse source data that changed since the run was recorded, naming the samples; samples deleted by
    a forget request may be missing (erasing them from the source is what the request asks for)."""
    m = typed(store.manifest)
    assert m.samples is not None  # the caller checked
    problems = changes(store.get_with_metadata(m.samples), splits, m.deleted_ids())
    if problems:
        shown = "; ".join(problems[:12]) + (f"; and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise DataChangedError(f"the data loaded for {store.root} ({name}) differs from the data the run was "
                               f"trained on: {shown}. Restore the original files, or point data.options at them "
                               f"(only samples a forget request deleted may be removed from the source)")


def reopen_data(config: RunConfig, store: RunStore, splits: DatasetSplits | None = None) -> RunData:
    """The run's data from its source, checked sample by sample against the record made at training.

    The validation set is the recorded one (not re-drawn), so samples erased from the source after
    being forgotten change nothing else. Runs recorded before per-sample fingerprints are checked with
    their single whole-data fingerprint.
    """
    m = store.manifest
    if "samples" not in m:
        data = prepare_data(config, splits)
        if data.fingerprint != m["data"]["fingerprint"]:
            raise DataChangedError(f"the data loaded for {store.root} ({config.data.name}) differs from the data "
                                   f"the run was trained on (fingerprint mismatch); point data.options at the "
                                   f"original files")
        return data
    if splits is None:
        splits = load_dataset(config.data.name, **config.data.options)
    check_source(store, splits, config.data.name)
    validation_ids = store.get(m["partition"])["validation"]
    is_val = torch.isin(splits.train.ids, validation_ids)
    return RunData(splits.train.take(torch.nonzero(~is_val).reshape(-1)),
                   splits.train.take(torch.nonzero(is_val).reshape(-1)), splits.test, m["data"]["fingerprint"],
                   splits)


def _fingerprint(splits: DatasetSplits) -> str:
    import hashlib

    return hashlib.sha256((splits.train.fingerprint() + splits.test.fingerprint()).encode()).hexdigest()


def canary_trigger(config: RunConfig) -> PatchTrigger:
    return PatchTrigger(size=config.canary.trigger_size, value=config.canary.trigger_value,
                        pattern=config.canary.trigger_pattern)


def choose_canary_ids(config: RunConfig, train: IndexedDataset, block_ids: np.ndarray) -> list[int]:
    """The canary user's samples: ``count`` samples of the chosen block whose label is not the target."""
    c = config.canary
    labels = train.y[train.positions(torch.from_numpy(block_ids))].numpy()
    eligible = block_ids[labels != c.target]
    rng = np.random.default_rng([config.training.seed, 0xCA7A])
    if len(eligible) < c.count:
        raise StoreError(f"block {c.block} has only {len(eligible)} samples eligible for a canary of "
                         f"{c.count}; lower canary.count or use fewer blocks")
    return sorted(rng.choice(eligible, size=c.count, replace=False).tolist())


def partition_payload(blocks: list[np.ndarray], validation_ids: np.ndarray,
                      recorded: list[np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Block membership as a tensor payload (read back by ``Run._partition``).

    ``blocks``: the current members of each block; ``recorded``: the members each block was recorded
    with (deleted ids included: only their integer ids, never their data), which fixes the minibatch
    layout every later replay of the block uses (see ``train_block``). Defaults to ``blocks``.
    """
    recorded = blocks if recorded is None else recorded
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    slot_offsets = np.cumsum([0] + [len(b) for b in recorded])
    return {"ids": torch.from_numpy(np.concatenate(blocks).astype(np.int64)),
            "offsets": torch.from_numpy(offsets.astype(np.int64)),
            "recorded_ids": torch.from_numpy(np.concatenate(recorded).astype(np.int64)),
            "recorded_offsets": torch.from_numpy(slot_offsets.astype(np.int64)),
            "validation": torch.from_numpy(np.asarray(validation_ids, dtype=np.int64))}


@dataclass(frozen=True)
class BlockData:
    """What training block ``k`` reads: rows of the training pool and their recorded minibatch slots."""

    positions: torch.Tensor  # rows of ``run.train`` (the retained members, canonical id order)
    slots: torch.Tensor | None  # each row's position among the recorded members; None: no member deleted
    num_slots: int

    def __len__(self) -> int:
        return len(self.positions)


def build_run_model(config: RunConfig, train: IndexedDataset, model_factory: ModelFactory | None = None,
                    device: str | None = None) -> nn.Module:
    """A fresh model for ``config``: the user's zero-argument ``model_factory`` when given, else the
    configured factory (``model.factory``, an import path) or registered model, seeded by ``training.seed``;
    on ``device`` (default: the training device, ``training.device``)."""
    if model_factory is not None:
        model = model_factory()
    else:
        m = config.model
        model = build_model(m.factory or m.name, train.input_shape, train.num_classes, seed=config.training.seed,
                            **m.options)
    where = resolve_device(config.training.device if device is None else device)
    return model if where.type == "cpu" else model.to(where)


def check_model_factory(config: RunConfig, where: str = "") -> None:
    """Import the configured ``model.factory`` (or look up ``model.name``) now, so a missing package or an
    unknown name fails before anything is done.

    ``where``: the run it was recorded in (named in the message, with the ways out)."""
    m = config.model
    if m.name == CUSTOM_MODEL and not m.factory:  # a model given in Python (model_factory=)
        return
    from ..models import model_builder

    try:
        model_builder(m.factory or m.name)
    except ConfigError as exc:
        if not where or not m.factory:
            raise
        raise ConfigError(f"{where} was trained on the model factory {config.model.factory!r}, which cannot be "
                          f"used here: {exc} (in Python you may instead pass model_factory= to open_run)") from None


class Run:
    """An opened run store with its data. Use :func:`open_run` or :func:`~obliviate.training.train_run`."""

    def __init__(self, store: RunStore, config: RunConfig, data: RunData,
                 model_factory: ModelFactory | None = None, trainer: Trainer | None = None) -> None:
        self.store = store
        self.config = config
        self.data = data
        self._model_factory = model_factory
        #: What trains each minibatch (:mod:`obliviate.training.trainer`): recording, replay, the engine,
        #: the oracles all train the run's blocks with it.
        self.trainer = DEFAULT_TRAINER if trainer is None else trainer
        self._partition_cache: tuple[str, list[np.ndarray], np.ndarray, list[np.ndarray]] | None = None

    # -- basic facts -----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.store.root

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as stored (plain JSON); :attr:`record` is its typed view."""
        return self.store.manifest

    @property
    def record(self) -> RunManifest:
        """The typed manifest: run, block and request records (:mod:`obliviate.training.manifest`)."""
        return typed(self.store.manifest)

    @property
    def num_blocks(self) -> int:
        return self.config.training.blocks

    @property
    def status(self) -> str:
        return str(self.record.status or None)

    @property
    def train(self) -> IndexedDataset:
        return self.data.train

    @property
    def validation(self) -> IndexedDataset:
        return self.data.validation

    @property
    def test(self) -> IndexedDataset:
        return self.data.test

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("requests", []))

    def deleted_ids(self) -> set[int]:
        return self.record.deleted_ids()

    def canary_ids(self) -> list[int]:
        return self.record.canary_ids()

    def memorised_users(self) -> list[list[int]]:
        """The planted memorised users (config ``[memorised]``), each a list of sample ids."""
        return memorised_user_ids(self.manifest)

    # -- membership ------------------------------------------------------------------------------
    def _partition(self) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
        ref = self.manifest["partition"]
        if self._partition_cache is None or self._partition_cache[0] != ref["sha256"]:
            t = self.store.get(ref)
            ids, offsets = t["ids"].numpy(), t["offsets"].numpy()
            blocks = [ids[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
            if "recorded_ids" in t:
                rids, roff = t["recorded_ids"].numpy(), t["recorded_offsets"].numpy()
                recorded = [rids[roff[i]:roff[i + 1]] for i in range(len(roff) - 1)]
            else:  # runs written before recorded slots were kept: the current members are the layout
                recorded = blocks
            self._partition_cache = (ref["sha256"], blocks, t["validation"].numpy(), recorded)
        return self._partition_cache[1], self._partition_cache[2], self._partition_cache[3]

    def block_ids(self, k: int) -> np.ndarray:
        """Current members of block ``k`` (1-based), sorted: deleted samples are gone."""
        return self._partition()[0][k - 1]

    def recorded_block_ids(self, k: int) -> np.ndarray:
        """The members block ``k`` was recorded with (sorted), deleted ones included (ids only)."""
        return self._partition()[2][k - 1]

    def all_recorded_block_ids(self) -> list[np.ndarray]:
        return list(self._partition()[2])

    def all_block_ids(self) -> list[np.ndarray]:
        return list(self._partition()[0])

    def block_of(self) -> dict[int, int]:
        """Map from every current training id to its block (1-based). Do not modify the result."""
        blocks = self._partition()[0]
        key = self.manifest["partition"]["sha256"]
        if getattr(self, "_block_of_cache", (None,))[0] != key:
            self._block_of_cache = (key, {int(i): k + 1 for k, ids in enumerate(blocks) for i in ids.tolist()})
        return self._block_of_cache[1]

    def block_data(self, k: int, exclude: set[int] | frozenset[int] = frozenset()) -> BlockData:
        """The rows block ``k`` trains on, without the ids in ``exclude``, with their recorded slots."""
        current = self.block_ids(k)
        if exclude:
            current = current[~np.isin(current, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))]
        recorded = self.recorded_block_ids(k)
        positions = self.train.positions(torch.from_numpy(np.ascontiguousarray(current)))
        if len(current) == len(recorded):
            return BlockData(positions, None, len(recorded))
        slots = torch.from_numpy(np.searchsorted(recorded, current).astype(np.int64))
        return BlockData(positions, slots, len(recorded))

    def rows(self, positions: torch.Tensor) -> BlockRows:
        """Rows ``positions`` of the training pool, as a block trains on them."""
        return BlockRows.of(self.train, positions)

    # -- models ----------------------------------------------------------------------------------
    def build_model(self, device: str | None = None) -> nn.Module:
        """A fresh model of the run's architecture (weights are the seeded initial ones) on ``device``
        (default: the training device)."""
        if self._model_factory is None and self.config.model.name == CUSTOM_MODEL and not self.config.model.factory:
            raise StoreError(f"{self.path} was trained on a model given in Python; pass model_factory= to open_run "
                             f"(or train with model.factory = \"package.module:function\" to record it)")
        return build_run_model(self.config, self.train, self._model_factory, device)

    def model_after(self, k: int) -> nn.Module:
        """The model after block ``k`` of the stored chain (``k = num_blocks``: the current model), on the CPU."""
        model = self.build_model("cpu")
        try:
            load_state(model, state_after(self.store, k))
        except (KeyError, RuntimeError) as exc:  # the model's code changed since the run was trained
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"the model built for {self.path} ({self.config.model.factory or self.config.model.name}"
                              f") does not fit the run's stored weights ({detail}); restore the model code and "
                              f"options the run was trained with") from None
        model.eval()
        return model

    def final_model(self) -> nn.Module:
        """The current model: the original, or the unlearned one after forget requests."""
        return self.model_after(len(self.record.blocks))

    def canary_success(self, model: nn.Module) -> tuple[int, int]:
        """(successes, trials) of the run's canary trigger on test inputs whose true label is not the target."""
        target = self.config.canary.target
        keep = self.test.y != target
        x = canary_trigger(self.config).apply(self.test.x[keep])
        hits = int((predict_logits(model, x).argmax(1) == target).sum())
        return hits, int(keep.sum())

    def evaluate(self, model: nn.Module, which: str = "test") -> tuple[float, float]:
        """(accuracy, loss) of ``model`` on the ``test`` or ``validation`` set."""
        ds = self.test if which == "test" else self.validation
        return evaluate(model, ds.x, ds.y)


REQUIRED_KEYS = {"config": dict, "data": dict, "status": str, "blocks": list, "init": dict, "partition": dict}


def check_manifest_shape(manifest: dict[str, Any], root: Path) -> None:
    """Refuse a manifest lacking what every run has (a damaged or hand-edited store) with one line."""
    if manifest.get("kind") is not None:  # e.g. a SISA ensemble's store (obliviate.unlearning.sisa)
        raise StoreFormatError(f"{root} holds a {manifest['kind']!r} store, not a recorded run; this command reads "
                               f"runs made by `obliviate train`")
    bad = [k for k, kind in REQUIRED_KEYS.items() if not isinstance(manifest.get(k), kind)]
    if not bad and not isinstance(manifest["config"].get("training"), dict):
        bad = ["config.training"]
    if bad:
        raise IntegrityError(f"{root}/manifest.json lacks {', '.join(bad)}: the store is damaged or was edited by "
                             f"hand; restore it from a backup")


def open_run(path: str | Path, *, splits: DatasetSplits | None = None,
             model_factory: ModelFactory | None = None, trainer: Trainer | str | None = None) -> Run:
    """Open a recorded run and its data; refuses data that differs from what the run was trained on.

    Pass ``splits`` (and ``model_factory``, ``trainer``) when the run was trained on data, a model or a
    trainer given in Python; a model configured by import path (``model.factory``) and a trainer given as an
    import path are rebuilt from the manifest, with nothing passed.
    The data is checked sample by sample (:func:`reopen_data`): forgotten samples may be gone from the
    source; any other change is refused naming the samples.
    """
    store = RunStore.open(path)
    check_manifest_shape(store.manifest, store.root)
    config = RunConfig.from_dict(store.manifest["config"])
    if store.manifest["data"].get("user_supplied") and splits is None:
        raise StoreError(f"{path} was trained on data given in Python; pass splits= to open_run")
    if model_factory is None and config.model.factory:  # a recorded factory: import it now, or say how
        check_model_factory(config, where=str(path))
    chosen = trainer_for_run(store.manifest.get("trainer"), trainer, path)
    data = apply_canary(store.manifest, config, reopen_data(config, store, splits))
    return Run(store, config, data, model_factory, chosen)


def apply_canary(manifest: dict[str, Any], config: RunConfig, data: RunData) -> RunData:
    """Plant the run's recorded canary and memorised users (:mod:`obliviate.data.memorised`) in its data."""
    ids = manifest.get("canary", {}).get("ids", [])
    users = manifest.get("memorised", {}).get("users", [])
    if not ids and not users:
        return data
    train = plant_backdoor(data.train, ids, canary_trigger(config), config.canary.target) if ids else data.train
    return RunData(plant_memorised(train, users), data.validation, data.test, data.fingerprint, data.source)
