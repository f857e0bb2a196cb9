"""JSON-ready values, one rule for the whole library: numpy and torch values become Python ones, NaN and
infinities become ``None`` (strict JSON has neither), mapping keys become strings, tuples lists.

>>> import numpy as np
>>> jsonable({1: np.float32(0.5), "x": [float("nan"), np.int64(3), np.bool_(True)], "a": np.arange(2)})
{'1': 0.5, 'x': [None, 3, True], 'a': [0, 1]}
>>> jsonable(object(), other=lambda v: "kept as text")
'kept as text'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def _same(v: Any) -> Any:
    return v


def jsonable(v: Any, *, other: Callable[[Any], Any] = _same) -> Any:
    """``v`` made JSON-ready (recursively); values of any other type go through ``other`` (default: kept)."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, Mapping):
        return {str(k): jsonable(x, other=other) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x, other=other) for x in v]
    if isinstance(v, np.ndarray) or (type(v).__module__ == "torch" and hasattr(v, "tolist")):
        return jsonable(v.tolist(), other=other)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return other(v)


__all__ = ["jsonable"]
