"""Splitting the training ids into blocks D_1..D_B.

>>> import numpy as np
>>> blocks = partition_ids(np.arange(10), np.zeros(10, dtype=int), 3, strategy="random", seed=0)
>>> [len(b) for b in blocks], sorted(np.concatenate(blocks).tolist()) == list(range(10))
([4, 3, 3], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError


def _split_evenly(order: np.ndarray, blocks: int) -> list[np.ndarray]:
    return [np.sort(part) for part in np.array_split(order, blocks)]


def partition_ids(ids: np.ndarray, labels: np.ndarray, blocks: int, *, strategy: str, seed: int,
                  order: Sequence[int] | None = None) -> list[np.ndarray]:
    """Assign every id to exactly one of ``blocks`` blocks; each block's ids come back sorted.

    - ``random``: a seeded permutation cut into near-equal blocks;
    - ``stratified``: every label's ids are dealt round-robin across blocks, so each block keeps the
      label proportions of the whole set (up to one sample per label);
    - ``order``: the user's order (every id exactly once), cut into near-equal consecutive blocks, e.g.
      samples likely to be deleted placed last.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if blocks < 1 or blocks > len(ids):
        raise ConfigError(f"Expected `training.blocks` between 1 and the {len(ids)} training samples, "
                          f"but got {blocks}")
    rng = np.random.default_rng([seed, 0x5EED])
    if strategy == "random":
        return _split_evenly(ids[rng.permutation(len(ids))], blocks)
    if strategy == "stratified":
        labels = np.asarray(labels)
        assignment = np.empty(len(ids), dtype=np.int64)
        offset = 0
        for label in np.unique(labels):
            pos = np.flatnonzero(labels == label)
            pos = pos[rng.permutation(len(pos))]
            assignment[pos] = (offset + np.arange(len(pos))) % blocks
            offset += len(pos)
        return [np.sort(ids[assignment == b]) for b in range(blocks)]
    if strategy == "order":
        if order is None:
            raise ConfigError("partition strategy 'order' needs the order of ids")
        arr = np.asarray(order, dtype=np.int64)
        if len(arr) != len(ids) or not np.array_equal(np.sort(arr), np.sort(ids)):
            extra = np.setdiff1d(arr, ids)[:10].tolist()
            missing = np.setdiff1d(ids, arr)[:10].tolist()
            dup = len(arr) - len(np.unique(arr))
            raise ConfigError(f"the order must list every training id exactly once (unknown: {extra}, "
                              f"missing: {missing}, duplicates: {dup})")
        return [np.asarray(part) for part in np.array_split(arr, blocks)]
    raise ConfigError(f"unknown partition strategy {strategy!r}; choose random, stratified or order")


def read_id_file(path: str | Path, what: str = "id file") -> list[int]:
    """Ids from a UTF-8 text file, one per line (blank lines and ``#`` comments ignored).

    A folder, an unreadable, binary or non-UTF-8 file, a malformed line (named by its number, its content
    never quoted: the file may be anything) and a file without any id raise a :class:`ConfigError`.
    """
    from ..data.textfile import read_user_text

    path = Path(path)
    text = read_user_text(path, what)
    out: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            value = int(line)
        except ValueError:
            raise ConfigError(f"{what} {path}, line {lineno}: expected one integer sample id per line (# starts a "
                              f"comment); is it the right file?") from None
        if not -2**63 <= value < 2**63:
            raise ConfigError(f"{what} {path}, line {lineno}: the id is outside the 64-bit range sample ids take")
        out.append(value)
    if not out:
        raise ConfigError(f"{what} {path} holds no ids; write one integer sample id per line")
    return out
