"""Benchmark: recorded block training, its cost in accuracy and its recording overhead.

Two measurements, one run, one JSON (``--out``):

1. **Accuracy** (issue "Foundation", item 7). Real MNIST (the official 10,000 test images in
   ``../shared/data/mnist-t10k/``, split with seed 0 into 8,000 training and 2,000 test images), LeNet-5,
   trained by the library's own :func:`obliviate.training.train_run` (recorded, block by block, each
   sample seen only inside its own block).

   - ``reproduction``: the issue's table, Adam 1e-3, batch 32, constant rate, random partition, all 8,000
     samples trained on (``data.validation_fraction = 0``): B = 1 (ordinary training, 10 epochs),
     B = 20 and B = 100 (5 epochs a block), two seeds.
   - ``sweep``: settings changed from the reproduction's B = 100 row, one or two at a time (schedule,
     min_lr_ratio, lr, epochs_per_block, batch_size, optimizer, partition, warmup_fraction), seed 0,
     8,000 samples.
   - ``recipe``: the recommended settings at B = 1, 20, 100, two seeds, with all 8,000 samples and with
     the engine's default 10% validation hold-out (7,200 trained on; the stitch guard needs it).

   The seed (``training.seed``) sets the model init, the partition and every minibatch order; the
   8,000/2,000 split is fixed.

2. **Recording overhead** (item 8). ``recorded``: :func:`train_run` into a fresh run store (payloads
   content-hashed and written by the background writer, synced before each paced manifest commit).
   ``unrecorded``: the same training without any store, built from the library's own block loop
   (:func:`prepare_data`, :func:`partition_ids`, :func:`build_model`, the trainer's optimizer, then the
   chain step :func:`~obliviate.training.chain.advance` for k = 1..B with the model and optimizer state
   carried over, continuing from the chain's reconstruction ``previous + (current - previous)`` exactly
   as ``train_run`` does, then the final evaluation on the validation and test sets; ``train_block_s`` is
   the time in ``advance`` on both sides, chain arithmetic included). Both produce bit-identical models; the benchmark
   checks it. With ``--fsync-diagnosis`` a third variant, ``recorded_no_fsync`` (the store created with
   ``durable=False`` by a patch in this process only), is added: a diagnosis, not a product setting.
   The machine's speed drifts by tens of percent over seconds, so the repetitions alternate the order
   (recorded then unrecorded, then unrecorded then recorded, ...) and the JSON gives, beside every wall
   time, process and training-thread CPU time, the ratio of the medians recorded / unrecorded with a
   90% bootstrap interval (pairs resampled), the ratio of the totals and the paired ratios, end to end
   (the whole call) and for the block loop alone. One extra recorded run is profiled with cProfile, the
   training thread and the writer thread separately, and its time is grouped by cause (training, chain
   arithmetic, optimizer flatten, payload layout, sha256, file writes, syncs, manifest JSON, waiting on
   the writer); the writer's work is then redone piece by piece without the profiler.

3. **Recording overhead with a user trainer** (issue 12, "It must show" 5). The same two variants,
   interleaved the same way, with a :class:`~obliviate.training.trainer.Trainer` given in Python
   (label-smoothing cross-entropy through ``Batch.reduce``, AdamW with weight decay 0.05 from an
   optimizer factory): cases whose name ends in "user trainer" and whose ``trainer`` field describes it.
   ``--user-trainer-only`` runs just those cases.

    python benchmarks/bench_training.py [--out benchmarks/results/training.json] [--threads 1]
    python benchmarks/bench_training.py --skip-accuracy --out benchmarks/results/training_overhead.json
    python benchmarks/bench_training.py --quick --out /tmp/smoke.json    # seconds; digits only

Threads: ``--threads 1`` by default (torch.set_num_threads(1)); on the shared 2-core machine two torch
threads fought the other jobs and one trial run took many times longer. The accuracy runs go two at a time
(``--jobs 2``, separate processes, one torch thread each: two cores in all); accuracy does not depend on
it (one thread per process, deterministic). The overhead section always runs alone, in one process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import cProfile
import datetime
import io
import json
import multiprocessing
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from obliviate.data import DatasetSplits, load_dataset  # noqa: E402
from obliviate.models import build_model  # noqa: E402
from obliviate.store import RunStore  # noqa: E402
from obliviate.training import RunConfig, partition_ids, train_run  # noqa: E402
from obliviate.training import recording as _recording  # noqa: E402
from obliviate.training.block import BlockRows, evaluate  # noqa: E402
from obliviate.training.chain import advance, clone_state  # noqa: E402
from obliviate.training.run import prepare_data  # noqa: E402
from obliviate.training.trainer import DEFAULT as DEFAULT_TRAINER  # noqa: E402
from obliviate.training.trainer import Trainer  # noqa: E402

# The issue's settings: LeNet-5, Adam 1e-3, batch 32, constant rate; B = 1 trains 10 epochs, B = 20 and
# B = 100 five epochs a block.
REPRO: dict[str, Any] = {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "schedule": "constant",
                         "min_lr_ratio": 0.0, "warmup_fraction": 0.0, "partition": "random"}
EPOCHS = {1: 10, 20: 5, 100: 5}
ISSUE_TABLE = {1: 0.9705, 20: 0.9565, 100: 0.9340}

# One change at a time from the reproduction's B = 100 row (seed 0). "sgd" is SGD with momentum 0.9.
SWEEP: list[tuple[str, dict[str, Any]]] = [
    ("cosine", {"schedule": "cosine"}),
    ("cosine, min_lr_ratio 0.1", {"schedule": "cosine", "min_lr_ratio": 0.1}),
    ("cosine, warmup 0.05", {"schedule": "cosine", "warmup_fraction": 0.05}),
    ("cosine, lr 2e-3", {"schedule": "cosine", "lr": 2e-3}),
    ("cosine, lr 3e-3", {"schedule": "cosine", "lr": 3e-3}),
    ("constant, lr 3e-3", {"lr": 3e-3}),
    ("cosine, stratified", {"schedule": "cosine", "partition": "stratified"}),
    ("constant, stratified", {"partition": "stratified"}),
    ("cosine, batch 16", {"schedule": "cosine", "batch_size": 16}),
    ("cosine, E = 10", {"schedule": "cosine", "epochs_per_block": 10}),
    ("cosine, SGD momentum 0.9, lr 0.05", {"schedule": "cosine", "optimizer": "sgd", "lr": 0.05}),
    ("cosine, lr 5e-3, stratified", {"schedule": "cosine", "lr": 5e-3, "partition": "stratified"}),
]

# The recommendation the sweep supports (see docs/benchmarks.md).
# lr 3e-3, not the slightly better 5e-3: the upper end of the range the issue asked for, and a larger
# rate makes retrained trajectories drift further from the stored ones (stitch quality not measured here).
RECIPE: dict[str, Any] = {**REPRO, "schedule": "cosine", "lr": 3e-3, "partition": "stratified"}


# ----------------------------------------------------------------------------------------------------
# configuration helpers
# ----------------------------------------------------------------------------------------------------
def make_config(dataset: str, model: str, training: dict[str, Any], *, validation_fraction: float,
                snapshot_every: int = 10) -> RunConfig:
    return RunConfig.from_dict({"data": {"name": dataset, "validation_fraction": float(validation_fraction)},
                                "model": {"name": model},
                                "training": training,
                                "store": {"snapshot_every": snapshot_every}})


def training_settings(base: dict[str, Any], blocks: int, epochs: int, seed: int,
                      change: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {**base, "blocks": blocks, "epochs_per_block": epochs, "seed": seed}
    out.update(change or {})
    return out


# ----------------------------------------------------------------------------------------------------
# 1. accuracy
# ----------------------------------------------------------------------------------------------------
def accuracy_run(config: RunConfig, splits: DatasetSplits) -> dict[str, Any]:
    """Train ``config`` with the library's recorded block training; test (and validation) accuracy."""
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        t0 = time.perf_counter()
        run = train_run(config, Path(tmp) / "run", splits=splits)
        wall = time.perf_counter() - t0
        m = run.manifest["metrics"]
    val = m["validation_accuracy"]
    return {"seed": config.training.seed, "test_accuracy": round(float(m["test_accuracy"]), 4),
            "validation_accuracy": None if val != val else round(float(val), 4),  # NaN: no hold-out
            "test_loss": round(float(m["test_loss"]), 4), "wall_s": round(wall, 2)}


_WORKER_SPLITS: dict[str, DatasetSplits] = {}


def _worker_init(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def _worker_run(config: dict[str, Any]) -> dict[str, Any]:
    """One accuracy run in a worker process (loads its own copy of the data once)."""
    name = config["data"]["name"]
    if name not in _WORKER_SPLITS:
        _WORKER_SPLITS[name] = load_dataset(name)
    return accuracy_run(RunConfig.from_dict(config), _WORKER_SPLITS[name])


def _row(group: str, name: str, training: dict[str, Any], validation_fraction: float, n_available: int,
         runs: list[dict[str, Any]]) -> dict[str, Any]:
    accs = [r["test_accuracy"] for r in runs]
    return {"group": group, "name": name, "blocks": training["blocks"],
            "epochs_per_block": training["epochs_per_block"], "validation_fraction": validation_fraction,
            "n_train": n_available - round(n_available * validation_fraction),
            "training": {k: v for k, v in training.items() if k != "seed"},
            "runs": runs, "mean_test_accuracy": round(statistics.fmean(accs), 4),
            "min_test_accuracy": min(accs), "max_test_accuracy": max(accs)}


def accuracy_section(quick: bool, splits: DatasetSplits, dataset: str, model: str, *, jobs: int,
                     threads: int) -> dict[str, Any]:
    if quick:
        epochs, seeds, recipe_seeds, sweep = {1: 1, 4: 1}, [0, 1], [0], SWEEP[:1]
    else:
        epochs, seeds, recipe_seeds, sweep = EPOCHS, [0, 1], [0, 1], SWEEP
    sweep_blocks = max(epochs)
    plan: list[tuple[str, str, dict[str, Any], list[int], float]] = []
    for b, e in epochs.items():
        plan.append(("reproduction", f"B = {b}", training_settings(REPRO, b, e, 0), seeds, 0.0))
    for name, change in sweep:  # the baseline is the reproduction's row at the same B (seed 0)
        plan.append(("sweep", name, training_settings(REPRO, sweep_blocks, epochs[sweep_blocks], 0, change),
                     [0], 0.0))
    for vf in (0.0, 0.1):
        for b, e in epochs.items():
            name = f"recipe, B = {b}" + (f", {vf:.0%} held out" if vf else "")
            plan.append(("recipe", name, training_settings(RECIPE, b, e, 0), recipe_seeds, vf))
    tasks = [(i, make_config(dataset, model, {**training, "seed": seed}, validation_fraction=vf).to_dict())
             for i, (_g, _n, training, row_seeds, vf) in enumerate(plan) for seed in row_seeds]
    results: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(plan))}

    def report(i: int, res: dict[str, Any]) -> None:
        group, name, training = plan[i][:3]
        results[i].append(res)
        print(f"  [{group}] {name:32s} B={training['blocks']:<3d} E={training['epochs_per_block']:<2d} "
              f"seed {res['seed']}: test {res['test_accuracy']:.4f} ({res['wall_s']:.1f}s)", file=sys.stderr)

    if jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                                                    initargs=(threads,)) as pool:
            futures = {pool.submit(_worker_run, cfg): i for i, cfg in tasks}
            for fut in concurrent.futures.as_completed(futures):
                report(futures[fut], fut.result())
    else:
        for i, cfg in tasks:
            report(i, accuracy_run(RunConfig.from_dict(cfg), splits))
    rows = [_row(group, name, training, vf, len(splits.train), sorted(results[i], key=lambda r: r["seed"]))
            for i, (group, name, training, _seeds, vf) in enumerate(plan)]
    by_b = {r["blocks"]: r for r in rows if r["group"] == "reproduction"}
    ordinary = by_b[min(by_b)]["mean_test_accuracy"]
    recipe0 = {r["blocks"]: r for r in rows if r["group"] == "recipe" and r["validation_fraction"] == 0.0}
    return {
        "data": splits.source, "dataset": dataset, "model": model,
        "n_train_available": len(splits.train), "n_test": len(splits.test),
        "reproduction_settings": REPRO, "recipe_settings": RECIPE, "parallel_processes": jobs,
        "epochs_per_block": {str(b): e for b, e in epochs.items()},
        "issue_table": None if quick else {str(b): a for b, a in ISSUE_TABLE.items()},
        "rows": rows,
        "gap_vs_ordinary": {
            "reproduction": {str(b): round(r["mean_test_accuracy"] - ordinary, 4) for b, r in by_b.items()},
            "recipe_vs_reproduction_ordinary": {str(b): round(r["mean_test_accuracy"] - ordinary, 4)
                                                for b, r in recipe0.items()},
            "recipe_vs_recipe_ordinary": {str(b): round(r["mean_test_accuracy"]
                                                        - recipe0[min(recipe0)]["mean_test_accuracy"], 4)
                                          for b, r in recipe0.items()},
        },
    }


# ----------------------------------------------------------------------------------------------------
# 2. recording overhead
# ----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _store_without_fsync() -> Iterator[None]:
    """Diagnosis only, in this process: every run store is created with ``durable=False`` (no fsync)."""
    original = RunStore.__dict__["create"]

    def create(cls: type, root: Any, manifest: dict[str, Any], *, durable: bool = True, **kw: Any) -> RunStore:
        return original.__func__(cls, root, manifest, durable=False, **kw)  # type: ignore[no-any-return]

    RunStore.create = classmethod(create)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        RunStore.create = original  # type: ignore[method-assign]


def _clocks() -> tuple[float, float, float]:
    return time.perf_counter(), time.process_time(), time.thread_time()


def _since(start: tuple[float, float, float]) -> dict[str, float]:
    wall, proc, thread = (b - a for a, b in zip(start, _clocks()))
    return {"wall_s": wall, "cpu_process_s": proc, "cpu_training_thread_s": thread}


def _smoothed(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)


def _adamw(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, foreach=False)


#: The user trainer of the third measurement: a per-sample loss and an optimizer factory given in Python.
USER_TRAINER = Trainer(loss=_smoothed, optimizer=_adamw, name="label-smoothing 0.1, AdamW wd 0.05")


def recorded(config: RunConfig, splits: DatasetSplits, *, durable: bool = True,
             trainer: Trainer = DEFAULT_TRAINER) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        with contextlib.nullcontext() if durable else _store_without_fsync():
            start = _clocks()
            run = train_run(config, Path(tmp) / "run", splits=splits, trainer=trainer)
            out = _since(start)
        state = {k: v.clone() for k, v in run.final_model().state_dict().items()}
        return {**out, "loop_s": run.manifest["timing"]["train_wall_s"],
                "train_block_s": run.manifest["timing"]["block_train_s"],
                "test_accuracy": run.manifest["metrics"]["test_accuracy"],
                "store_bytes": run.store.storage_bytes(), "state": state}


def unrecorded(config: RunConfig, splits: DatasetSplits, *, trainer: Trainer = DEFAULT_TRAINER) -> dict[str, Any]:
    """``train_run`` without the store: the library's chain step (:func:`advance`, the same trainer), same
    partition, same chain semantics."""
    start = _clocks()
    t = config.training
    data = prepare_data(config, splits)
    blocks = partition_ids(data.train.ids.numpy(), data.train.y.numpy(), t.blocks, strategy=t.partition,
                           seed=t.seed)
    model = build_model(config.model.name, data.train.input_shape, data.train.num_classes, seed=t.seed,
                        **config.model.options)
    optimizer = trainer.make_optimizer(model, t)
    previous = clone_state(model)
    t_loop = time.perf_counter()
    in_blocks = 0.0
    for k in range(1, t.blocks + 1):
        pos = data.train.positions(torch.from_numpy(blocks[k - 1]))
        t0 = time.perf_counter()
        # the chain step train_run takes (continuing from the chain's reconstruction: same model)
        _, previous, _ = advance(model, optimizer, previous, BlockRows.of(data.train, pos), block=k,
                                 num_blocks=t.blocks, cfg=t, trainer=trainer)
        in_blocks += time.perf_counter() - t0
    loop = time.perf_counter() - t_loop
    evaluate(model, data.validation.x, data.validation.y)
    acc, _ = evaluate(model, data.test.x, data.test.y)
    return {**_since(start), "loop_s": loop, "train_block_s": in_blocks, "test_accuracy": acc,
            "state": {k: v.clone() for k, v in model.state_dict().items()}}


def _stats(prof: cProfile.Profile) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    return pstats.Stats(prof, stream=io.StringIO()).stats  # type: ignore[attr-defined,no-any-return]


def _cum(stats: dict[tuple[str, int, str], tuple[Any, ...]], file_part: str, func: str) -> float:
    """Cumulative seconds in function ``func`` of a file whose path contains ``file_part`` (``~``:
    built-ins), not counting the calls it makes to itself."""
    total = 0.0
    for (file, _line, name), (_cc, _nc, _tt, ct, callers) in stats.items():
        if name == func and file_part in file:
            total += ct - sum(c[3] for (cf, _cl, cn), c in callers.items() if cn == func and file_part in cf)
    return total


def _top(stats: dict[tuple[str, int, str], tuple[Any, ...]], n: int = 12) -> list[dict[str, Any]]:
    rows = [{"function": func if file == "~" else f"{Path(file).name}:{line}({func})", "calls": nc,
             "tottime_s": round(tt, 4), "cumtime_s": round(ct, 4)}
            for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.items()]
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:n]


def profile_recorded(config: RunConfig, splits: DatasetSplits, trainer: Trainer = DEFAULT_TRAINER) -> dict[str, Any]:
    """One recorded run under cProfile: the training thread and the writer thread profiled separately.

    The writer's jobs are wrapped (in this process only, by replacing ``recording._block_job``) so each
    runs under the writer thread's own profiler. Absolute times are inflated by profiling.
    """
    writer_prof = cProfile.Profile()
    original = _recording._block_job

    def profiled_block_job(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        job = original(*args, **kwargs)
        return lambda: writer_prof.runcall(job)

    main_prof = cProfile.Profile()
    _recording._block_job = profiled_block_job  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
            t0 = time.perf_counter()
            run = main_prof.runcall(train_run, config, Path(tmp) / "run", splits=splits, trainer=trainer)
            wall = time.perf_counter() - t0
            n_blocks = len(run.manifest["blocks"])
            manifest_bytes = (Path(tmp) / "run" / "manifest.json").stat().st_size
            unprofiled = writer_work_unprofiled(run.store, run.manifest, Path(tmp))
    finally:
        _recording._block_job = original  # type: ignore[assignment]
    ms, ws = _stats(main_prof), _stats(writer_prof)
    chain = sum(_cum(ms, "chain.py", f) for f in ("clone_state", "subtract", "add", "load_state"))
    main = {
        "whole train_run (profiled)": round(wall, 3),
        "train_block": round(_cum(ms, "block.py", "train_block"), 3),
        "chain arithmetic (clone_state, subtract, add, load_state)": round(chain, 3),
        "optimizer flatten (optimizer_payload)": round(_cum(ms, "chain.py", "optimizer_payload"), 3),
        "blocked on the writer (submit + close)": round(_cum(ms, "writer.py", "submit")
                                                        + _cum(ms, "writer.py", "close"), 3),
        "start (_new_store: partition, init payloads, first commit)": round(
            _cum(ms, "recording.py", "_new_store"), 3),
        "prepare_data (incl. data fingerprint)": round(_cum(ms, "run.py", "prepare_data"), 3),
        "final evaluation (validation + test)": round(_cum(ms, "run.py", "evaluate"), 3),
        "fsync + syncfs in the training thread (store creation, final commit)": round(
            _cum(ms, "~", "<built-in method posix.fsync>") + _cum(ms, "files.py", "sync_files"), 3),
    }
    busy = sum(tt for (_f, _l, _n), (_cc, _nc, tt, _ct, _c) in ws.items())
    fsync = _cum(ws, "~", "<built-in method posix.fsync>")
    writer = {
        "busy (all block jobs)": round(busy, 3),
        "safetensors layout (encode_tensors)": round(_cum(ws, "payloads.py", "encode_tensors"), 3),
        "sha256 (sha256_chunks)": round(_cum(ws, "files.py", "sha256_chunks"), 3),
        "fsync (manifest, folder)": round(fsync, 3),
        "syncfs of the payloads written since the last commit (sync_files)": round(
            _cum(ws, "files.py", "sync_files"), 3),
        "open/write/rename (atomic_write_chunks minus fsync)": round(
            _cum(ws, "files.py", "atomic_write_chunks") - fsync, 3),
        "manifest JSON encode (json.dumps in commit)": round(_cum(ws, "json/__init__.py", "dumps"), 3),
        "manifest copy + block record (job body, own time)": round(_cum(ws, "recording.py", "job")
                                                                   - _cum(ws, "run_store.py", "put")
                                                                   - _cum(ws, "run_store.py", "commit"), 3),
    }
    return {"blocks": n_blocks, "manifest_bytes_final": manifest_bytes,
            "writer_work_unprofiled_s": unprofiled,
            "note": "cProfile, one extra recorded run; the writer thread overlaps training, so its busy time "
                    "costs wall time only where the training thread is blocked on it (or where both compete "
                    "for the CPU)",
            "training_thread_s": main, "writer_thread_s": writer,
            "training_thread_top_by_tottime": _top(ms), "writer_thread_top_by_tottime": _top(ws)}


def writer_work_unprofiled(store: Any, manifest: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The writer thread's work for the run, redone piece by piece without the profiler.

    Every block's payloads are the size of the last block's (same model, same optimizer), so the last
    block's update and optimizer state are laid out, hashed and written B times; the manifest is
    encoded and written as it grew, block by block (an upper bound: commits are paced, at most one per
    ``store.commit_interval_s``). Snapshots (every ``snapshot_every`` blocks) are left out.
    """
    from obliviate.store.files import atomic_write_bytes, atomic_write_chunks, sha256_chunks
    from obliviate.store.payloads import encode_tensors

    blocks = manifest["blocks"]
    n = len(blocks)
    update = store.get(blocks[-1]["update"])
    opt, opt_meta = store.get_with_metadata(blocks[-1]["optimizer"])
    out: dict[str, Any] = {"blocks": n}

    def clock(fn: Any) -> float:
        t0 = time.perf_counter()
        fn()
        return round(time.perf_counter() - t0, 4)

    payloads: list[list[Any]] = []
    out["safetensors layout (encode_tensors: header + zero-copy views, update + optimizer)"] = clock(
        lambda: [payloads.extend((encode_tensors(update), encode_tensors(opt, opt_meta))) for _ in range(n)])
    out["sha256"] = clock(lambda: [sha256_chunks(c) for c in payloads])
    folder = tmp / "writer-replay"
    folder.mkdir()
    out["payload write + fsync each (durable per file)"] = clock(
        lambda: [atomic_write_chunks(folder / f"p{i}", c, durable=True) for i, c in enumerate(payloads)])
    out["payload write, no fsync (as recorded: one syncfs per commit)"] = clock(
        lambda: [atomic_write_chunks(folder / f"q{i}", c, durable=False) for i, c in enumerate(payloads)])
    texts: list[bytes] = []
    out["manifest JSON encode, every block (compact, as a commit encodes it)"] = clock(
        lambda: [texts.append(json.dumps({**manifest, "blocks": blocks[:k]}, separators=(",", ":")).encode())
                 for k in range(1, n + 1)])
    out["manifest write + fsync, every block"] = clock(
        lambda: [atomic_write_bytes(folder / "manifest.json", t, durable=True) for t in texts])
    out["payload bytes per block"] = sum(memoryview(c).nbytes for p in payloads[:2] for c in p)
    out["manifest bytes written in all"] = sum(len(t) for t in texts)
    return out


_KEYS = ("wall_s", "loop_s", "train_block_s", "cpu_process_s", "cpu_training_thread_s")


def _bootstrap_ratio(recorded: list[float], unrecorded: list[float], *, draws: int = 2000,
                     seed: int = 0) -> list[float]:
    """90% bootstrap interval of median(recorded) / median(unrecorded), resampling the pairs."""
    gen = torch.Generator().manual_seed(seed)
    n = len(recorded)
    ratios = []
    for _ in range(draws):
        idx = torch.randint(n, (n,), generator=gen).tolist()
        ratios.append(statistics.median(recorded[i] for i in idx) / statistics.median(unrecorded[i] for i in idx))
    ratios.sort()
    return [round(ratios[int(0.05 * draws)], 4), round(ratios[int(0.95 * draws) - 1], 4)]


def overhead_case(name: str, config: RunConfig, splits: DatasetSplits, repeats: int, *,
                  warmup: bool, profile: bool, fsync_diagnosis: bool,
                  trainer: Trainer = DEFAULT_TRAINER) -> dict[str, Any]:
    print(f"  [overhead] {name}: {repeats} repetitions, order alternating", file=sys.stderr)
    variants = {"recorded": lambda: recorded(config, splits, trainer=trainer),
                "unrecorded": lambda: unrecorded(config, splits, trainer=trainer)}
    if fsync_diagnosis:
        variants["recorded_no_fsync"] = lambda: recorded(config, splits, durable=False, trainer=trainer)
    if warmup:
        for fn in variants.values():
            fn()
    times: dict[str, list[dict[str, float]]] = {label: [] for label in variants}
    identical = True
    acc: dict[str, float] = {}
    store_bytes = 0
    labels = list(variants)
    for r in range(repeats):
        # the machine's speed drifts over seconds: alternate which variant goes first (ABBA ...)
        order = labels if r % 2 == 0 else labels[::-1]
        res = {label: variants[label]() for label in order}
        ref = res["unrecorded"]["state"]
        identical &= all(torch.equal(v["state"][k], ref[k]) for v in res.values() for k in ref)
        store_bytes = res["recorded"]["store_bytes"]
        for label in labels:
            times[label].append({key: round(res[label][key], 4) for key in _KEYS})
            acc[label] = round(float(res[label]["test_accuracy"]), 4)
        print(f"    rep {r}: " + ", ".join(f"{label} {res[label]['wall_s']:.2f}s (loop {res[label]['loop_s']:.2f}s, "
                                           f"cpu {res[label]['cpu_process_s']:.2f}s)" for label in labels),
              file=sys.stderr)
    med = {label: {key: round(statistics.median(t[key] for t in ts), 4) for key in _KEYS}
           for label, ts in times.items()}
    low = {label: {key: round(min(t[key] for t in ts), 4) for key in _KEYS} for label, ts in times.items()}

    def over(label: str, key: str = "wall_s", stat: dict[str, Any] = med) -> float:
        return round(stat[label][key] / stat["unrecorded"][key], 4)

    ratio = over("recorded")
    walls = {label: [t["wall_s"] for t in ts] for label, ts in times.items()}
    paired = [round(a / b, 4) for a, b in zip(walls["recorded"], walls["unrecorded"])]
    t = config.training
    out: dict[str, Any] = {
        "name": name, "trainer": trainer.describe(), "dataset": config.data.name, "model": config.model.name, "blocks": t.blocks,
        "epochs_per_block": t.epochs_per_block, "training": dict(config.to_dict()["training"]),
        "validation_fraction": config.data.validation_fraction, "snapshot_every": config.store.snapshot_every,
        "repeats": repeats,
        "order": "alternating: " + ", ".join(labels) + " in even repetitions, reversed in odd ones"
                 + ("; recorded_no_fsync is the recorded run with the store's fsync switched off, a diagnosis, "
                    "not a product setting" if fsync_diagnosis else ""),
        "times": times, "median": med, "min": low,
        "ratio": ratio, "ratio_90ci_bootstrap": _bootstrap_ratio(walls["recorded"], walls["unrecorded"]),
        "ratio_of_totals": round(sum(walls["recorded"]) / sum(walls["unrecorded"]), 4),
        "ratio_loop_only": over("recorded", "loop_s"),
        "ratio_train_block": over("recorded", "train_block_s"),
        "ratio_of_minimums": over("recorded", stat=low),
        "paired_ratios": paired, "paired_ratio_median": round(statistics.median(paired), 4),
        "ratio_cpu_process": over("recorded", "cpu_process_s"),
        "ratio_cpu_training_thread": over("recorded", "cpu_training_thread_s"),
        "target": 1.10, "meets_target": ratio <= 1.10,
        "identical_models": bool(identical), "test_accuracy": acc, "store_bytes": store_bytes,
    }
    if fsync_diagnosis:
        out["ratio_no_fsync"] = over("recorded_no_fsync")
    print(f"    median recorded {med['recorded']['wall_s']:.2f}s, unrecorded {med['unrecorded']['wall_s']:.2f}s: "
          f"ratio {ratio:.3f} (90% CI {out['ratio_90ci_bootstrap']}, loop only {out['ratio_loop_only']:.3f}, "
          f"process cpu {out['ratio_cpu_process']:.3f}); identical models: {identical}", file=sys.stderr)
    if profile:
        out["profile"] = profile_recorded(config, splits, trainer)
    return out


def overhead_section(quick: bool, repeats: int, mnist: DatasetSplits | None, *,
                     fsync_diagnosis: bool = False, profile: bool = True,
                     user_trainer_only: bool = False, datasets: tuple[str, ...] = ("mnist", "digits")) -> dict[str, Any]:
    cases = []
    digits = load_dataset("digits")
    # Warm-up: the first optimizer a process makes imports torch._dynamo (seconds); keep that out of
    # the first timed repetition of whichever case comes first.
    tiny = make_config("digits", "small_cnn", {"blocks": 2, "epochs_per_block": 1}, validation_fraction=0.1)
    for trainer in (DEFAULT_TRAINER, USER_TRAINER):
        recorded(tiny, digits, trainer=trainer)
        unrecorded(tiny, digits, trainer=trainer)
    opts = {"profile": profile, "fsync_diagnosis": fsync_diagnosis}
    if quick:
        cfg = make_config("digits", "small_cnn", {"blocks": 4, "epochs_per_block": 1}, validation_fraction=0.1)
        if not user_trainer_only:
            cases.append(overhead_case("digits small_cnn B=4 E=1 (quick)", cfg, digits, repeats, warmup=False,
                                       **opts))
        cases.append(overhead_case("digits small_cnn B=4 E=1 (quick), user trainer", cfg, digits, repeats,
                                   warmup=False, trainer=USER_TRAINER, **opts))
    else:
        if "mnist" in datasets:
            assert mnist is not None
            cfg = make_config("mnist-t10k", "lenet5", {"blocks": 100, "epochs_per_block": 5},
                              validation_fraction=0.1)
            if not user_trainer_only:
                cases.append(overhead_case("mnist-t10k lenet5 B=100 E=5", cfg, mnist, repeats, warmup=False, **opts))
            cases.append(overhead_case("mnist-t10k lenet5 B=100 E=5, user trainer", cfg, mnist, repeats,
                                       warmup=False, trainer=USER_TRAINER, **opts))
        if "digits" in datasets:
            cfg = make_config("digits", "small_cnn", {"blocks": 20, "epochs_per_block": 5}, validation_fraction=0.1)
            if not user_trainer_only:
                cases.append(overhead_case("digits small_cnn B=20 E=5", cfg, digits, max(3 * repeats, 15), warmup=True,
                                           **opts))
            cases.append(overhead_case("digits small_cnn B=20 E=5, user trainer", cfg, digits, max(3 * repeats, 15),
                                       warmup=True, trainer=USER_TRAINER, **opts))
    return {"note": "engine defaults (adam 1e-3, cosine, batch 32, validation_fraction 0.1, snapshot_every 10, "
                    "commit_interval_s 1.0, durable store: payloads synced (syncfs) before every manifest "
                    "commit, manifest fsynced), store in a temp dir on the local disk", "cases": cases}


# ----------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def render_markdown(result: dict[str, Any]) -> str:
    acc = result["accuracy"]
    lines = ["| group | setting | B | E | train n | seed 0 | seed 1 | mean |", "|---|---|---|---|---|---|---|---|"]
    for r in acc["rows"]:
        seeds = {run["seed"]: run["test_accuracy"] for run in r["runs"]}
        lines.append(f"| {r['group']} | {r['name']} | {r['blocks']} | {r['epochs_per_block']} | {r['n_train']} | "
                     f"{_pct(seeds.get(0))} | {_pct(seeds.get(1))} | {_pct(r['mean_test_accuracy'])} |")
    return "\n".join([*lines, "", render_overhead_markdown(result["overhead"])])


def render_overhead_markdown(overhead: dict[str, Any]) -> str:
    lines = ["| case | repetitions | recorded (median) | unrecorded (median) | ratio | 90% CI (bootstrap) | "
             "ratio of totals | paired ratios (median, range) | loop-only ratio | train_block ratio | "
             "identical models |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in overhead["cases"]:
        m, p = c["median"], c["paired_ratios"]
        lo, hi = c["ratio_90ci_bootstrap"]
        lines.append(f"| {c['name']} | {c['repeats']} | {m['recorded']['wall_s']:.2f} s | "
                     f"{m['unrecorded']['wall_s']:.2f} s | **{c['ratio']:.3f}** | {lo:.3f}-{hi:.3f} | "
                     f"{c['ratio_of_totals']:.3f} | {c['paired_ratio_median']:.3f} ({min(p):.2f}-{max(p):.2f}) | "
                     f"{c['ratio_loop_only']:.3f} | {c['ratio_train_block']:.3f} | {c['identical_models']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training.json"))
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: digits only, tiny settings, a few seconds (used by the tests)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadiest on a shared 2-core machine; 0 = torch's default)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions per overhead case "
                        "(default 5; the digits cases, whose runs take under a second, 3x as many and at least 15; 2 with --quick)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="accuracy runs in parallel processes, each with --threads torch threads (default 2; "
                             "1 with --quick). The overhead section always runs alone, in this process")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled extra run of each overhead case")
    parser.add_argument("--user-trainer-only", action="store_true",
                        help="overhead: only the cases with a user trainer (label smoothing, AdamW)")
    parser.add_argument("--overhead-datasets", default="mnist,digits",
                        help="overhead: which full-size cases to run (comma-separated from mnist, digits)")
    parser.add_argument("--fsync-diagnosis", action="store_true",
                        help="add a third overhead variant: the recorded run with the store's fsync switched off")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 5)
    datasets = tuple(d.strip() for d in args.overhead_datasets.split(",") if d.strip())
    if not datasets or set(datasets) - {"mnist", "digits"}:
        parser.error(f"--overhead-datasets takes mnist, digits or both, not {args.overhead_datasets!r}")
    started = time.perf_counter()

    if args.quick:
        dataset, model, splits = "digits", "small_cnn", load_dataset("digits")
        mnist = None
    else:
        dataset, model = "mnist-t10k", "lenet5"
        splits = mnist = load_dataset("mnist-t10k") if "mnist" in datasets or not args.skip_accuracy else None
    result: dict[str, Any] = {
        "benchmark": "recorded block training: accuracy cost (Foundation item 7) and recording overhead (item 8)",
        "quick": args.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python benchmarks/bench_training.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    if not args.skip_accuracy:
        print("accuracy", file=sys.stderr)
        t0 = time.perf_counter()
        jobs = args.jobs if args.jobs is not None else (1 if args.quick else 2)
        result["accuracy"] = accuracy_section(args.quick, splits, dataset, model, jobs=jobs, threads=args.threads)
        result["accuracy"]["section_wall_s"] = round(time.perf_counter() - t0, 1)
    if not args.skip_overhead:
        print("recording overhead", file=sys.stderr)
        t0 = time.perf_counter()
        result["overhead"] = overhead_section(args.quick, repeats, mnist, fsync_diagnosis=args.fsync_diagnosis,
                                              profile=not args.no_profile, user_trainer_only=args.user_trainer_only,
                                              datasets=datasets)
        result["overhead"]["section_wall_s"] = round(time.perf_counter() - t0, 1)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    if "accuracy" in result and "overhead" in result:
        result["markdown"] = render_markdown(result)
    elif "overhead" in result:
        result["markdown"] = render_overhead_markdown(result["overhead"])
    if "markdown" in result:
        print(result["markdown"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} in {result['total_wall_s']:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
