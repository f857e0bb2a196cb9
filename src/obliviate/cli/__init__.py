"""The ``obliviate`` command line: thin commands over the library API.

Exit codes: 0 ok, 1 a check failed, 2 bad usage or input. Logs go to stderr; ``--json`` puts one
machine-readable object on stdout. Each command lives in its own module with a ``register(sub)``
function that adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from .._logging import set_progress
from ..errors import CheckFailed, UsageError

# module name under obliviate.cli, in the order `obliviate --help` lists them
COMMAND_MODULES = ["demo", "train", "inspect_cmd", "forget", "verify", "audit", "report", "subjects", "serve",
                   "receipt"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obliviate", description=(
        "Forget training data fast and provably (DeepObliviate), verify it, and audit models against "
        "the classic threats to deep learning. Exit codes: 0 ok, 1 a check failed, 2 bad usage or input."))
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "json", False):
        set_progress(False)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"obliviate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(f"obliviate {args.command}: check failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"obliviate {args.command}: interrupted; stored runs are left consistent", file=sys.stderr)
        return 130
