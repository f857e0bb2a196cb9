"""``obliviate inspect RUN [--json]``: blocks, sizes, storage, accuracy and an integrity check.

Exit 0 when every payload matches its hash, 1 when the integrity check finds a problem.
"""

from __future__ import annotations

import argparse

from ._common import emit_json, format_table
from .subjects import add_subject_arguments, inspect_subjects


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inspect", help="show a run's blocks, storage, accuracy; check its integrity",
                       description="Show a run's blocks, storage, accuracy and requests, and check every stored "
                                   "payload against its hash. Exit 0 when intact, 1 when the check finds damage.")
    p.add_argument("run", help="run store folder")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_subject_arguments(p, "list (instead of the run report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.subject or args.subjects_file:
        return inspect_subjects(args)
    from ..store import RunStore
    from ..training.inspect import inspect_run
    from ..training.run import check_manifest_shape

    check_manifest_shape(RunStore.open(args.run).manifest, args.run)
    report = inspect_run(args.run)
    if args.json:
        emit_json(report)
    else:
        rows = [[b["index"], b["size"], b["origin"], (b["wall_time_s"] or 0.0), b["update_sha256"][:12]]
                for b in report["blocks"]]
        print(format_table(["block", "samples", "origin", "train s", "update sha256"], rows))
        print(f"\nstatus {report['status']}, {report['blocks_done']}/{report['blocks_total']} blocks, "
              f"{report['storage_bytes'] / 1e6:.2f} MB, test accuracy {report['test_accuracy']}")
        print(f"requests: {len(report['requests'])}; unreferenced files: {len(report['unreferenced_files'])}")
        model = report["config"].get("model", {})
        options = ", ".join(f"{k}={v!r}" for k, v in model.get("options", {}).items())
        print(f"model: {model.get('factory') or model.get('name')}{' (' + options + ')' if options else ''}")
        trainer, device = report["trainer"], report["config"].get("training", {}).get("device", "cpu")
        print(f"trainer: {trainer.get('name')}{' (' + trainer['path'] + ')' if trainer.get('path') else ''}; "
              f"device: {device}")
        print("integrity: OK" if report["consistent"] else "integrity: PROBLEMS\n  " + "\n  ".join(report["problems"]))
    return 0 if report["consistent"] else 1
