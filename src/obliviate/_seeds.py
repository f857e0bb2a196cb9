"""Every seed the library derives, in one place. The mixers are frozen: recorded runs replay bit for bit
only while they give the same numbers, so the doctest pins their values.

- :func:`block_seed` (splitmix-style over 64-bit words): a run's block ``k`` trains under
  ``block_seed(seed, k)`` and epoch ``e`` of it draws its minibatch order from ``block_seed(seed, k, e)``
  (``training/block.py``);
- :func:`sequence_seed` (numpy's ``SeedSequence``): a SISA ensemble's shard initialisation and slice
  orders, salted by :data:`SISA_INIT` and :data:`SISA_ORDER` (``unlearning/sisa``);
- :func:`stream_seed` (SplitMix64's finaliser): one RNG stream per input of an evasion attack
  (``audit/evasion/_base.py``).

Plain offsets from the run seed: the validation split draws with ``seed + VALIDATION_SPLIT``
(``training/run.py``); noise-floor oracle ``i`` trains with ``seed + ORACLE_OFFSET + i`` and seed set ``s``
with ``seed + ORACLE_OFFSET * (1 + s) + i`` (``verify/oracles.py``, ``verify/settings.py``).

>>> block_seed(0, 1), block_seed(0, 1, 2)
(5232054368819540721, 7403171608453988909)
>>> sequence_seed(0, SISA_INIT, 1), stream_seed(0, 1)
(7203126130259618810, 2987412613737217876)
"""

from __future__ import annotations

import numpy as np

VALIDATION_SPLIT = 7919
ORACLE_OFFSET = 1000
SISA_INIT, SISA_ORDER = 2, 3

_M64 = 0xFFFFFFFFFFFFFFFF


def block_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across platforms and Python versions."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & _M64)) * 0xBF58476D1CE4E5B9 & _M64
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def sequence_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and small non-negative integers (numpy ``SeedSequence``), stable across
    platforms."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def stream_seed(seed: int, index: int) -> int:
    """A 63-bit seed for input ``index`` under attack seed ``seed`` (two rounds of SplitMix64's finaliser,
    Steele, Lea and Flood 2014), so neighbouring indices get unrelated streams.

    >>> stream_seed(0, 1) != stream_seed(0, 2) != stream_seed(1, 1)
    True
    """
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & _M64
    for _ in range(2):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        z ^= z >> 31
    return z >> 1


__all__ = ["ORACLE_OFFSET", "SISA_INIT", "SISA_ORDER", "VALIDATION_SPLIT", "block_seed", "sequence_seed",
           "stream_seed"]
