"""``obliviate demo [--json]``: the main job on the embedded default, end to end."""

from __future__ import annotations

import argparse

from ._common import emit_json, format_table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="train on digits with a canary user, forget them, compare with exact retrain")
    p.add_argument("--workdir", help="keep the runs in this folder (default: a temporary folder, removed)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the demo's models and batches are small, and more threads "
                        "contend with other work, many times slower on a busy machine; 0 keeps torch's default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..demo import run_demo
    from ..errors import ConfigError

    if not 0 <= args.threads <= 1024:
        raise ConfigError(f"Expected argument `--threads` to be an int in [0, 1024], but got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = run_demo(args.workdir)
    if args.json:
        emit_json(out)
        return 0
    print(f"digits, {out['blocks_total']} recorded blocks; canary user: {out['canary_samples']} samples with a "
          f"trigger patch, relabelled, in block {out['canary_block']} (a late block, so the original remembers it)\n")
    print(format_table(
        ["model", "wall s", "blocks retrained", "test acc", "agreement w/ exact", "canary ASR"],
        [["original", out["train_time_s"], "-", out["acc_original"], out["agreement_original_exact"],
          out["canary_asr_original"]],
         ["DeepObliviate", out["time_unlearn_s"], out["blocks_retrained"], out["acc_unlearned"],
          out["agreement_unlearned_exact"], out["canary_asr_unlearned"]],
         ["exact", out["time_exact_s"], out["blocks_total"] - out["d"] + 1, out["acc_exact"], 1.0,
          out["canary_asr_exact"]],
         ["retrain", out["time_retrain_s"], out["blocks_total"], out["acc_retrain"], "-", "-"]]))
    print(f"\nDeepObliviate: {out['summary']} (blocks {out['d']}..{out['t']}); as the caller waits: "
          f"{out['speedup_vs_exact']:.1f}x faster than the exact mode, {out['speedup_vs_retrain']:.1f}x faster "
          f"than retraining from scratch (timed in this run)")
    print(f"exact mode equals the retrain bit for bit: {out['exact_equals_retrain']}")
    for label, key in (("the DeepObliviate model", "verify_stitched"),
                       ("a fake (the original submitted as unlearned)", "verify_fake")):
        v = out[key]
        print(f"verify {label}: {v['verdict'].upper()} (forgotten: {v['forgotten']}, faithful: {v['faithful']})")
    return 0
