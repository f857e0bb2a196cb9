"""``obliviate audit``: run the threat audit on a stored run's models or on one checkpoint.

``obliviate audit RUN`` audits a run's original, unlearned and exact-retrained models side by side;
``obliviate audit --model NAME --checkpoint FILE.safetensors`` audits one model: ``NAME`` is a registered
model or the user's own factory ``package.module:function``, with ``--model-option KEY=VALUE`` (repeatable).
One pivot-metric table per attack family is printed (``--markdown`` for reports, ``--json`` for machines).
``--eps`` with several values (``0.05:0.3:6`` or ``0.05,0.1``) sweeps the evasion attacks over them: robust
accuracy against epsilon per attack and the worst case per input across attacks; ``--per-sample FILE.csv``
(or ``.json``) writes one record per attacked input; ``--out FILE.json`` writes the JSON result for
``obliviate report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, UsageError


def register(sub: Any) -> None:
    from ..audit import attack_names
    from ._common import add_model_arguments

    p = sub.add_parser("audit", help="run the threat audit (evasion, extraction, inversion, poisoning)",
                       description="Run the threat audit (evasion, extraction, inversion and membership, "
                                   "poisoning) on a stored run's models or on one checkpoint, and print one "
                                   "pivot-metric table per attack family.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="attacks: " + ", ".join(attack_names()) +
                              "\nsettings per attack: NAME:key=value,key=value (e.g. pgd:eps=0.2,steps=20)")
    p.add_argument("run", nargs="?", metavar="RUN",
                   help="a stored run: audit its original, unlearned and retrained models")
    add_model_arguments(p, "the checkpoint's architecture")
    p.add_argument("--checkpoint", metavar="FILE", help="the model's state_dict as a .safetensors file")
    p.add_argument("--dataset", default=None,
                   help="registered dataset to attack with (default: the run's own data for RUN, else digits)")
    p.add_argument("--attacks", nargs="+", metavar="ATTACK",
                   help="attacks to run, space or comma separated: NAME or NAME:key=value,... (default: all)")
    p.add_argument("--eps", nargs="+", default=None, metavar="EPS",
                   help="budget for every attack that takes `eps`, in that attack's norm; several values "
                        "(0.05 0.1, 0.05,0.1 or a range START:STOP:COUNT such as 0.05:0.3:6) sweep the "
                        "evasion attacks: robust-accuracy curves and the worst case per input")
    p.add_argument("--queries", nargs="+", default=None, metavar="Q",
                   help="query budgets to sweep the extraction attacks over (fidelity against queries)")
    p.add_argument("--per-sample", metavar="FILE",
                   help="write one record per attacked input and attack (CSV for .csv, else JSON)")
    p.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE (for `obliviate report`)")
    p.add_argument("--bounds", nargs=2, type=float, metavar=("LO", "HI"), default=None,
                   help="valid input range of the data (default 0 1)")
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


def load_checkpoint_model(name: str, checkpoint: str, input_shape: tuple[int, ...], num_classes: int,
                          options: dict[str, Any] | None = None) -> nn.Module:
    """Build model ``name`` (a registered name, or the user's factory as ``package.module:function``) with
    ``options`` for the data, and load a safetensors state_dict into it."""
    from safetensors.torch import load_file

    from ..models import build_model

    path = Path(checkpoint)
    if not path.is_file():
        raise UsageError(f"checkpoint {checkpoint!r} does not exist; give a .safetensors state_dict file")
    model = build_model(name, input_shape, num_classes, seed=0, **(options or {}))
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise UsageError(f"cannot read checkpoint {checkpoint!r} as safetensors: {exc}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = " ".join(first[:3])
        shown = f"{name!r}" + (f" with options {options}" if options else "")
        raise ConfigError(f"checkpoint {checkpoint!r} does not fit model {shown} for inputs {input_shape} "
                          f"and {num_classes} classes: {detail}; give the architecture and --model-option "
                          f"values it was saved from") from exc
    return model


def _models(args: argparse.Namespace, input_shape: tuple[int, ...], num_classes: int) -> dict[str, nn.Module]:
    if args.run and (args.model or args.checkpoint):
        raise UsageError("give either RUN or --model NAME --checkpoint FILE, not both")
    if args.run:
        try:
            from ..api import load_models_for_audit
        except ImportError as exc:
            raise UsageError("auditing a run needs the run API (obliviate.api.load_models_for_audit), which "
                             "this installation lacks; audit a checkpoint with --model NAME --checkpoint FILE "
                             "instead") from exc
        return dict(load_models_for_audit(args.run))
    if not (args.model and args.checkpoint):
        raise UsageError("give a stored RUN, or --model NAME together with --checkpoint FILE")
    from ._common import parse_model_options

    options = parse_model_options(args.model_option)
    return {args.model: load_checkpoint_model(args.model, args.checkpoint, input_shape, num_classes, options)}


def _run_data(path: str) -> Any:
    """The stored run's own training and test data (members and non-members), when the run API has it."""
    try:
        from ..training import open_run
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

    from ..audit.sweep import parse_eps, run_sweep

    try:
        eps = parse_eps(args.eps) if args.eps is not None else None
    except ConfigError as exc:
        raise ConfigError(f"--eps: {exc}") from None
    queries = _parse_queries(args.queries) if args.queries is not None else None
    sweeping = bool(args.per_sample) or (eps is not None and len(eps) > 1) or queries is not None
    if not 1 <= args.max_samples <= 1_000_000:
        raise ConfigError(f"Expected argument `--max-samples` to be an int in [1, 1000000], but got {args.max_samples}")
    if not 0 <= args.threads <= 1024:
        raise ConfigError(f"Expected argument `--threads` to be an int in [0, 1024], but got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    defaults: dict[str, Any] = {"seed": args.seed, "max_samples": args.max_samples}
    if eps is not None and len(eps) == 1:
        defaults["eps"] = eps[0]
    if args.bounds is not None:
        defaults["bounds"] = tuple(args.bounds)
    for flag, value in (("--per-sample", args.per_sample), ("--out", args.out)):
        if value and not Path(value).resolve().parent.is_dir():
            raise UsageError(f"{flag} {value!r}: folder {str(Path(value).resolve().parent)!r} does not exist")
    # build (and so validate) every attack before loading anything
    specs = args.attacks or (list(SWEEP_ATTACKS) if sweeping else attack_names())
    attacks = [parse_attack_spec(spec, **defaults) for spec in split_attack_specs(specs)]
    if args.run and (args.model or args.checkpoint or args.model_option):
        raise UsageError("give either RUN or --model NAME --checkpoint FILE, not both")
    if args.run:
        require_complete(args.run, "audit", wait=30.0)
    if args.model:  # an unknown name or a factory that cannot be imported fails before any data is loaded
        from ..models import model_builder
        from ._common import parse_model_options

        model_builder(args.model)
        parse_model_options(args.model_option)
    if eps is not None and len(eps) > 1:  # every swept epsilon must suit every attack it goes to
        from ..audit.sweep import takes, with_setting

        for attack in attacks:
            if attack.family == "evasion" and takes(attack, "eps") and attack.settings().get("eps") is not None:
                for e in eps:
                    with_setting(attack, eps=e)
    data: Any = None
    if args.run and args.dataset is None:
        data = _run_data(args.run)
    if data is None:
        data = load_dataset(args.dataset or "digits")
    models = _models(args, data.input_shape, data.num_classes)
    sweep = None
    if sweeping:
        from ..audit import AuditData, AuditReport

        sweep = run_sweep(attacks, models, AuditData.coerce(data), eps if eps and len(eps) > 1 else None, queries)
        report = AuditReport(results=sweep.results)
    else:
        report = run_audit(attacks, models, data, keep_going=args.keep_going)
    payload = {"dataset": data.test.name, "models": list(models), **report.to_dict()}
    if sweep is not None:
        payload["sweep"] = sweep.to_dict()
        if args.per_sample:
            sweep.write_per_sample(args.per_sample)
    if args.out:
        _write_json(args.out, payload)
    if args.json:
        emit_json(payload)
    elif args.markdown:
        print(report.to_markdown())
        if sweep is not None:
            print("\n" + sweep_text(sweep, markdown=True))
    else:
        print(report.to_text())
        if sweep is not None:
            print("\n" + sweep_text(sweep, markdown=False))
    return 0


SWEEP_ATTACKS = ("fgsm", "pgd", "apgd")  # the default attacks of a sweep; APGD-CE is the strong white-box one


def _parse_queries(values: list[str]) -> list[int]:
    out = []
    for v in (p for item in values for p in item.split(",") if p.strip()):
        try:
            q = int(v)
        except ValueError:
            q = 0
        if q < 1:
            raise ConfigError(f"Expected every `--queries` budget to be an int >= 1, but got {v!r}")
        out.append(q)
    return sorted(set(out))


def _write_json(path: str, payload: dict[str, Any]) -> None:
    import json

    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, allow_nan=False, default=str) + "\n")
    tmp.replace(out)


def sweep_text(sweep: Any, *, markdown: bool) -> str:
    """Robust accuracy per attack and the worst case, one row per (model, attack), one column per eps."""
    lines = []
    for group in sorted({(c["model"], c["norm"]) for c in sweep.curves}):
        curves = [c for c in sweep.curves if (c["model"], c["norm"]) == group]
        worst = [w for w in sweep.worst_case if (w["model"], w["norm"]) == group]
        grid = worst[0]["eps"] if worst else curves[0]["eps"]
        rows = [[c["attack"], *[_at(c, e) for e in grid]] for c in curves]
        rows += [["worst case", *[_at(w, e) for e in grid]] for w in worst]
        headers = ["attack", *[f"eps={e:g}" for e in grid]]
        title = f"Robust accuracy against epsilon ({group[1]}), model {group[0]}"
        if markdown:
            lines += [f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        else:
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
            lines += [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths))]
            lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
        lines.append("")
    for qc in sweep.query_curves:
        pairs = ", ".join(f"{q}: {f:.3f}" for q, f in zip(qc["queries"], qc["fidelity"]) if f is not None)
        lines.append(f"extraction fidelity against queries, {qc['attack']} on {qc['model']}: {pairs}")
    return "\n".join(lines).rstrip()


def _at(curve: dict[str, Any], e: float) -> str:
    for x, v in zip(curve["eps"], curve["robust_accuracy"]):
        if abs(x - e) < 1e-12 and v is not None:
            return f"{v:.3f}"
    return "-"
