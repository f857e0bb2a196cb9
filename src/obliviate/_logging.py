"""Library logging and progress: logs go to the ``obliviate`` logger; progress bars only on a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger("obliviate")

_progress_enabled: bool | None = None  # None: decide from whether stderr is a terminal


def set_progress(enabled: bool | None) -> None:
    """Force progress bars on or off (``None`` restores the default: on only when stderr is a TTY)."""
    global _progress_enabled
    _progress_enabled = enabled


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, **kw: Any) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when progress is enabled, else return it unchanged."""
    enabled = sys.stderr.isatty() if _progress_enabled is None else _progress_enabled
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, **kw)
