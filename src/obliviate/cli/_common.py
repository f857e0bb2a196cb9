"""Helpers shared by the commands: JSON output, tables, argument types, the run-is-complete check."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any


def wait_seconds(text: str) -> float:
    """``--wait``: a finite number of seconds >= 0 (argparse type).

    >>> wait_seconds("2.5")
    2.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0), got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= 7 * 86400):
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 604800 (a week), got {text!r}")
    return value


def int_in(lo: int, hi: int | None, why: str = "") -> Callable[[str], int]:
    """An argparse type: an int in ``[lo, hi]`` (``hi=None``: no upper bound); ``why`` explains the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"an int >= {lo}" if hi is None else f"an int >= {lo} and <= {hi}"
            raise argparse.ArgumentTypeError(f"expected {span}, got {value}{'; ' + why if why else ''}")
        return value
    parse.__name__ = "int"
    return parse


def require_complete(path: str, command: str, wait: float = 0.0) -> None:
    """Refuse a run whose training stopped half way (with the command that finishes it), or a damaged
    one (listing the damaged payloads: results computed from it could not be trusted). Reads under the
    shared lock (waiting up to ``wait`` seconds for a writer), so a concurrent commit is never mistaken
    for damage."""
    from ..errors import RequestError
    from ..store import RunStore
    from ..store.integrity import require_intact
    from ..training.run import check_manifest_shape

    store = RunStore.open(path)
    with store.lock(exclusive=False, timeout=wait):
        store.reload()
        m = store.manifest
        check_manifest_shape(m, store.root)
        if m.get("status") != "complete":
            done, total = len(m.get("blocks", [])), m.get("config", {}).get("training", {}).get("blocks", "?")
            raise RequestError(f"{path} is not fully trained ({done} of {total} blocks), so there is nothing to "
                               f"{command} yet; finish it with `obliviate train CONFIG --out {path} --resume`")
        require_intact(store, f"{command} will not use it")


def emit_json(obj: Any) -> None:
    """Write one JSON object to stdout (the only thing a ``--json`` command prints there)."""
    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, numbers formatted compactly.

    >>> print(format_table(["a", "b"], [[1, 0.5]]))
    a  b
    -  -----
    1  0.500
    """
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)
