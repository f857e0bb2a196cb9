"""Recorded block training: train block by block and store every block so it can be replayed.

>>> import tempfile
>>> cfg = RunConfig.from_dict({"training": {"blocks": 3, "epochs_per_block": 1}})
>>> run = train_run(cfg, tempfile.mkdtemp() + "/run")
>>> [b["index"] for b in run.manifest["blocks"]]
[1, 2, 3]
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._faults import crash_point
from .._logging import progress
from ..data import DatasetSplits
from ..data.fingerprints import record as record_samples
from ..errors import ConfigError, ObliviateError, StoreError, file_error
from ..store import RunStore, file_lock
from ..store.integrity import require_intact
from .block import accuracy_and_loss, predict_logits, resolve_device
from .predictions import KEY as PREDICTIONS_KEY, margins, predictions_entry
from .chain import advance, clone_state, load_state, optimizer_payload, optimizer_state_after, state_after
from .config import CUSTOM_MODEL, RunConfig
from .determinism import check_conditions, current_conditions
from .partition import partition_ids, read_id_file
from ..data.memorised import choose_memorised_users
from .run import (ModelFactory, Run, RunData, apply_canary, build_run_model, check_model_factory, check_source,
                  choose_canary_ids, partition_payload, prepare_data)
from .trainer import Trainer, resolve_trainer, trainer_for_run
from .writer import BackgroundWriter

log = logging.getLogger(__name__)


def library_versions() -> dict[str, str]:
    """The versions of Python and the libraries a run records in its manifest."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version()}
    for pkg in ("obliviate", "torch", "numpy", "safetensors"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return tuple(out.items())


Start = tuple[torch.nn.Module, torch.optim.Optimizer]


def _new_store(out: Path, config: RunConfig, data: RunData, user_supplied: bool,
               model_factory: ModelFactory | None, trainer: Trainer) -> tuple[RunStore, Start]:
    """Create the store with everything training starts from (partition, initial model and optimizer)
    in its first manifest, and return that model and optimizer."""
    t = config.training
    order = read_id_file(t.order_file, "training.order_file") if t.partition == "order" else None
    blocks = partition_ids(data.train.ids.numpy(), data.train.y.numpy(), t.blocks, strategy=t.partition,
                           seed=t.seed, order=order)
    canary: dict[str, Any] = {}
    if config.canary.block:
        canary = {"ids": choose_canary_ids(config, data.train, blocks[config.canary.block - 1]),
                  "block": config.canary.block, "target": config.canary.target}
    mem = config.memorised
    memorised = {"users": choose_memorised_users(data.train, blocks, users=mem.users, size=mem.size, kind=mem.kind,
                                                 first_block=mem.block, seed=t.seed,
                                                 exclude=canary.get("ids", []))} if mem.users else {}
    cfg = config.to_dict()
    if model_factory is not None:  # a model given in Python: open_run needs it again (model_factory=)
        cfg["model"]["name"], cfg["model"]["factory"] = CUSTOM_MODEL, ""
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "library_versions": library_versions(),
        "determinism": current_conditions(t.device),
        "config": cfg,
        "data": {"name": config.data.name, "fingerprint": data.fingerprint, "user_supplied": user_supplied,
                 "n_train": len(data.train), "n_validation": len(data.validation), "n_test": len(data.test)},
        "canary": canary,
        "memorised": memorised,
        "trainer": trainer.describe(),
        "status": "training",
        "blocks": [],
        "requests": [],
    }
    model = build_run_model(config, data.train, model_factory)
    trainer.check(model, data.train.x[:2].to(resolve_device(t.device)), data.train.y[:2].to(resolve_device(t.device)))
    optimizer = trainer.make_optimizer(model, t)

    source = data.source
    assert source is not None, "prepare_data keeps the loaded splits"

    def fill(store: RunStore) -> dict[str, Any]:
        opt_tensors, opt_meta = optimizer_payload(optimizer)
        return {"init": {"model": store.put("init-model", clone_state(model)),
                         "optimizer": store.put("init-optimizer", opt_tensors, opt_meta)},
                "partition": store.put("partition", partition_payload(blocks, data.validation.ids.numpy())),
                "samples": store.put("samples", *record_samples(source))}

    return RunStore.create(out, manifest, fill=fill), (model, optimizer)


def _create_store(out: Path, config: RunConfig, data: RunData, user_supplied: bool,
                  model_factory: ModelFactory | None, trainer: Trainer, wait: float) -> tuple[RunStore, Start]:
    """:func:`_new_store` under the lock; a failure before the first commit leaves the folder as found
    (no lock file, no payloads, no folders this call made)."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is an existing file; give the path of a new or empty folder")
    made = [p for p in (out, *out.parents) if not p.exists()]
    had_lock = (out / ".lock").exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with file_lock(out / ".lock", exclusive=True, timeout=wait):
            return _new_store(out, config, data, user_supplied, model_factory, trainer)
    except BaseException as exc:
        if not (out / "manifest.json").exists():
            if not had_lock:
                with contextlib.suppress(OSError):
                    (out / ".lock").unlink()
            for folder in made:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if isinstance(exc, OSError) and not isinstance(exc, ObliviateError):
            raise file_error(exc, "", exc.filename if exc.filename is not None else out) from None
        raise


def train_run(config: RunConfig, out: str | Path, *, resume: bool = False, splits: DatasetSplits | None = None,
              model_factory: ModelFactory | None = None, wait: float = 0.0, strict: bool = False,
              trainer: Trainer | str | None = None) -> Run:
    """Train ``config`` block by block, recording every block in a run store at ``out``.

    With ``resume=True`` an interrupted run at ``out`` is finished from its last stored block, giving
    the same result as an uninterrupted run under the conditions recorded in the manifest (thread count,
    torch version, CPU kernels: see :mod:`obliviate.training.determinism`); under others it warns, and
    with ``strict=True`` refuses. ``splits`` and ``model_factory`` bring your own data and model instead
    of the configured ones; ``trainer`` (a :class:`~obliviate.training.trainer.Trainer` or an import path
    ``"pkg.mod:attr"``) your own loss, step and optimizer (default: the built-in cross-entropy loop).
    """
    out = Path(out)
    if model_factory is None:
        check_model_factory(config)  # a factory that cannot be imported fails before any data or store
    if trainer is None and config.training.trainer:
        trainer = config.training.trainer
    chosen = resolve_trainer(trainer)
    data = prepare_data(config, splits)
    start: Start | None = None
    if resume:
        store = RunStore.open(out)
        stored = RunConfig.from_dict(store.manifest["config"] | ({"model": config.to_dict()["model"]}
                                                                  if model_factory else {}))
        chosen = trainer_for_run(store.manifest.get("trainer"), trainer, out)
        if stored != config:
            raise ConfigError(f"--resume needs the config the run was started with; {out} was started with a "
                              f"different one (compare with `obliviate inspect {out} --json`)")
        if store.manifest.get("status") != "complete":  # before anything is touched: --strict changes nothing
            check_conditions(store.manifest, "train --resume", strict=strict)
            require_intact(store, "train --resume will not continue it")
        if "samples" in store.manifest:
            assert data.source is not None, "prepare_data keeps the loaded splits"
            check_source(store, data.source, config.data.name)
        elif store.manifest["data"]["fingerprint"] != data.fingerprint:
            raise StoreError(f"the data differs from the data {out} was started on; cannot resume")
    else:
        resolve_device(config.training.device)  # before anything is stored
        store, start = _create_store(out, config, data, splits is not None, model_factory, chosen, wait)
    run = Run(store, config, apply_canary(store.manifest, config, data), model_factory, chosen)
    with store.lock(exclusive=True, timeout=wait):
        store.reload()
        if resume:
            store.collect_garbage()  # files of the block that was being written when it stopped
            if store.manifest["status"] == "complete":
                log.info("%s is already complete; nothing to resume", out)
                return run
        _train_blocks(run, start)
    return run


def _resume_state(run: Run) -> Start:
    """The model and optimizer after the last stored block, from the chain."""
    store, k = run.store, len(run.store.manifest["blocks"])
    model = run.build_model()
    load_state(model, state_after(store, k))
    optimizer = run.trainer.make_optimizer(model, run.config.training)
    optimizer.load_state_dict(optimizer_state_after(store, k))
    return model, optimizer


def _train_blocks(run: Run, start: Start | None) -> None:
    """Train the blocks not stored yet, from ``start`` (a fresh run's initial model and optimizer) or
    from the stored chain. The writer's last payloads are written, and made durable, while the final
    model is evaluated."""
    store, cfg = run.store, run.config
    B = cfg.training.blocks
    first = len(store.manifest["blocks"]) + 1
    model, optimizer = start if start is not None else _resume_state(run)
    previous = clone_state(model)
    writer = BackgroundWriter(maxsize=2)
    t_start = time.perf_counter()
    pacing = {"interval": cfg.store.commit_interval_s, "last": time.monotonic()}
    try:
        for k in progress(range(first, B + 1), desc="training blocks", total=B - first + 1):
            pos = run.train.positions(torch.from_numpy(run.block_ids(k)))
            t0 = time.perf_counter()
            update, previous, loss = advance(model, optimizer, previous, run.rows(pos), block=k, num_blocks=B,
                                             cfg=cfg.training, trainer=run.trainer)
            wall = time.perf_counter() - t0
            opt_tensors, opt_meta = optimizer_payload(optimizer)
            snapshot = previous if (k % cfg.store.snapshot_every == 0 or k == B) else None
            record = {"index": k, "size": len(pos), "loss": loss, "wall_time_s": wall, "origin": "trained"}
            writer.submit(_block_job(store, record, update, opt_tensors, opt_meta, snapshot, pacing))
        loop = time.perf_counter() - t_start
        writer.submit(store.sync_payloads)  # the payloads' barrier overlaps the evaluation below
        t_eval = time.perf_counter()
        val_logits = predict_logits(model, run.validation.x)
        eval_s = time.perf_counter() - t_eval
        val_acc, val_loss = accuracy_and_loss(val_logits, run.validation.y)
        test_acc, test_loss = run.evaluate(model, "test")
    finally:
        writer.close()
    manifest = dict(store.manifest)
    if len(run.validation):  # the guard of every later forget compares with these
        manifest[PREDICTIONS_KEY] = predictions_entry(store, manifest, val_logits.argmax(1), margins(val_logits))
    manifest["metrics"] = {"validation_accuracy": val_acc, "validation_loss": val_loss,
                           "test_accuracy": test_acc, "test_loss": test_loss}
    manifest["timing"] = {"train_wall_s": manifest.get("timing", {}).get("train_wall_s", 0.0) + loop,
                          "block_train_s": sum(b["wall_time_s"] for b in manifest["blocks"]),
                          "validation_eval_s": eval_s}
    manifest["status"] = "complete"
    store.commit(manifest)


def _block_job(store: RunStore, record: dict[str, Any], update: dict[str, torch.Tensor],
               opt_tensors: dict[str, torch.Tensor], opt_meta: dict[str, str],
               snapshot: dict[str, torch.Tensor] | None, pacing: dict[str, float]) -> Callable[[], None]:
    """The writer's work for one block: its payloads, then (paced) the manifest naming them."""

    def job() -> None:
        k = record["index"]
        refs = {"update": store.put(f"b{k:04d}-update", update),
                "optimizer": store.put(f"b{k:04d}-optimizer", opt_tensors, opt_meta),
                "snapshot": store.put(f"b{k:04d}-snapshot", snapshot) if snapshot is not None else None}
        manifest = dict(store.manifest)
        crash_point(f"train:payloads-{k}")
        manifest["blocks"] = [*manifest["blocks"], {**record, **refs}]
        now = time.monotonic()
        if now - pacing["last"] >= pacing["interval"]:
            store.commit(manifest)
            pacing["last"] = now
            crash_point(f"train:block-{k}")
        else:  # named on disk by the next commit (at the latest the final one); orphans if it never comes
            store.manifest = manifest

    return job
