"""The ``obliviate`` command line: thin commands over the library API.

Exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 an internal error (a bug: the message says
where to report it). Every failure a user can cause is one line on stderr naming the problem and the
fix, never a traceback. Logs go to stderr; ``--json`` puts one machine-readable object on stdout. Each
command lives in its own module with a ``register(sub)`` function that adds its parser and sets
``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from .._logging import set_progress
from ..errors import CheckFailed, UsageError, file_error

REPORT_TO = "the Obliviate issue tracker (include the command line and the output of `obliviate --version`)"

# module name under obliviate.cli, in the order `obliviate --help` lists them
COMMAND_MODULES = ["demo", "train", "inspect_cmd", "forget", "verify", "audit", "report", "subjects", "serve",
                   "receipt"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obliviate", description=(
        "Forget training data fast and provably (DeepObliviate), verify it, and audit models against "
        "the classic threats to deep learning. Exit codes: 0 ok, 1 a check failed, 2 bad usage or input, "
        "3 internal error. `obliviate COMMAND --help` describes each command."))
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details to stderr (and the traceback of an internal error)")
    parser.add_argument("--version", action="version", version=f"obliviate {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _version() -> str:
    from ..training.recording import library_versions

    v = library_versions()
    return f"{v['obliviate']} (torch {v['torch']}, Python {v['python']})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (2 for a malformed command line, 0 after --help)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed usage and the error (or the help) already
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
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
    except OSError as exc:  # a file the user named (or its disk) failed us: their problem to fix, not a bug
        print(f"obliviate {args.command}: error: {file_error(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"obliviate {args.command}: error: out of memory; use a smaller dataset, model or batch",
              file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, and where to report it
        if args.verbose:
            traceback.print_exc()
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        print(f"obliviate {args.command}: internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
              f"this is a bug in obliviate, not in your input: please report it to {REPORT_TO}"
              f"{'' if args.verbose else '; rerun with -v for the traceback'}", file=sys.stderr)
        return 3
