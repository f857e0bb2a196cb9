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


def add_model_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--model NAME|package.module:function`` and repeatable ``--model-option KEY=VALUE``."""
    p.add_argument("--model", metavar="NAME|PKG.MOD:FN", default=None,
                   help=f"{what}: a registered model name, or your own factory as package.module:function "
                        f"(called as function(input_shape, num_classes, **options); its package must be on "
                        f"PYTHONPATH)")
    p.add_argument("--model-option", action="append", default=None, metavar="KEY=VALUE", dest="model_option",
                   help="an option of the model, repeatable; VALUE is read as TOML (256, 0.5, true, [64, 32], "
                        "\"text\"), anything else as text")


def parse_model_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``--model-option`` values as a dict, each value read as a TOML value (else kept as text).

    >>> parse_model_options(["width=256", "hidden=[64, 32]", "act=relu", "bias=true"])
    {'width': 256, 'hidden': [64, 32], 'act': 'relu', 'bias': True}
    """
    from ..errors import ConfigError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--model-option {item!r}: write it as KEY=VALUE with KEY a Python name, "
                              f"e.g. --model-option width=256")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        if key in out:
            raise ConfigError(f"--model-option {key} is given twice; give each option once")
        out[key] = value
    return out


def model_overrides(model: str | None, options: Sequence[str] | None,
                    configured: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``[model]`` section after ``--model`` and ``--model-option``: ``--model`` replaces the configured
    model (and its options); ``--model-option`` alone adds to (or changes) the configured model's options.

    >>> model_overrides("mypkg.models:build", ["width=8"], {"name": "mlp", "options": {"hidden": [4]}})
    {'name': 'custom', 'factory': 'mypkg.models:build', 'options': {'width': 8}}
    >>> model_overrides(None, ["hidden=[4]"], {"name": "mlp", "options": {}, "factory": ""})
    {'name': 'mlp', 'options': {'hidden': [4]}, 'factory': ''}
    """
    from .._imports import is_import_path

    parsed = parse_model_options(options)
    if model is None:
        section = dict(configured or {})
        section["options"] = {**section.get("options", {}), **parsed}
        return section
    if is_import_path(model):
        return {"name": "custom", "factory": model, "options": parsed}
    return {"name": model, "factory": "", "options": parsed}
