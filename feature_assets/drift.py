"""Distribution drift of one partition against a trailing baseline: PSI and a KS statistic."""

import math
from collections.abc import Mapping, Sequence

import polars as pl

SHARE_FLOOR = 1e-4


def population_stability_index(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """Return the PSI between two share distributions over the same (or overlapping) bins."""
    total = 0.0
    for bin_name in set(expected) | set(actual):
        e = max(expected.get(bin_name, 0.0), SHARE_FLOOR)
        a = max(actual.get(bin_name, 0.0), SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def decile_drift(values: pl.Series, baseline_deciles: Sequence[float]) -> tuple[float, float]:
    """Return (PSI, KS) of `values` against a baseline described by its nine deciles.

    The baseline puts 10% of its mass between consecutive deciles; PSI compares the share of `values` in each
    of those ten bins, and KS is the largest gap between the two CDFs at the decile points.
    """
    data = values.drop_nulls().cast(pl.Float64)
    if data.is_empty():
        return 0.0, 0.0
    edges = sorted(baseline_deciles)
    below = [int((data <= edge).sum()) for edge in edges]
    n = data.len()
    cumulative = [count / n for count in below]
    shares = [cumulative[0], *(b - a for a, b in zip(cumulative, cumulative[1:], strict=False)), 1 - cumulative[-1]]
    psi = population_stability_index(
        {str(i): 0.1 for i in range(10)}, {str(i): share for i, share in enumerate(shares)}
    )
    ks = max(abs(cdf - (i + 1) / 10) for i, cdf in enumerate(cumulative))
    return psi, ks
