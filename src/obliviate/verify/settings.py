"""Every setting of a verification, validated in one place (library and CLI share these checks).

Oracle count: between 4 and 128.

- At least 4: the forgotten test compares the candidate with a null built by scoring each oracle
  against the others (leave one out), so each of those needs 3 references for a mean and a spread, and
  a predictive t-test with ``N - 1 = 3`` degrees of freedom already needs a deviation of about 6
  standard deviations at ``alpha = 0.01``; below that nothing can be shown.
- At most 128: every oracle retrains blocks ``d..B`` (a run's worth of training at ``d = 1``), while
  the test's critical value stops shrinking (``t`` with 127 degrees of freedom is the normal quantile
  to 1%); more oracles cost linearly and buy nothing.
- 16 (the default): critical ``t`` about 3.3 instead of 4.0 with 8 for each of the forgotten test's two
  statistics at ``alpha = 0.01``. Measured (docs/verification.md): with 8, one-epoch fine-tuning of the
  original on retained data escaped the forgotten verdict for 2 of 24 memorised digits users (92%
  caught, below the 95% the product claims); with 16, 23 of 24 (96%), and every other fake failed
  overall for every user. ``--oracles 8`` halves the cost where that power is not needed.

Threads: torch intra-op threads while training and evaluating (restored afterwards); 1 by default,
because the blocks of small models train fastest on one thread and results then do not depend on the
core count. Seeds: oracle ``i`` of seed set ``s`` trains with data-order seed
``run seed + 1000 + 1000 s + i`` (set 0 is the one the cached oracle bank uses).

>>> VerifySettings(oracles=8).oracle_seeds(run_seed=0)[:3]
[1000, 1001, 1002]
>>> VerifySettings(oracles=2)
Traceback (most recent call last):
...
obliviate.errors.ConfigError: Expected `oracles` to be an int in [4, 128] (16 is the default, 8 faster): ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["ORACLES_DEFAULT", "ORACLES_MAX", "ORACLES_MIN", "VerifySettings", "oracle_seed"]

ORACLES_MIN, ORACLES_MAX, ORACLES_DEFAULT = 4, 128, 16
SEED_OFFSET = 1000


def oracle_seed(run_seed: int, i: int, seed_set: int = 0) -> int:
    """Data-order seed of oracle ``i`` of seed set ``seed_set``."""
    return int(run_seed) + SEED_OFFSET * (1 + int(seed_set)) + int(i)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class VerifySettings:
    """Settings of one verification. ``alpha``: level of the forgotten test (two-sided, over its two
    statistics); ``fidelity_alpha``: level of the faithful test; ``accuracy_tolerance`` and
    ``agreement_tolerance``: how far below the oracle cloud a candidate may sit before fidelity can be
    rejected (the test's null is "no more than this much worse than an oracle")."""

    oracles: int = ORACLES_DEFAULT
    seed: int = 0
    threads: int | None = 1
    alpha: float = 0.01
    fidelity_alpha: float = 0.01
    accuracy_tolerance: float = 0.005
    agreement_tolerance: float = 0.005
    canary_margin: float = 0.02

    def __post_init__(self) -> None:
        if not _is_int(self.oracles) or not ORACLES_MIN <= self.oracles <= ORACLES_MAX:
            raise ConfigError(f"Expected `oracles` to be an int in [{ORACLES_MIN}, {ORACLES_MAX}] "
                              f"({ORACLES_DEFAULT} is the default, 8 faster): fewer than {ORACLES_MIN} cannot "
                              f"show anything, more than {ORACLES_MAX} cost without sharpening the test; "
                              f"got {self.oracles!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"Expected `seed` to be an int >= 0 (the oracles' seed set), but got {self.seed!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise ConfigError(f"Expected `threads` to be an int >= 1 or None, but got {self.threads!r}")
        for name in ("alpha", "fidelity_alpha"):
            v = getattr(self, name)
            if not _is_real(v) or not 0.0 < v < 0.5:
                raise ConfigError(f"Expected `{name}` to be a float in (0, 0.5), but got {v!r}")
        for name in ("accuracy_tolerance", "agreement_tolerance", "canary_margin"):
            v = getattr(self, name)
            if not _is_real(v) or not 0.0 <= v < 1.0:
                raise ConfigError(f"Expected `{name}` to be a float in [0, 1), but got {v!r}")

    def oracle_seeds(self, run_seed: int) -> list[int]:
        return [oracle_seed(run_seed, i, self.seed) for i in range(self.oracles)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
