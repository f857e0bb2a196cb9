"""``obliviate report RUN --out report.html [--verify FILE.json] [--audit FILE.json ...]``: one
self-contained HTML page of a run (training, forget requests, verification, threat audit)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report of a run",
                       description="Write one self-contained HTML report (figures embedded, no network) of a "
                                   "run: training, every forget request, and optionally a verification and "
                                   "audit results.")
    p.add_argument("run", metavar="RUN", help="run store folder")
    p.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write (e.g. report.html)")
    p.add_argument("--verify", metavar="FILE", help="verification JSON (`obliviate verify RUN --json > FILE`)")
    p.add_argument("--audit", action="append", default=[], metavar="FILE",
                   help="audit JSON (`obliviate audit RUN ... --out FILE`); repeat for several")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the report needs jinja2 and matplotlib ({exc}); install them with "
                         "`pip install 'obliviate[report]'`") from exc
    from ..reports import write_report

    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {args.out!r}: give an .html file name, e.g. report.html")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"--out {args.out!r}: folder {str(out.resolve().parent)!r} does not exist")
    path = write_report(args.run, out, verify=args.verify, audits=args.audit)
    print(f"wrote {path}")
    return 0
