"""The binomial upper tail, exactly enough for tests at small alphas, without importing scipy.

``binomial_sf(k, n, p) = P(X >= k)`` for ``X ~ Bin(n, p)``. With ``p = 1/2`` (McNemar's exact test) the
sum is computed in integers, exactly; otherwise term by term in log space (relative error about
1e-12 over the whole range, far below any alpha the stitch guard uses). The engine's guard needs only
this; scipy.stats, which costs over a second to import, stays off the ``forget`` path.

>>> binomial_sf(8, 8, 0.5)          # 8 lost, 0 gained: McNemar's one-sided p
0.00390625
>>> round(binomial_sf(3, 10, 0.2), 6)
0.3222
>>> binomial_sf(0, 5, 0.3), binomial_sf(6, 5, 0.3)
(1.0, 0.0)
"""

from __future__ import annotations

import math
from fractions import Fraction


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``."""
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial_sf needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    if p == 0.5:
        return float(Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2 ** n))
    log_p, log_q = math.log(p), math.log1p(-p)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
            for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))
