"""Stable sample ids derived from the data itself, not from a sample's position.

An image folder's sample is named by its file path relative to the dataset root; its id is
:func:`stable_id` of that name: a 63-bit hash (blake2b), so adding or removing a file never shifts any
other sample's id. A table's id is its id column's integer. Ids stay plain int64 inside the library.

>>> stable_id("train/cat/0001.png") == stable_id("train/cat/0001.png")
True
>>> 0 <= stable_id("a") < 2**63
True
>>> in_held_out("train/cat/1.png", 0.0, 0), in_held_out("x", 1.0, 0)
(False, True)
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 63) - 1


def stable_id(name: str) -> int:
    """The id of the sample named ``name`` (e.g. its relative path): blake2b-64 of the UTF-8 name, top bit cleared."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little") & _MASK


def in_held_out(name: str, fraction: float, seed: int) -> bool:
    """Whether sample ``name`` belongs to the held-out (test) share ``fraction`` of a seeded split that
    depends on the name alone, so removing one sample never moves another across the split."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=8,
                                       person=b"obliviate-split").digest(), "little")
    return h < fraction * 2.0**64
