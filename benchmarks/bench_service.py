"""Deletion service benchmark: latency of POST /requests and requests applied per minute.

A real `obliviate serve` subprocess on 127.0.0.1 over a small digits run (5 blocks, 1 epoch, an MLP with
32 hidden units; forgets take well under a second), ``--clients`` concurrent clients each posting
``--per-client`` single-sample erasure requests. Per repetition: p50/p99 of the POST latency (202 means
durable in the ledger: one fsynced SQLite commit), and throughput = requests / (last completion - first
receipt) * 60, from the ledger's own timestamps. Variants (``--max-batch`` values) are interleaved, each
repetition on a fresh copy of the run; medians and min..max over repetitions are reported with the
machine load.

Usage: python benchmarks/bench_service.py [--clients 8] [--per-client 50] [--max-batch 8 64] [--repeats 2]
       [--window 0.3] [--out benchmarks/results/service.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the server harness is shared with the service tests

from tests.service._server import Server, copy_run, erasure, submit_all, train_service_run  # noqa: E402


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def one(master: Path, root: Path, tag: str, args: argparse.Namespace, max_batch: int, seed: int) -> dict:
    from obliviate.training import open_run

    run = open_run(copy_run(master, root / tag / "run"))
    pool = sorted(int(i) for k in range(1, run.num_blocks + 1) for i in run.block_ids(k))
    n = args.clients * args.per_client
    bodies = [erasure(f"{tag}-{j:05d}", ids=[i]) for j, i in enumerate(random.Random(seed).sample(pool, n))]
    server = Server(run.path, root / tag / "svc", window_s=args.window, max_batch=max_batch).start()
    try:
        load0 = os.getloadavg()[0]
        accepted, lat = submit_all(server, bodies, clients=args.clients)
        server.wait_all_done(accepted.values(), timeout=1800)
    finally:
        server.stop()
    with sqlite3.connect(f"file:{server.ledger}?mode=ro", uri=True) as db:
        first, last = db.execute("SELECT MIN(received), MAX(updated) FROM requests").fetchone()
        batches = db.execute("SELECT mode, COUNT(*) FROM batches GROUP BY mode").fetchall()
    return {"max_batch": max_batch, "requests": len(accepted), "post_p50_ms": 1e3 * percentile(lat, 50),
            "post_p99_ms": 1e3 * percentile(lat, 99), "applied_per_minute": len(accepted) / (last - first) * 60,
            "wall_s": last - first, "batches": dict(batches), "load_avg_1m_at_start": load0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=50)
    p.add_argument("--max-batch", type=int, nargs="+", default=[8, 64])
    p.add_argument("--window", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "service.json"))
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        master = train_service_run(root / "master").path
        reps = [one(master, root, f"r{r}-b{mb}", args, mb, seed=r) for r in range(args.repeats)
                for mb in args.max_batch]  # variants interleaved
    summary = {}
    for mb in args.max_batch:
        rs = [r for r in reps if r["max_batch"] == mb]
        summary[str(mb)] = {k: {"median": statistics.median(r[k] for r in rs), "min": min(r[k] for r in rs),
                                "max": max(r[k] for r in rs)}
                            for k in ("post_p50_ms", "post_p99_ms", "applied_per_minute")}
    out = {"benchmark": "service", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "settings": {"clients": args.clients, "per_client": args.per_client, "window_s": args.window,
                        "repeats": args.repeats, "run": "digits, 5 blocks x 1 epoch, mlp(32), deepobliviate"},
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "load_avg_1m_end": os.getloadavg()[0], "omp_threads": os.environ.get("OMP_NUM_THREADS")},
           "summary": summary, "repetitions": reps, "total_wall_s": time.time() - t0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for mb, s in summary.items():
        print(f"max_batch {mb}: POST p50 {s['post_p50_ms']['median']:.1f} ms, p99 {s['post_p99_ms']['median']:.1f} ms, "
              f"{s['applied_per_minute']['median']:.0f} requests applied/min "
              f"(range {s['applied_per_minute']['min']:.0f}..{s['applied_per_minute']['max']:.0f})")


if __name__ == "__main__":
    main()
