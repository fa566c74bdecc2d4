"""Distribution drift of one partition against a trailing baseline: PSI and a KS statistic.

A numeric feature's partition is summarized by its deciles, the share of values at or below each decile (its
CDF there, which also captures ties in discrete features) and its min and max. The baseline CDF is the average
of the trailing partitions' CDFs, each interpolated between its summary points, evaluated at typical deciles
(for each decile, the baseline partitions' value closest to their mean).
"""

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class CdfSummary:
    """A partition's numeric distribution in brief: deciles, the CDF at each, min and max."""

    deciles: tuple[float, ...]
    cdf: tuple[float, ...]
    minimum: float
    maximum: float

    def at(self, x: float) -> float:
        """Return the interpolated share of values at or below `x`."""
        points: dict[float, float] = {self.minimum: 0.0}
        for q, f in zip(self.deciles, self.cdf, strict=True):
            points[q] = max(points.get(q, 0.0), f)
        points[self.maximum] = 1.0
        xs = sorted(points)
        ys = [points[p] for p in xs]
        ys = [max(ys[: i + 1]) for i in range(len(ys))]
        if x < xs[0]:
            return 0.0
        if x >= xs[-1]:
            return 1.0
        i = bisect.bisect_right(xs, x) - 1
        if xs[i] == x or i + 1 == len(xs):
            return ys[i]
        return ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i])

    def to_json(self) -> dict[str, object]:
        """Return the summary as JSON-compatible metadata."""
        return {"deciles": list(self.deciles), "cdf": list(self.cdf), "min": self.minimum, "max": self.maximum}

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> "CdfSummary":
        """Return the summary stored by `to_json`."""
        return cls(tuple(value["deciles"]), tuple(value["cdf"]), float(value["min"]), float(value["max"]))


def summarize(values: pl.Series) -> CdfSummary | None:
    """Return the CDF summary of a numeric series (None when it has no values)."""
    data = values.drop_nulls().cast(pl.Float64)
    if data.is_empty():
        return None
    deciles = tuple(float(data.quantile(i / 10)) for i in range(1, 10))
    n = data.len()
    cdf = tuple(float((data <= q).sum()) / n for q in deciles)
    return CdfSummary(deciles, cdf, float(data.min()), float(data.max()))


def population_stability_index(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """Return the PSI between two share distributions over the same (or overlapping) bins."""
    total = 0.0
    for bin_name in set(expected) | set(actual):
        e = max(expected.get(bin_name, 0.0), SHARE_FLOOR)
        a = max(actual.get(bin_name, 0.0), SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def _typical(values: Sequence[float]) -> float:
    """Return the observed value closest to the mean (so edges of discrete features stay on their values)."""
    mean = sum(values) / len(values)
    return min(values, key=lambda v: (abs(v - mean), v))


def numeric_drift(values: pl.Series, baseline: Sequence[CdfSummary]) -> tuple[float, float]:
    """Return (PSI, KS) of `values` against the average of the baseline partitions' distributions."""
    data = values.drop_nulls().cast(pl.Float64)
    if data.is_empty() or not baseline:
        return 0.0, 0.0
    edges = sorted({_typical([s.deciles[i] for s in baseline]) for i in range(9)})
    expected_cdf = [sum(s.at(edge) for s in baseline) / len(baseline) for edge in edges]
    n = data.len()
    actual_cdf = [float((data <= edge).sum()) / n for edge in edges]

    def shares(cdf: list[float]) -> dict[str, float]:
        bounds = [0.0, *cdf, 1.0]
        return {str(i): bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)}

    psi = population_stability_index(shares(expected_cdf), shares(actual_cdf))
    ks = max(abs(a - e) for a, e in zip(actual_cdf, expected_cdf, strict=True))
    return psi, ks
