"""``obliviate subjects RUN --map FILE``: attach a data-subject index; helpers for ``forget``/``inspect --subject``.

The map is a CSV file with the columns ``subject`` and ``sample_id``. Subject keys are stored only as
keyed hashes (HMAC-SHA256); the secret comes from ``$OBLIVIATE_SUBJECT_KEY`` or ``--subject-key-file`` and
never enters the run store (see :mod:`obliviate.subjects`).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import emit_json, format_table


def add_key_file_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subject-key-file", metavar="FILE", default=None,
                   help="file holding the secret of the subject hashes (default: $OBLIVIATE_SUBJECT_KEY); "
                        "keep it outside the run store")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("subjects", help="attach a data-subject index (subject -> samples) to a run")
    p.add_argument("run", help="run store folder")
    p.add_argument("--map", required=True, metavar="FILE", help="CSV file with columns subject,sample_id")
    p.add_argument("--replace", action="store_true", help="replace the run's existing subject index")
    add_key_file_argument(p)
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for another process using the run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..subjects import attach_subjects
    from ..training import open_run

    summary = attach_subjects(open_run(args.run), args.map, key_file=args.subject_key_file, replace=args.replace,
                              wait=args.wait)
    if args.json:
        emit_json(summary)
    else:
        print(f"attached {summary['subjects']} subject(s) covering {summary['samples']} sample(s) "
              f"(keys stored as {summary['algorithm']} only)")
    return 0


def subject_keys_from_args(args: argparse.Namespace) -> list[str]:
    """The clear subject keys named by ``--subject`` and ``--subjects-file``."""
    from ..subjects import read_subject_keys

    keys = list(getattr(args, "subject", None) or [])
    if getattr(args, "subjects_file", None):
        keys += read_subject_keys(args.subjects_file)
    return keys


def add_subject_arguments(p: argparse.ArgumentParser, action: str) -> None:
    p.add_argument("--subject", action="append", metavar="KEY", default=None,
                   help=f"{action} every sample of this data subject (repeatable)")
    p.add_argument("--subjects-file", metavar="FILE", default=None, help="file of subject keys, one a line")
    add_key_file_argument(p)


def inspect_subjects(args: argparse.Namespace) -> int:
    """``obliviate inspect RUN --subject KEY``: each subject's samples and their current blocks."""
    from ..subjects import lookup_subjects
    from ..training import open_run

    found = lookup_subjects(open_run(args.run), subject_keys_from_args(args), key_file=args.subject_key_file)
    out: list[dict[str, Any]] = [s.to_dict() for s in found]
    if args.json:
        emit_json({"subjects": out})
        return 0
    rows = [[s["subject_hash"][:16], i, "deleted" if b is None else b]
            for s in out for i, b in zip(s["sample_ids"], s["blocks"])]
    print(format_table(["subject (hmac)", "sample", "block"], rows))
    return 0


def forget_from_args(args: argparse.Namespace, run_: Any, options: Any) -> Any:
    """One forget request from ``--ids`` files and/or ``--subject``/``--subjects-file`` keys; the request
    record keeps the subjects' keyed hashes only. Unknown subjects fail before anything changes."""
    from ..errors import RequestError
    from ..subjects import lookup_subjects
    from ..training import read_id_file
    from ..unlearning import forget

    ids = {i for path in args.ids or [] for i in read_id_file(path)}
    keys = subject_keys_from_args(args)
    if not args.ids and not keys:
        raise RequestError("name what to delete: --ids FILE, --subject KEY or --subjects-file FILE")
    hashes: list[str] = []
    if keys:
        found = lookup_subjects(run_, keys, key_file=args.subject_key_file)
        ids |= {i for s in found for i in s.sample_ids}
        hashes = sorted({s.subject_hash for s in found})
    return forget(run_, sorted(ids), method=args.method, options=options, wait=args.wait, subject_hashes=hashes,
                  force=getattr(args, "force", False), strict=getattr(args, "strict", False))
