"""SISA benchmark on real MNIST: accuracy, single-sample deletions against retraining the whole ensemble
from scratch, and prediction latency against a single model.

Data: ``mnist-t10k`` (read from ``$OBLIVIATE_DATA_DIR``, default /work/shared/data) split 8,000 / 2,000 as in
benchmarks/bench_unlearning.py, the same 10% of the 8,000 held out (so every model trains on the 7,200
that DeepObliviate trains on), LeNet-5, Adam 1e-3, batch 32. Per setting ``SxR``:

- train the ensemble (the paper's budget: ``e' = 2R/(R+1) e`` epochs over the slices, constant rate,
  unless ``--per-slice``/``--schedule`` ask for the older recipe) and measure its test accuracy;
- ``--deletions`` single-sample deletions at chosen positions, cycling through the slices and shards
  (reported as ``(shard, slice)``), applied one after another; for each, in this one process and in
  alternating order, the forget and a from-scratch training of the whole ensemble on the same data
  (same assignment, the deleted ids removed); speedup = scratch / forget, beside the deletion's analytical
  speedup (sample-epochs) and the ceiling ``S (R + 1) / 2``; the forgotten ensemble is compared with the
  scratch one bit for bit;
- prediction latency of the ensemble against one unsliced LeNet-5 trained ``e`` epochs on all 7,200
  (batch of 512 test images and a single image), interleaved, ``--repeats`` times.

Torch runs single-threaded; the machine load (``uptime``) is recorded before and after.

Usage: python benchmarks/bench_sisa.py --settings 5x4 5x1 [--epochs 5] [--deletions 12] [--repeats 15]
       [--per-slice 0] [--schedule constant] [--tag fair] [--out benchmarks/results/sisa_mnist.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("OBLIVIATE_DATA_DIR", "/work/shared/data")

from obliviate.models import build_model
from obliviate.training import RunConfig
from obliviate.training.block import evaluate, make_optimizer, predict_logits, train_block
from obliviate.training.run import prepare_data
from obliviate.training.config import TrainingConfig
from obliviate.unlearning.sisa import SisaConfig, SisaEnsemble

RECIPE = {"data": {"name": "mnist-t10k"}, "model": {"name": "lenet5"},
          "training": {"lr": 0.001, "batch_size": 32, "optimizer": "adam", "seed": 0}}


def load_split():
    return prepare_data(RunConfig.from_dict(json.loads(json.dumps(RECIPE))))


def factory_for(data):
    return lambda: build_model("lenet5", data.train.input_shape, data.train.num_classes)


def spread(values: list[float]) -> dict:
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist()
    return {"median": q[2], "q1": q[1], "q3": q[3], "min": q[0], "max": q[4], "n": len(values)}


def load() -> dict:
    out = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"uptime": out, "loadavg": list(os.getloadavg())}


def warm_up(data) -> None:
    """Build an optimizer and train a few steps, so torch's lazy imports land in no timing."""
    model = factory_for(data)()
    cfg = TrainingConfig(epochs_per_block=1, batch_size=32)
    train_block(model, make_optimizer(model, cfg), data.train.x[:64], data.train.y[:64], block=1, num_blocks=1,
                cfg=cfg)


def train_single(data, epochs: int, training: TrainingConfig) -> tuple[torch.nn.Module, float]:
    """One unsliced LeNet-5 trained ``epochs`` epochs on the whole training set (the latency reference)."""
    torch.manual_seed(0)
    model = factory_for(data)()
    cfg = dataclasses.replace(training, epochs_per_block=epochs, blocks=1)
    optimizer = make_optimizer(model, cfg)
    t0 = time.perf_counter()
    order = torch.argsort(data.train.ids)
    train_block(model, optimizer, data.train.x[order], data.train.y[order], block=1, num_blocks=1, cfg=cfg)
    return model, time.perf_counter() - t0


def same_models(a: SisaEnsemble, b: SisaEnsemble) -> bool:
    return all(all(torch.equal(sa[k], sb[k]) for k in sa)
               for sa, sb in ((ma.state_dict(), mb.state_dict()) for ma, mb in zip(a.models, b.models)))


def positions(config: SisaConfig, n: int) -> list[tuple[int, int]]:
    """``n`` (shard, slice) positions: slices cycle R, R-1, ..., 1 and shards cycle 0..S-1."""
    S, R = config.shards, config.slices
    return [(i % S, R - (i % R)) for i in range(n)]


def bench_deletions(ens: SisaEnsemble, data, factory, n: int, rng: np.random.Generator) -> list[dict]:
    cfg = ens.config
    rows = []
    for i, (shard, slice_) in enumerate(positions(cfg, n)):
        part = ens.assignment[shard][slice_ - 1]
        victim = int(rng.choice(part))
        after = [[p[p != victim] for p in s] for s in ens.assignment]
        kept = np.sort(np.concatenate([p for s in after for p in s]))
        subset = data.train.select(torch.from_numpy(kept))
        wall, cpu = {}, {}
        scratch = result = None
        for step in (("forget", "scratch") if i % 2 == 0 else ("scratch", "forget")):  # alternate the order
            t0, c0 = time.perf_counter(), time.process_time()
            if step == "forget":
                result = ens.forget([victim])
            else:
                scratch = SisaEnsemble.train(cfg, subset, factory, assignment=after)
            wall[step], cpu[step] = time.perf_counter() - t0, time.process_time() - c0
        assert result is not None and scratch is not None
        forget_s, scratch_s = wall["forget"], wall["scratch"]
        speedup = scratch_s / forget_s
        rows.append({"id": victim, "shard": shard, "slice": slice_, "first": "forget" if i % 2 == 0 else "scratch",
                     "forget_s": forget_s, "forget_wall_time_s": result.wall_time_s, "scratch_s": scratch_s,
                     "forget_cpu_s": cpu["forget"], "scratch_cpu_s": cpu["scratch"],
                     "speedup": speedup, "cpu_speedup": cpu["scratch"] / cpu["forget"],
                     "analytical_speedup": result.analytical_speedup,
                     "ceiling": cfg.speedup_ceiling(), "above_ceiling": speedup > cfg.speedup_ceiling(),
                     "slices_retrained": result.slices_retrained, "samples_retrained": result.samples_retrained,
                     "samples_total": result.samples_total, "equal_to_scratch": same_models(ens, scratch)})
        print(f"  deletion {i + 1}/{n} at (shard {shard}, slice {slice_}): forget {forget_s:.2f} s, scratch "
              f"{scratch_s:.2f} s, {speedup:.2f}x (CPU time {rows[-1]['cpu_speedup']:.2f}x, analytical {result.analytical_speedup:.2f}x, ceiling "
              f"{cfg.speedup_ceiling():.1f}x), equal to scratch: {rows[-1]['equal_to_scratch']}", flush=True)
    return rows


def bench_latency(ens: SisaEnsemble, single: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict:
    out = {}
    for name, batch in (("batch512", x[:512]), ("single_input", x[:1])):
        S = len(ens.models)
        fns = {"ensemble": lambda b=batch: ens.predict(b), "single": lambda b=batch: predict_logits(single, b).argmax(-1),
               # control: the single model called S times in a row (what S models cost without aggregation)
               "single_x_S": lambda b=batch, S=S: [predict_logits(single, b).argmax(-1) for _ in range(S)]}
        for fn in fns.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(repeats):
            for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                t0 = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
        ratios = [a / b for a, b in zip(times["ensemble"], times["single"])]
        out[name] = {"n": len(batch), "ensemble_s": spread(times["ensemble"]), "single_s": spread(times["single"]),
                     "ratio": statistics.median(times["ensemble"]) / statistics.median(times["single"]),
                     "paired_ratio": spread(ratios), "single_x_S_s": spread(times["single_x_S"]),
                     "ratio_single_x_S": statistics.median(times["single_x_S"]) / statistics.median(times["single"])}
    return out


def bench_setting(spec: str, data, single, args, rng: np.random.Generator) -> dict:
    shards, slices = (int(v) for v in spec.lower().split("x"))
    training = TrainingConfig(lr=0.001, batch_size=32, optimizer="adam", schedule=args.schedule)
    cfg = SisaConfig(shards=shards, slices=slices, epochs=args.epochs, epochs_per_slice=args.per_slice,
                     training=training, seed=args.seed)
    factory = factory_for(data)
    print(f"setting {spec}: slice epochs {cfg.slice_epochs()}, ceiling {cfg.speedup_ceiling():.1f}x", flush=True)
    load_before = load()
    t0 = time.perf_counter()
    ens = SisaEnsemble.train(cfg, data.train, factory)
    train_s = time.perf_counter() - t0
    acc = {"vote": ens.evaluate(data.test), "mean_proba": ens.evaluate(data.test, aggregation="mean_proba")}
    shard_acc = [evaluate(m, data.test.x, data.test.y)[0] for m in ens.models]
    print(f"  trained in {train_s:.1f} s: accuracy {acc['vote']:.4f} (vote), {acc['mean_proba']:.4f} (mean), "
          f"shards {min(shard_acc):.4f}..{max(shard_acc):.4f}", flush=True)
    record = {"setting": spec, "config": cfg.to_dict(), "slice_epochs": list(cfg.slice_epochs()),
              "epochs_of_work": sum(r * e for r, e in enumerate(cfg.slice_epochs(), 1)) / slices,
              "ceiling": cfg.speedup_ceiling(), "analytical_by_slice": [cfg.analytical_speedup(r)
                                                                         for r in range(1, slices + 1)],
              "train_s": train_s, "accuracy": acc, "shard_accuracy": shard_acc, "load_before": load_before}
    if args.deletions:
        rows = bench_deletions(ens, data, factory, args.deletions, rng)
        sp = [r["speedup"] for r in rows]
        record["deletions"] = rows
        record["speedup"] = spread(sp)
        record["cpu_speedup"] = spread([r["cpu_speedup"] for r in rows])
        record["cpu_above_ceiling"] = sum(r["cpu_speedup"] > r["ceiling"] for r in rows)
        record["efficiency"] = spread([r["speedup"] / r["analytical_speedup"] for r in rows])
        record["above_ceiling"] = sum(r["above_ceiling"] for r in rows)
        record["all_equal_to_scratch"] = all(r["equal_to_scratch"] for r in rows)
        record["by_slice"] = {str(s): spread([r["speedup"] for r in rows if r["slice"] == s])
                              for s in sorted({r["slice"] for r in rows})}
        record["accuracy_after"] = ens.evaluate(data.test)
    record["latency"] = bench_latency(ens, single, data.test.x, args.repeats)
    record["load_after"] = load()
    return record


def cost_check(data, shards: int, slices: int, epochs: int, reps: int) -> dict:
    """Does a last-slice retrain cost per sample-epoch what a from-scratch shard training costs? Shard 0 of
    an ``shards x slices`` ensemble: train it from scratch, and retrain its last slice from the stored
    checkpoint (restore included, as :meth:`SisaEnsemble.forget` does), alternating, ``reps`` times; CPU
    seconds per sample-epoch of each. A ratio near 1 says the analytical (sample-epoch) speedup is the
    time speedup, so a measured speedup above the ceiling is noise, not work left undone."""
    from obliviate.unlearning.sisa import training as shard_training
    from obliviate.unlearning.sisa.persistence import CheckpointKeeper

    cfg = SisaConfig(shards=shards, slices=slices, epochs=epochs, training=TrainingConfig(lr=0.001, batch_size=32))
    factory, keeper = factory_for(data), CheckpointKeeper(None)
    parts = shard_training.seeded_assignment(cfg, data.train)[0]
    _, checkpoints, _ = shard_training.train_shard(cfg, data.train, factory, keeper, 0, parts)
    work = {"scratch": shard_training.sample_epochs(cfg, parts), "last_slice": shard_training.sample_epochs(cfg, parts, slices)}
    rate: dict[str, list[float]] = {k: [] for k in work}
    for rep in range(reps):
        for kind in (("scratch", "last_slice") if rep % 2 == 0 else ("last_slice", "scratch")):
            c0 = time.process_time()
            if kind == "scratch":
                shard_training.train_shard(cfg, data.train, factory, keeper, 0, parts)
            else:
                model, optimizer = shard_training.restore(cfg, factory, keeper, 0, checkpoints[slices - 1])
                shard_training.train_slices(cfg, data.train, keeper, 0, model, optimizer, parts, slices)
            rate[kind].append(work[kind] / (time.process_time() - c0))
    ratios = [a / b for a, b in zip(rate["last_slice"], rate["scratch"])]
    print(f"cost check {shards}x{slices}: sample-epochs per CPU s, scratch {statistics.median(rate['scratch']):.0f}, "
          f"last slice {statistics.median(rate['last_slice']):.0f}, paired ratio median {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}-{max(ratios):.3f}]", flush=True)
    return {"shards": shards, "slices": slices, "sample_epochs": work,
            "rate_per_cpu_s": {k: spread(v) for k, v in rate.items()}, "paired_ratio": spread(ratios)}


def _cell(sp: dict | None) -> str:
    if sp is None:
        return "-"
    return f"{sp['median']:.2f}x [{sp['q1']:.2f}-{sp['q3']:.2f}; {sp['min']:.2f}-{sp['max']:.2f}]"


def _name(record: dict) -> str:
    return f"{record['setting']} {record['tag']}".strip() if record.get("tag") else record["setting"]


def render(records: list[dict]) -> str:
    """Markdown tables: accuracy and speedups, then prediction latency."""
    lines = ["| setting | slice epochs (work) | rate | accuracy % vote / mean | n | median speedup, wall [IQR; range] | "
             "median speedup, CPU time [IQR; range] | analytical by slice 1..R | ceiling | above ceiling wall / CPU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        sp = r.get("speedup")
        lines.append(f"| {_name(r)} | {'/'.join(map(str, r['slice_epochs']))} ({r['epochs_of_work']:g}) | "
                     f"{r['config']['training']['schedule']} | {100 * r['accuracy']['vote']:.2f} / "
                     f"{100 * r['accuracy']['mean_proba']:.2f} | {sp['n'] if sp else 0} | {_cell(sp)} | "
                     f"{_cell(r.get('cpu_speedup'))} | {' / '.join(f'{a:.2f}' for a in r['analytical_by_slice'])} | "
                     f"{r['ceiling']:.1f}x | {r.get('above_ceiling', '-')} / {r.get('cpu_above_ceiling', '-')} |")
    lines += ["", "| setting | input | ensemble, ms (median [IQR]) | one model, ms | ratio of medians | paired ratio [IQR] | "
              "control: one model S times, ratio |", "|---|---|---|---|---|---|---|"]
    for r in records:
        for lat in r["latency"].values():
            e, o, p = lat["ensemble_s"], lat["single_s"], lat["paired_ratio"]
            control = f"{lat['ratio_single_x_S']:.2f}x" if "ratio_single_x_S" in lat else "-"
            lines.append(f"| {_name(r)} | {lat['n']} image{'s' if lat['n'] > 1 else ''} | {1e3 * e['median']:.1f} "
                         f"[{1e3 * e['q1']:.1f}-{1e3 * e['q3']:.1f}] | {1e3 * o['median']:.2f} | {lat['ratio']:.2f}x | "
                         f"{p['median']:.2f}x [{p['q1']:.2f}-{p['q3']:.2f}] | {control} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings", nargs="+", default=["5x4", "5x1"])
    ap.add_argument("--epochs", type=int, default=5, help="e: epochs of an unsliced shard model (and of the single model)")
    ap.add_argument("--per-slice", type=int, default=0, help="0: the paper's budget; n: every slice n epochs")
    ap.add_argument("--schedule", default="constant", choices=["constant", "cosine", "linear"])
    ap.add_argument("--deletions", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    ap.add_argument("--render", nargs="*", help="only print the table of these result files")
    ap.add_argument("--cost-check", metavar="SxR", help="only compare the CPU cost per sample-epoch of a last-slice "
                                                        "retrain and a from-scratch shard training")
    ap.add_argument("--out", default="benchmarks/results/sisa_mnist.json")
    args = ap.parse_args(argv)
    if args.render is not None:
        records = []
        for path in args.render:
            data = json.loads(Path(path).read_text())
            records += [{**r, "tag": data.get("tag", "")} for r in data["settings"]]
        print(render(records))
        return 0
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed + 1)
    data = load_split()
    warm_up(data)
    if args.cost_check:
        shards, slices = (int(v) for v in args.cost_check.lower().split("x"))
        record = {"command": " ".join(["python", *sys.argv]), "load_start": load(),
                  "cost_check": cost_check(data, shards, slices, args.epochs, args.repeats), "load_end": load()}
        Path(args.out).write_text(json.dumps(record, indent=1))
        return 0
    single, single_s = train_single(data, args.epochs, TrainingConfig(lr=0.001, batch_size=32, schedule=args.schedule))
    single_acc = evaluate(single, data.test.x, data.test.y)[0]
    print(f"single LeNet-5, {args.epochs} epochs on {len(data.train)}: {single_acc:.4f} in {single_s:.1f} s", flush=True)
    results = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "tag": args.tag, "machine": {"cpu": platform.processor() or platform.machine(),
                                            "cores": os.cpu_count(), "torch": torch.__version__,
                                            "torch_threads": torch.get_num_threads()},
               "load_start": load(), "data": {"name": "mnist-t10k", "n_train": len(data.train),
                                               "n_validation_held_out": len(data.validation), "n_test": len(data.test)},
               "single_model": {"epochs": args.epochs, "accuracy": single_acc, "train_s": single_s},
               "settings": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for spec in args.settings:
        results["settings"].append({**bench_setting(spec, data, single, args, rng), "tag": args.tag})
        results["load_end"] = load()
        out.write_text(json.dumps(results, indent=1))
    print(render(results["settings"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
