"""``obliviate forget RUN --ids FILE [--method ...] [--json]``: honour a deletion request.

Ids are read one per line (``#`` comments allowed); a malformed line is an error naming its line
number; ids the run never had are an error listing them (exit 2, nothing changed); ids already
deleted are reported as a no-op. Several ``--ids`` files are coalesced into one request.
"""

from __future__ import annotations

import argparse
import sys

from ._common import emit_json, format_table, int_in, require_complete, wait_seconds
from .subjects import add_subject_arguments, forget_from_args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..unlearning import methods, stopping_rule_names

    p = sub.add_parser("forget", help="delete samples from a recorded run (DeepObliviate by default)",
                       description="Delete samples from a recorded run and commit the unlearned chain. Ids are "
                                   "read one per line (# comments allowed). Refused (exit 2, nothing changed): "
                                   "unknown ids, a damaged store, a half-trained run, and without --force a "
                                   "request for more than half the run, all of it or a whole block.")
    p.add_argument("run", help="run store folder")
    p.add_argument("--ids", action="append", metavar="FILE",
                   help="file of sample ids, one per line (repeat to coalesce several requests into one)")
    add_subject_arguments(p, "delete")
    p.add_argument("--method", choices=methods(), default="deepobliviate", help="unlearning mode")
    p.add_argument("--rule", choices=stopping_rule_names(), default="immediate", help="stopping rule")
    p.add_argument("--min-affected", type=int_in(0, None), default=0,
                   help="retrain at least this many blocks after the last block holding deleted data")
    p.add_argument("--max-affected", type=int_in(0, None), default=None,
                   help="let the rule stop after at most this many")
    p.add_argument("--no-guard", action="store_true", help="ship the stitch without validating it (not advised)")
    p.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                   help="seconds (>= 0) to wait for another obliviate process using the run (default: fail at once)")
    p.add_argument("--force", action="store_true",
                   help="allow a request that deletes more than half the run, all of it, or a whole block")
    p.add_argument("--strict", action="store_true",
                   help="with --method exact/retrain: refuse, rather than warn, when the torch version, thread "
                        "count or CPU kernels differ from the ones the run was recorded with")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import open_run, read_id_file
    from ..unlearning import Bounds, ForgetOptions, StitchGuard, make_stopping_rule

    for path in args.ids or []:  # a malformed ids file is named before anything else
        read_id_file(path)
    require_complete(args.run, "forget", args.wait)
    options = ForgetOptions(rule=make_stopping_rule(args.rule),
                            bounds=Bounds(args.min_affected, args.max_affected),
                            guard=StitchGuard(enabled=not args.no_guard))
    result = forget_from_args(args, open_run(args.run), options)
    out = result.to_dict()
    if args.json:
        emit_json(out)
        return 0
    if result.noop:
        print(f"nothing to do: all {len(result.ids_already_deleted)} id(s) were already deleted", file=sys.stderr)
        return 0
    plan = result.plan.get("predicted_s", {})
    print(format_table(["request", "method", "outcome", "deleted", "blocks d..t", "wall s", "predicted exact s",
                        "val acc before", "val acc after"],
                       [[result.request_id, result.method, result.summary, len(result.ids_deleted),
                         f"{result.d}..{result.t}", result.wall_time_s, plan.get("exact", float("nan")),
                         result.accuracy_before["validation"], result.accuracy_after["validation"]]]))
    if result.ids_already_deleted:
        print(f"{len(result.ids_already_deleted)} id(s) were already deleted (no-op for them)")
    for g in result.guard:
        if not g["passed"]:
            print(f"guard rejected the stitch after block {g['block']}: {'; '.join(g['reasons'])}")
    for note in result.plan.get("notes", []):
        print(f"plan: {note}")
    print(f"purged {len(result.purged_files)} stored payload(s) of the old chain")
    return 0
