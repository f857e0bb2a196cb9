"""Benchmark: what the integrity check before a forget adds to a one-block forget on digits.

Trains ``configs/digits.toml`` (20 blocks) once, then ``--repeats`` times, interleaved: on a fresh copy
of the run, a DeepObliviate forget of one sample of the last block (so one block is retrained), and,
separately timed, the check it runs first (:func:`obliviate.store.integrity.require_intact`) with a cold
hash cache (every payload hashed) and with a warm one (a second request in the same process: stats
only). The JSON at ``--out`` records every time, medians and the spread, and the machine load.

    python benchmarks/bench_integrity.py [--out benchmarks/results/integrity.json] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from obliviate.store import hash_cache, integrity  # noqa: E402
from obliviate.training import RunConfig, open_run, train_run  # noqa: E402
from obliviate.unlearning import forget  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/integrity.json"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-integrity-"))
    try:
        master = train_run(RunConfig.from_toml(ROOT / "configs/digits.toml"), work / "master")
        n_files = len(master.store.referenced_files())
        n_bytes = master.store.storage_bytes()
        cold, warm, total = [], [], []
        for r in range(args.repeats):
            copy = work / f"r{r}"
            shutil.copytree(master.path, copy)
            run = open_run(copy)
            hash_cache.clear(run.path)
            t0 = time.perf_counter()
            integrity.require_intact(run.store, "forget will not commit onto it")
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            integrity.require_intact(run.store, "forget will not commit onto it")
            warm.append(time.perf_counter() - t0)
            hash_cache.clear(run.path)  # the forget below pays the cold check itself, as on a store copied elsewhere
            victim = int(run.block_ids(run.num_blocks)[0])
            t0 = time.perf_counter()
            forget(run, [victim])
            total.append(time.perf_counter() - t0)
            shutil.rmtree(copy)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def summary(xs: list[float]) -> dict[str, float]:
        return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs)}

    out = {
        "what": "integrity check before a one-block DeepObliviate forget, configs/digits.toml (20 blocks)",
        "payload_files": n_files, "payload_bytes": n_bytes, "repeats": args.repeats, "threads": args.threads,
        "check_cold": summary(cold), "check_warm": summary(warm), "forget_total_incl_cold_check": summary(total),
        "cold_check_share_of_forget": statistics.median(cold) / statistics.median(total),
        "times": {"cold": cold, "warm": warm, "forget": total},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0],
                    "torch": torch.__version__},
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("payload_files", "payload_bytes", "check_cold", "check_warm",
                                           "forget_total_incl_cold_check", "cold_check_share_of_forget")}, indent=1))


if __name__ == "__main__":
    main()
