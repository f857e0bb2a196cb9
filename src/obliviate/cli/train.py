"""``obliviate train CONFIG --out RUN [--resume] [--model NAME|PKG.MOD:FN] [--model-option K=V ...]
[--trainer PKG.MOD:ATTR]``: recorded block training from a TOML config; ``--model`` and ``--model-option``
override its ``[model]`` section, ``--trainer`` names the user's trainer (recorded by its import path)."""

from __future__ import annotations

import argparse
import sys

from ._common import add_model_arguments, emit_json, model_overrides, wait_seconds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..data import dataset_names
    from ..models import model_names

    p = sub.add_parser("train", help="train a model block by block, recording every block",
                       description="Train block by block from a TOML config (keys: docs/config.md), recording "
                                   f"every block. Datasets: {', '.join(dataset_names())}. "
                                   f"Models: {', '.join(model_names())}, or your own factory by import path "
                                   f"(--model mypkg.models:build).")
    p.add_argument("config", help="TOML config file, e.g. configs/digits.toml")
    p.add_argument("--out", required=True, help="run store folder to create (or to finish with --resume)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run from its last stored block")
    p.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                   help="seconds (>= 0) to wait if another process holds the run (default: fail at once)")
    p.add_argument("--strict", action="store_true",
                   help="with --resume: refuse, rather than warn, when the torch version, thread count or CPU "
                        "kernels differ from the ones the run was recorded with (the result would not be bit-exact)")
    add_model_arguments(p, "the model to train, replacing the config's [model] (and its options)")
    p.add_argument("--trainer", metavar="PKG.MOD:ATTR", default=None,
                   help="your own training step: the import path of an obliviate Trainer (or of a function "
                        "returning one), e.g. a label-smoothing loss with AdamW (docs/training.md); recorded, so "
                        "forget and verify rebuild it (default: the built-in cross-entropy loop)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the inspect report) on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import RunConfig, train_run
    from ..training.inspect import inspect_run

    config = RunConfig.from_toml(args.config)
    if args.model is not None or args.model_option:
        section = model_overrides(args.model, args.model_option, config.to_dict()["model"])
        config = RunConfig.from_dict({**config.to_dict(), "model": section})
    result = train_run(config, args.out, resume=args.resume, wait=args.wait, strict=args.strict,
                       trainer=args.trainer)
    report = inspect_run(result.path, check_payloads=False)
    if args.json:
        emit_json(report)
    else:
        m = report["metrics"]
        print(f"trained {report['blocks_done']} blocks into {result.path}: test accuracy "
              f"{m.get('test_accuracy', float('nan')):.4f}, {report['storage_bytes'] / 1e6:.1f} MB stored, "
              f"{report['timing'].get('train_wall_s', 0):.1f} s", file=sys.stderr)
    return 0
