"""Planning a point-in-time join within a memory budget: blocks of entity rows by time, hash buckets per view.

Each view's partitions say, from their Parquet footers, how many rows each day holds. A block of entity rows (in
time order, from `first` to `last`) needs the view rows with event time in `[first - reach, last]`, or every row up
to `last` when the view has no ttl. Blocks grow while every bounded view's rows for the block, with the block's
entity rows, fit the budget; a view whose rows still do not fit (no ttl, or a day alone too big) is split into
buckets by join-key hash, each reading its share of the view. A view without join keys cannot be split: every
entity row matches the same rows.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from feature_assets.language.feature_view import FeatureView
from feature_assets.retrieval.asof_query import reach
from resources.offline_store import PartitionSize

DAY_US = 86_400_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JOIN_ROW_OVERHEAD = 2.0
"""How much memory a row takes in DuckDB's ASOF join (sorted and partitioned), relative to its column widths."""
ORDER_BYTES = 16
"""The packed (event, created) HUGEINT each joined row carries."""
STRING_BYTES = 16
"""DuckDB's fixed part of a string value, added to its average length."""
LATE_FETCH_BYTES = 256
"""Views whose requested features are wider than this per row are joined on row positions, their features read after."""
FILE_ROW_BYTES = 120.0
"""What a row position (file name and row number) takes in the join."""
_CANDIDATE_CUTS = 4096
_FIXED_WIDTHS: dict[type[pl.DataType], float] = {
    pl.Boolean: 1.0,
    pl.Int8: 1.0,
    pl.UInt8: 1.0,
    pl.Int16: 2.0,
    pl.UInt16: 2.0,
    pl.Int32: 4.0,
    pl.UInt32: 4.0,
    pl.Float32: 4.0,
    pl.Int64: 8.0,
    pl.UInt64: 8.0,
    pl.Float64: 8.0,
    pl.Int128: 16.0,
}


@dataclass(frozen=True)
class ViewVolume:
    """One view's rows per partition day and the memory one of its rows takes in the join."""

    key: str
    splittable: bool
    late_fetch: bool
    reach_us: int | None
    day_starts: np.ndarray
    cumulative_rows: np.ndarray
    row_bytes: float

    def rows_between(self, low: int | None, high: int) -> float:
        """Return the estimated rows with event time in `[low, high]`, each day's rows spread evenly over the day."""
        return self._rows_before(high + 1) - (0.0 if low is None else self._rows_before(low))

    def bytes_for(self, first: int, last: int) -> float:
        """Return the estimated join memory of the view rows entity times in `[first, last]` can match."""
        low = None if self.reach_us is None else first - self.reach_us
        return self.rows_between(low, last) * self.row_bytes

    def _rows_before(self, moment: int) -> float:
        index = int(np.searchsorted(self.day_starts, moment, side="right")) - 1
        if index < 0:
            return 0.0
        day_rows = self.cumulative_rows[index + 1] - self.cumulative_rows[index]
        fraction = min(1.0, (moment - int(self.day_starts[index])) / DAY_US)
        return float(self.cumulative_rows[index]) + fraction * float(day_rows)


@dataclass(frozen=True)
class JoinBlock:
    """Entity rows `[start, stop)` of the time-sorted frame, and how many hash buckets each view is read in."""

    start: int
    stop: int
    buckets: dict[str, int]


def view_volume(key: str, view: FeatureView, features: Sequence[str], sizes: Sequence[PartitionSize]) -> ViewVolume:
    """Return the volume of one view version from its partitions' footers, counting only the columns a join reads."""
    epoch = np.datetime64("1970-01-01", "D")
    day_starts = np.array([(np.datetime64(s.day, "D") - epoch).astype(np.int64) * DAY_US for s in sizes], np.int64)
    cumulative = np.concatenate([[0], np.cumsum([s.rows for s in sizes], dtype=np.int64)])
    rows = max(1, int(cumulative[-1]))

    def width(names: Iterable[str]) -> float:
        dtypes = {**view.key_dtypes, **{f.name: f.dtype for f in view.schema}}
        return sum(column_width(dtypes[n], sum(s.column_bytes.get(n, 0) for s in sizes) / rows) for n in names)

    feature_width = width(features)
    late_fetch = feature_width > LATE_FETCH_BYTES
    carried = FILE_ROW_BYTES if late_fetch else feature_width
    row_bytes = (ORDER_BYTES + width(view.join_keys) + carried) * JOIN_ROW_OVERHEAD
    limit = reach(view)
    reach_us = None if limit is None else limit // timedelta(microseconds=1)
    return ViewVolume(key, bool(view.join_keys), late_fetch, reach_us, day_starts, cumulative, row_bytes)


def column_width(dtype: pl.DataType, average_stored_bytes: float) -> float:
    """Return the bytes one value of `dtype` takes in memory; variable-width values use their stored average."""
    physical = pl.Series(dtype=dtype).to_physical().dtype
    return _FIXED_WIDTHS.get(type(physical), STRING_BYTES + average_stored_bytes)


def plan_join(
    times: np.ndarray, volumes: Sequence[ViewVolume], entity_row_bytes: float, budget: int
) -> list[JoinBlock]:
    """Return blocks covering the time-sorted entity `times` (epoch micros), each within `budget` bytes per query."""
    count = len(times)
    bounded = [v for v in volumes if v.reach_us is not None]

    def fits(start: int, stop: int) -> bool:
        entity_bytes = (stop - start) * entity_row_bytes
        if entity_bytes > budget / 2:
            return False
        first, last = int(times[start]), int(times[stop - 1])
        return all(entity_bytes + v.bytes_for(first, last) <= budget for v in bounded)

    stride = max(1, math.ceil(count / _CANDIDATE_CUTS))
    blocks = []
    start = 0
    while start < count:
        low, high = 1, math.ceil((count - start) / stride)
        while low < high:
            middle = (low + high + 1) // 2
            if fits(start, min(count, start + middle * stride)):
                low = middle
            else:
                high = middle - 1
        stop = min(count, start + low * stride)
        entity_bytes = (stop - start) * entity_row_bytes
        first, last = int(times[start]), int(times[stop - 1])
        buckets = {
            v.key: max(1, math.ceil((entity_bytes + v.bytes_for(first, last)) / budget)) if v.splittable else 1
            for v in volumes
        }
        blocks.append(JoinBlock(start, stop, buckets))
        start = stop
    return blocks


def sizes_for(
    sizes: Sequence[PartitionSize], view: FeatureView, first: int | None, last: int | None
) -> list[PartitionSize]:
    """Return the partitions among `sizes` that can hold a match for entity times in [first, last] (epoch micros)."""
    if first is None or last is None:
        return []
    start, end = matchable_days(view, first, last)
    return [s for s in sizes if (start is None or s.day >= start) and s.day <= end]


def matchable_days(view: FeatureView, first: int, last: int) -> tuple[date | None, date]:
    """Return the first (None: every earlier day) and last partition day a match for times in [first, last] is in."""
    limit = reach(view)
    start = None if limit is None else (EPOCH + timedelta(microseconds=first) - limit).date()
    return start, (EPOCH + timedelta(microseconds=last)).date()
