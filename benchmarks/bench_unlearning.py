"""Unlearning benchmark: DeepObliviate against retraining from scratch, the exact mode, and SISA.

For every (dataset, B): train a recorded run (with a 10-sample canary user in a late block, image data
only), then time, in this one process:
- two retrains from scratch without a deleted sample (data-order seeds s and s+1): the speedup
  denominator, and the noise floor (their accuracy gap and prediction agreement);
- for each random deletion (one sample, and one 10-sample user, at random block positions):
  DeepObliviate (committed to a copy of the store, so its I/O counts) and the exact mode (its oracle);
- the canary user's deletion: attack success before and after.
SISA (S shards, R slices) is trained on the same data once per dataset for its accuracy, single-
deletion speedup and prediction latency.

Usage: python benchmarks/bench_unlearning.py [--datasets digits mnist ...] [--blocks 20 50 100]
       [--positions 10] [--out benchmarks/results/unlearning.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from obliviate.training import RunConfig, open_run, predict_logits, train_run
from obliviate.training.run import Run
from obliviate.unlearning import ForgetOptions, forget

SETTINGS = {
    "digits": {"data": {"name": "digits"}, "model": {"name": "small_cnn", "options": {"width": 32}},
               "training": {"epochs_per_block": 10, "lr": 0.003, "min_lr_ratio": 0.05, "partition": "stratified"}},
    "mnist": {"data": {"name": "mnist-t10k"}, "model": {"name": "lenet5"},
              "training": {"epochs_per_block": 5, "lr": 0.001, "batch_size": 32}},
    "digits60k": {"data": {"name": "digits-60k"}, "model": {"name": "small_cnn", "options": {"width": 32}},
                  "training": {"epochs_per_block": 2, "lr": 0.002, "batch_size": 64}},
    "purchase": {"data": {"name": "purchase-synthetic"}, "model": {"name": "mlp"},
                 "training": {"epochs_per_block": 5, "lr": 0.001, "batch_size": 32}},
}
IMAGE = {"digits", "mnist", "digits60k"}


def config_for(name: str, blocks: int, seed: int = 0) -> RunConfig:
    raw = json.loads(json.dumps(SETTINGS[name]))
    raw["training"].update({"blocks": blocks, "seed": seed})
    raw["store"] = {"snapshot_every": 10}
    if name in IMAGE:
        raw["canary"] = {"block": max(1, round(0.9 * blocks)), "count": 10, "trigger_size": 3 if name == "mnist" else 2}
    return RunConfig.from_dict(raw)


def copy_run(run: Run, root: Path, tag: str) -> Run:
    dst = root / tag
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(run.path, dst)
    return open_run(dst)


def with_seed(run: Run, seed: int) -> Run:
    """The same store and data with another data-order seed (for a noise-floor retrain)."""
    return Run(run.store, run.config.replace(training={"seed": seed}), run.data)


def preds(model, x):
    return predict_logits(model, x).argmax(1)


def run_model(run: Run, state) -> torch.nn.Module:
    from obliviate.training import load_state

    model = run.build_model()
    load_state(model, state)
    return model


def bench_setting(name: str, blocks: int, positions: int, root: Path, rng: np.random.Generator,
                  kinds: tuple[str, ...] = ("sample", "user10")) -> dict:
    cfg = config_for(name, blocks)
    t0 = time.perf_counter()
    base = train_run(cfg, root / f"{name}-{blocks}")
    record = {"dataset": name, "blocks": blocks, "n_train": len(base.train), "n_validation": len(base.validation),
              "n_test": len(base.test), "train_recorded_s": time.perf_counter() - t0,
              "storage_bytes": base.store.storage_bytes(), "acc_original": base.manifest["metrics"]["test_accuracy"]}
    x_test = base.test.x
    canary = set(base.canary_ids())
    pool = [i for i in base.train.ids.tolist() if i not in canary]
    block_of = base.block_of()
    # retrains from scratch: speedup denominator and noise floor
    victim = [int(rng.choice(pool))]
    retrain_times, floor_models = [], []
    for seed in (cfg.training.seed, cfg.training.seed + 1):
        copy = copy_run(base, root, "retrain")
        r = forget(with_seed(copy, seed), victim, method="retrain")
        retrain_times.append(r.wall_time_s)
        floor_models.append(copy.final_model() if seed == cfg.training.seed else
                            run_model(copy, r.model_state))
    p0, p1 = preds(floor_models[0], x_test), preds(floor_models[1], x_test)
    acc = lambda p: float((p == base.test.y).float().mean())  # noqa: E731
    record["retrain_s"] = retrain_times
    retrain_s = statistics.median(retrain_times)
    record["noise_floor"] = {"agreement": float((p0 == p1).float().mean()), "acc_gap": abs(acc(p0) - acc(p1))}
    rows = []
    for kind, size in (("sample", 1), ("user10", 10)):
        if kind not in kinds:
            continue
        for _ in range(positions):
            k = int(rng.integers(1, blocks + 1))
            members = [i for i in base.block_ids(k).tolist() if i not in canary]
            u = sorted(int(i) for i in rng.choice(members, size=min(size, len(members)), replace=False))
            rows.append(_one_deletion(base, root, kind, u, k, retrain_s, x_test, acc))
    record["deletions"] = rows
    if canary:
        row = _one_deletion(base, root, "canary10", sorted(canary), block_of[min(canary)], retrain_s, x_test, acc,
                            canary=True)
        record["canary"] = row
    record["summary"] = summarize(rows, record)
    return record


def _one_deletion(base: Run, root: Path, kind: str, u: list[int], k: int, retrain_s: float, x_test, acc,
                  canary: bool = False) -> dict:
    copy = copy_run(base, root, "forget")
    before = copy.final_model() if canary else None
    r = forget(copy, u)
    unlearned = copy.final_model()
    ex = forget(base, u, method="exact", options=ForgetOptions(commit=False, function_residual=False))
    exact = run_model(base, ex.model_state)
    pu, pe = preds(unlearned, x_test), preds(exact, x_test)
    row = {"kind": kind, "block": k, "n": len(u), "outcome": r.outcome, "blocks_retrained": r.blocks_retrained,
           "forget_s": r.wall_time_s, "speedup": retrain_s / r.wall_time_s, "acc_unlearned": acc(pu),
           "acc_exact": acc(pe), "agreement": float((pu == pe).float().mean()),
           "residual_rel_l1": [x["rel_l1"] for x in r.residuals], "probe_tv": [x["probe_tv"] for x in r.residuals],
           "guard_passed": [g["passed"] for g in r.guard]}
    if canary:
        row["canary_asr_original"] = _asr(base, before)
        row["canary_asr_unlearned"] = _asr(base, unlearned)
        row["canary_asr_exact"] = _asr(base, exact)
    return row


def _asr(run: Run, model) -> float:
    hits, trials = run.canary_success(model)
    return hits / trials


def summarize(rows: list[dict], record: dict) -> dict:
    out = {}
    for kind in sorted({r["kind"] for r in rows}):
        sel = [r for r in rows if r["kind"] == kind]
        sp = [r["speedup"] for r in sel]
        gaps = [abs(r["acc_unlearned"] - r["acc_exact"]) for r in sel]
        agr = [r["agreement"] for r in sel]
        out[kind] = {"median_speedup": statistics.median(sp), "worst_speedup": min(sp),
                     "median_acc_gap": statistics.median(gaps), "worst_acc_gap": max(gaps),
                     "median_agreement": statistics.median(agr), "worst_agreement": min(agr),
                     "median_blocks_retrained": statistics.median(r["blocks_retrained"] for r in sel),
                     "stitched_share": sum(r["outcome"] == "stitched" for r in sel) / len(sel)}
    return out


def bench_sisa(name: str, root: Path, rng: np.random.Generator, shards: int = 5, slices: int = 4) -> dict | None:
    try:
        from obliviate.unlearning.sisa import SisaConfig, SisaEnsemble
    except ImportError:
        return None
    from obliviate.models import build_model
    from obliviate.training.run import prepare_data

    cfg = config_for(name, 20)
    data = prepare_data(cfg)
    factory = lambda: build_model(cfg.model.name, data.train.input_shape, data.train.num_classes,  # noqa: E731
                                  seed=cfg.training.seed, **cfg.model.options)
    scfg = SisaConfig(shards=shards, slices=slices, epochs_per_slice=cfg.training.epochs_per_block,
                      training=cfg.training)
    t0 = time.perf_counter()
    ens = SisaEnsemble.train(scfg, data.train, factory)
    train_s = time.perf_counter() - t0
    acc = ens.evaluate(data.test)
    times = []
    for _ in range(3):
        victim = [int(rng.choice(data.train.ids.numpy()))]
        res = ens.forget(victim)
        times.append(res.wall_time_s)
    single = factory()
    x = data.test.x[:512]
    t_single = statistics.median(_latency(single, x) for _ in range(7))
    return {"shards": shards, "slices": slices, "accuracy": acc, "train_s": train_s,
            "forget_s": times, "speedup": train_s / statistics.median(times),
            "latency_s": ens.prediction_latency(x, repeats=7), "latency_single_model_s": t_single}


def _latency(model, x) -> float:
    t0 = time.perf_counter()
    predict_logits(model, x)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist", "digits60k", "purchase"],
                    choices=sorted(SETTINGS))
    ap.add_argument("--blocks", nargs="+", type=int, default=[20, 50, 100])
    ap.add_argument("--positions", type=int, default=10)
    ap.add_argument("--kinds", nargs="+", default=["sample", "user10"], choices=["sample", "user10"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sisa", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/unlearning.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # pay torch's one-time lazy imports before timing
    rng = np.random.default_rng(args.seed)
    results = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": args.threads, "cpu": platform.processor() or platform.machine()},
               "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "settings": [], "sisa": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="obliviate-bench-") as tmp:
        root = Path(tmp)
        for name in args.datasets:
            for blocks in args.blocks:
                print(f"[bench] {name} B={blocks}", file=sys.stderr, flush=True)
                rec = bench_setting(name, blocks, args.positions, root, rng, tuple(args.kinds))
                results["settings"].append(rec)
                print(json.dumps({"dataset": name, "blocks": blocks, **rec["summary"],
                                  "floor": rec["noise_floor"]}), file=sys.stderr, flush=True)
                out.write_text(json.dumps(results, indent=1))
                shutil.rmtree(root / f"{name}-{blocks}", ignore_errors=True)
            if not args.no_sisa:
                results["sisa"][name] = bench_sisa(name, root, rng)
                out.write_text(json.dumps(results, indent=1))
    print(str(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
