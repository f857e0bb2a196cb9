"""``obliviate audit``: run the threat audit on a stored run's models or on one checkpoint.

``obliviate audit RUN`` audits a run's original, unlearned and exact-retrained models side by side;
``obliviate audit --model NAME --checkpoint FILE.safetensors`` audits one model. One pivot-metric table
per attack family is printed (``--markdown`` for reports, ``--json`` for machines).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, UsageError


def register(sub: Any) -> None:
    from ..audit import attack_names

    p = sub.add_parser("audit", help="run the threat audit (evasion, extraction, inversion, poisoning)",
                       description="Run the threat audit (evasion, extraction, inversion and membership, "
                                   "poisoning) on a stored run's models or on one checkpoint, and print one "
                                   "pivot-metric table per attack family.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="attacks: " + ", ".join(attack_names()) +
                              "\nsettings per attack: NAME:key=value,key=value (e.g. pgd:eps=0.2,steps=20)")
    p.add_argument("run", nargs="?", metavar="RUN",
                   help="a stored run: audit its original, unlearned and retrained models")
    p.add_argument("--model", metavar="NAME", help="registered model name of the checkpoint")
    p.add_argument("--checkpoint", metavar="FILE", help="the model's state_dict as a .safetensors file")
    p.add_argument("--dataset", default=None,
                   help="registered dataset to attack with (default: the run's own data for RUN, else digits)")
    p.add_argument("--attacks", nargs="+", metavar="ATTACK",
                   help="attacks to run, space or comma separated: NAME or NAME:key=value,... (default: all)")
    p.add_argument("--eps", type=float, default=None, help="budget for every attack that takes `eps`, in that attack's norm")
    p.add_argument("--max-samples", type=int, default=200,
                   help="inputs per attack, for the attacks that take it (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of every attack (default: 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the audit's models and batches are small, and more "
                        "threads contend with other work; 0 keeps torch's default)")
    p.add_argument("--keep-going", action="store_true", help="record a failing attack and go on")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object on stdout")
    out.add_argument("--markdown", action="store_true", help="Markdown tables on stdout")
    p.set_defaults(func=run)


def load_checkpoint_model(name: str, checkpoint: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build registered model ``name`` for the data and load a safetensors state_dict into it."""
    from safetensors.torch import load_file

    from ..models import build_model

    path = Path(checkpoint)
    if not path.is_file():
        raise UsageError(f"checkpoint {checkpoint!r} does not exist; give a .safetensors state_dict file")
    model = build_model(name, input_shape, num_classes, seed=0)
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise UsageError(f"cannot read checkpoint {checkpoint!r} as safetensors: {exc}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise ConfigError(f"checkpoint {checkpoint!r} does not fit model {name!r} for inputs {input_shape} "
                          f"and {num_classes} classes: {detail}") from exc
    return model


def _models(args: argparse.Namespace, input_shape: tuple[int, ...], num_classes: int) -> dict[str, nn.Module]:
    if args.run and (args.model or args.checkpoint):
        raise UsageError("give either RUN or --model NAME --checkpoint FILE, not both")
    if args.run:
        try:
            from ..api import load_models_for_audit  # type: ignore[attr-defined]
        except ImportError as exc:
            raise UsageError("auditing a run needs the run API (obliviate.api.load_models_for_audit), which "
                             "this installation lacks; audit a checkpoint with --model NAME --checkpoint FILE "
                             "instead") from exc
        return dict(load_models_for_audit(args.run))
    if not (args.model and args.checkpoint):
        raise UsageError("give a stored RUN, or --model NAME together with --checkpoint FILE")
    return {args.model: load_checkpoint_model(args.model, args.checkpoint, input_shape, num_classes)}


def _run_data(path: str) -> Any:
    """The stored run's own training and test data (members and non-members), when the run API has it."""
    try:
        from ..training import open_run  # type: ignore[attr-defined]
    except ImportError:
        return None
    from ..audit import AuditData

    run = open_run(path)
    return AuditData(run.train, run.test)


def split_attack_specs(specs: list[str]) -> list[str]:
    """``fgsm,pgd`` as well as ``fgsm pgd``; a comma inside a spec's settings stays with its spec.

    >>> split_attack_specs(["fgsm,pgd:eps=0.2,steps=20", "cw"])
    ['fgsm', 'pgd:eps=0.2,steps=20', 'cw']
    """
    out: list[str] = []
    for spec in specs:
        for part in spec.split(","):
            if out and "=" in part and ":" not in part and ":" in out[-1]:
                out[-1] += "," + part  # a further key=value of the previous NAME:key=value spec
            elif part.strip():
                out.append(part.strip())
    return out


def run(args: argparse.Namespace) -> int:
    from ..audit import attack_names, parse_attack_spec, run_audit
    from ..data import load_dataset
    from ._common import emit_json, require_complete

    if args.eps is not None and not (math.isfinite(args.eps) and args.eps > 0):
        raise ConfigError(f"Expected argument `--eps` to be a positive float, but got {args.eps}")
    if not 1 <= args.max_samples <= 1_000_000:
        raise ConfigError(f"Expected argument `--max-samples` to be an int in [1, 1000000], but got {args.max_samples}")
    if not 0 <= args.threads <= 1024:
        raise ConfigError(f"Expected argument `--threads` to be an int in [0, 1024], but got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    defaults: dict[str, Any] = {"seed": args.seed, "max_samples": args.max_samples}
    if args.eps is not None:
        defaults["eps"] = args.eps
    # build (and so validate) every attack before loading anything
    attacks = [parse_attack_spec(spec, **defaults) for spec in split_attack_specs(args.attacks or attack_names())]
    if args.run:
        require_complete(args.run, "audit", wait=30.0)
    data: Any = None
    if args.run and args.dataset is None:
        data = _run_data(args.run)
    if data is None:
        data = load_dataset(args.dataset or "digits")
    models = _models(args, data.input_shape, data.num_classes)
    report = run_audit(attacks, models, data, keep_going=args.keep_going)
    if args.json:
        emit_json({"dataset": data.test.name, "models": list(models), **report.to_dict()})
    elif args.markdown:
        print(report.to_markdown())
    else:
        print(report.to_text())
    return 0
