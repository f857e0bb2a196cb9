"""Detection rate of fake deletions and false-failure rate of genuine ones, over memorised users; and the
NeurIPS 2023 challenge's forget score with N models a side.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_verify.py --users 24 --runs 4 --oracles 16 \
        --challenge 32 --out benchmarks/results/verify_digits.json
    PYTHONPATH=src OMP_NUM_THREADS=1 OBLIVIATE_DATA_DIR=/work/shared/data python benchmarks/bench_verify.py \
        --dataset mnist --users 32 --runs 4 --block 97 --min-lr-ratio 0.3 --oracles 16 --challenge 32 \
        --out benchmarks/results/verify_mnist.json

Trains ``--runs`` runs (seeds 0, 1, ...) with ``--users / --runs`` memorised users each (``[memorised]``:
mislabelled samples, round-robin over blocks 9-10 on digits, ``--block``..100 on MNIST), then per user: the oracle set (replays of blocks d..B without U), the genuine
deletions (the exact replay; ``forget(run, U)`` with the default method, not committed) and every fake of
``obliviate.verify.fakes``, each judged by the same evidence. Then, for the first user of the
second-to-last block, the challenge score of N stitch replicas, N exact deletions under other seeds and N
fine-tuned fakes against N oracles (``--challenge N``; 0 skips it), with its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from obliviate.training import RunConfig, train_run
from obliviate.training.chain import State, state_after, stitch
from obliviate.unlearning import forget
from obliviate.unlearning.engine import ForgetOptions
from obliviate.verify.candidate import gather_evidence, judge
from obliviate.verify.challenge import challenge_epsilons, score_from_epsilons
from obliviate.verify.fakes import FAKES, make_fake
from obliviate.verify.membership import model_confidences
from obliviate.verify.replays import _replay, as_model, train_oracle_set
from obliviate.verify.settings import ORACLES_DEFAULT, VerifySettings, oracle_seed


def digits_config(users: int, size: int, seed: int = 0) -> RunConfig:
    """The demo recipe (digits, B = 10, E = 10, Adam 3e-3 with cosine decay to 30%), memorised users in
    blocks 9 and 10."""
    return RunConfig.from_dict({
        "data": {"name": "digits", "validation_fraction": 0.1}, "model": {"name": "small_cnn", "options": {"width": 32}},
        "training": {"blocks": 10, "epochs_per_block": 10, "batch_size": 32, "optimizer": "adam", "lr": 0.003,
                     "schedule": "cosine", "min_lr_ratio": 0.3, "partition": "stratified", "seed": seed},
        "memorised": {"users": users, "size": size, "kind": "mislabelled", "block": 9}})


def mnist_config(users: int, size: int, seed: int = 0, block: int = 99, min_lr_ratio: float = 0.0) -> RunConfig:
    """Real MNIST (``mnist-t10k``: the official 10,000 test images from ``$OBLIVIATE_DATA_DIR``, split 8,000 /
    2,000 with seed 0), LeNet-5, B = 100, E = 5, Adam 1e-3, cosine decay to ``min_lr_ratio``; memorised users
    round-robin over blocks ``block..100``."""
    return RunConfig.from_dict({
        "data": {"name": "mnist-t10k"}, "model": {"name": "lenet5"},
        "training": {"blocks": 100, "epochs_per_block": 5, "optimizer": "adam", "lr": 0.001, "schedule": "cosine",
                     "min_lr_ratio": min_lr_ratio, "seed": seed},
        "memorised": {"users": users, "size": size, "kind": "mislabelled", "block": block}})


def _summary(report) -> dict:
    f, fa = report.forgotten, report.faithful
    return {"verdict": report.verdict, "forgotten": f["verdict"], "faithful": fa["verdict"],
            "forgotten_p": f["p_value"], "power_p": f["power_p_value"], "direction": f["direction"],
            "fidelity_p": fa["p_value"], "p_accuracy": fa["p_accuracy"], "p_agreement": fa["p_agreement"],
            "p_retained": fa["p_retained"], "p_later": fa.get("p_later"), "original_fidelity_p": fa.get("original_p_value"), "accuracy": fa["candidate"]["accuracy"],
            "agreement": fa["candidate"]["agreement"], "loss_u": f["loss_u"]["candidate"],
            "oracle_loss_u": f["loss_u"]["oracles"], "auc": report.roc["auc"]}


def _rates(rows: list[dict], kind: str) -> dict:
    sel = [r for r in rows if r["kind"] == kind and r.get("applicable", True)]
    powered = [r for r in sel if r["power_p"] is not None and r["power_p"] <= r["alpha"]]
    n = len(sel)
    return {"n": n, "forgotten_no": sum(r["forgotten"] == "no" for r in sel) / max(n, 1),
            "forgotten_nothing_measurable": sum(r["forgotten"] == "nothing measurable to forget" for r in sel) / max(n, 1),
            "faithful_no": sum(r["faithful"] == "no" for r in sel) / max(n, 1),
            "overall_fail": sum(r["verdict"] == "fail" for r in sel) / max(n, 1),
            "overall_pass": sum(r["verdict"] == "pass" for r in sel) / max(n, 1),
            "n_with_power": len(powered),
            "faithful_no_original_inside_cloud": sum(r["faithful"] == "no" and (r["original_fidelity_p"] or 0) > r["alpha"]
                                                     for r in sel) / max(n, 1),
            "forgotten_no_given_power": sum(r["forgotten"] == "no" for r in powered) / max(len(powered), 1)}


def stitch_replica(run, d: int, ids, seed: int, start) -> State:
    """Block d retrained without U under ``seed``, then the stored updates of blocks d+1..B added (a 1-block stitch)."""
    u = set(ids)
    members = [np.array([i for i in run.block_ids(d) if i not in u], dtype=np.int64)]
    after_d = _replay_prefix(run, d, start, members, seed)
    return stitch(state_after(run.store, run.num_blocks), after_d, state_after(run.store, d))


def _replay_prefix(run, d: int, start, members, seed: int) -> State:
    """Block ``d`` alone replayed from ``start`` with data-order seed ``seed`` (the engine's chain step)."""
    return _replay(run, d, start, members, seed, last=d)


def challenge_part(run, ids, n: int) -> dict:
    from obliviate.training.chain import optimizer_state_after

    t0 = time.perf_counter()
    where = run.block_of()
    d = min(where[i] for i in ids)
    u = set(ids)
    without = [np.array([i for i in run.block_ids(k) if i not in u], dtype=np.int64) for k in range(d, run.num_blocks + 1)]
    start = (state_after(run.store, d - 1), optimizer_state_after(run.store, d - 1))
    forget_set = run.train.select(torch.tensor(sorted(ids)))
    seed0 = run.config.training.seed

    def phi(states):
        return np.stack([model_confidences(as_model(run, s), forget_set).phi for s in states])

    retrained = phi([_replay(run, d, start, without, oracle_seed(seed0, i, 0)) for i in range(n)])
    exact_other = phi([_replay(run, d, start, without, oracle_seed(seed0, i, 1)) for i in range(n)])
    stitched = phi([stitch_replica(run, d, sorted(ids), oracle_seed(seed0, i, 2), start) for i in range(n)])
    original = state_after(run.store, run.num_blocks)
    fakes = phi([make_fake("finetune_retained", run, sorted(ids), original, seed=i) for i in range(n)])
    train_s = time.perf_counter() - t0
    out = {"n_models": n, "user": sorted(ids), "block": d, "train_s": train_s}
    t1 = time.perf_counter()
    for name, u_phi in (("exact_other_seeds_floor", exact_other), ("stitch_1_block", stitched),
                        ("fake_finetune_retained", fakes)):
        eps = challenge_epsilons(u_phi, retrained)
        out[name] = {"score": score_from_epsilons(eps, n), "epsilons": eps.tolist()}
    out["metric_s"] = time.perf_counter() - t1
    out["wall_s"] = time.perf_counter() - t0
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--users", type=int, default=24, help="memorised users in all (split over --runs runs)")
    p.add_argument("--runs", type=int, default=4, help="runs (seeds 0..runs-1), so few users share a block")
    p.add_argument("--size", type=int, default=2)
    p.add_argument("--oracles", type=int, default=ORACLES_DEFAULT, help=f"oracles per user (default {ORACLES_DEFAULT})")
    p.add_argument("--challenge", type=int, default=32)
    p.add_argument("--out", default="benchmarks/results/verify_digits.json")
    p.add_argument("--block", type=int, default=99, help="mnist: first block of the memorised users")
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="mnist: the cosine schedule's floor")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t_all = time.perf_counter()
    load_before = os.getloadavg()
    def make(users: int, size: int, seed: int) -> RunConfig:
        if args.dataset == "digits":
            return digits_config(users, size, seed)
        return mnist_config(users, size, seed, args.block, args.min_lr_ratio)

    settings = VerifySettings(oracles=args.oracles)
    rows: list[dict] = []
    train_s: list[float] = []
    per_run = args.users // args.runs
    first = None
    for r_seed in range(args.runs):
        cfg = make(per_run, args.size, r_seed)
        t0 = time.perf_counter()
        run = train_run(cfg, Path(tempfile.mkdtemp(prefix="bench-verify-")) / "run")
        train_s.append(time.perf_counter() - t0)
        original = state_after(run.store, run.num_blocks)
        for j, user in enumerate(run.memorised_users()):
            k = r_seed * per_run + j
            t1 = time.perf_counter()
            oracle_set = train_oracle_set(run, user, settings)
            ev = gather_evidence(run, oracle_set, settings)
            d = oracle_set.d
            if first is None and d < run.num_blocks:
                first = (run, user)
            candidates = {"genuine_exact": oracle_set.exact}
            res = forget(run, user, options=ForgetOptions(commit=False))
            candidates["genuine_forget_default"] = res.model_state
            for name in FAKES:
                candidates[f"fake_{name}"] = make_fake(name, run, user, original, seed=k)
            for kind, state in candidates.items():
                rep = judge(run, ev, as_model(run, state), settings, label=kind)
                row = {"user": k, "run_seed": r_seed, "block": d, "kind": kind, "alpha": settings.alpha,
                       **_summary(rep), "applicable": not (kind == "fake_retrain_block_no_stitch" and d == run.num_blocks)}
                if kind == "genuine_forget_default":
                    row.update({"outcome": res.outcome, "t": res.t})
                rows.append(row)
            print(f"user {k} (block {d}): " + ", ".join(f"{r['kind']}={r['verdict']}/{r['forgotten']}"
                                                       for r in rows if r["user"] == k)
                  + f" [{time.perf_counter() - t1:.1f} s]", file=sys.stderr)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    summary = {kind: _rates(rows, kind) for kind in kinds}
    by_block = {int(b): {kind: _rates([r for r in rows if r["block"] == b], kind) for kind in kinds}
                for b in sorted({r["block"] for r in rows})}
    challenge = challenge_part(first[0], first[1], args.challenge) if args.challenge and first else None
    out = {"benchmark": "verify", "dataset": args.dataset, "config": cfg.to_dict(), "runs": args.runs,
           "users": per_run * args.runs,
           "user_size": args.size, "oracles": args.oracles, "settings": settings.to_dict(),
           "train_s": train_s, "summary": summary, "by_block": by_block, "rows": rows, "challenge": challenge,
           "wall_s": time.perf_counter() - t_all,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1,
                       "load_before": load_before, "load_after": os.getloadavg(), "torch": torch.__version__},
           "command": "PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_verify.py " + " ".join(argv or sys.argv[1:])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    for kind, s in summary.items():
        print(f"{kind:32s} n={s['n']:3d} forgotten-no {s['forgotten_no']:.2f} faithful-no {s['faithful_no']:.2f} "
              f"overall-fail {s['overall_fail']:.2f}", file=sys.stderr)
    if challenge:
        print({k: v["score"] for k, v in challenge.items() if isinstance(v, dict)}, challenge["wall_s"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
