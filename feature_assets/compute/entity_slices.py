"""Entity slices: how many parts a partition's computation is split into to fit the memory budget, and their rows."""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow.parquet as pq

from feature_assets.language.feature_view import FeatureView
from feature_assets.language.sources import ParquetSource
from resources.offline_store import OfflineStore, day_bounds

SLICE_SEED = 1_310
"""Fixed seed of the entity hash, so a slice holds the same entities in every process (Polars 2.1 hashes)."""

VALUE_BYTES = 8
"""Bytes a fixed-width value takes in a frame; strings are counted as `STRING_BYTES`."""

STRING_BYTES = 32
"""Bytes a string value is counted as: its 16-byte view and a short payload."""

AGGREGATION_MEMORY_FACTOR = 4
"""Peak bytes of a windowed aggregation (Polars' streaming engine) per byte of the events it reads, measured on the
demo's driver_trip_stats (nine aggregations, events of 7 eight-byte columns, 50k drivers): peak RSS grows by about
104 bytes per event over a fixed 0.7 GB (the in-memory engine: 194 bytes per event), and a Dagster run adds 0.3 GB;
224 bytes per event keeps a 2 GiB slice's whole run under its budget (factor 3 gave 2.3 GB at 100M events)."""

ROWS_MEMORY_FACTOR = 3
"""Peak bytes of a plain view's rows per byte of them: the rows, their sorted copy and the duplicate check."""

MAX_SLICES = 256
"""At most this many slices: each reads the whole source again, so beyond this the reads cost more than they save."""


@dataclass(frozen=True)
class SlicePlan:
    """The estimated events a partition reads, the bytes each costs while computing, and the slices chosen."""

    events: int
    event_bytes: int
    slices: int


def is_sliceable(view: FeatureView) -> bool:
    """Return whether each entity's rows depend on its own events alone: aggregations or plain (untransformed) rows
    of a view with join keys."""
    return bool(view.join_keys) and (bool(view.aggregations) or (view.transformation is None and view.sql is None))


def plan_entity_slices(view: FeatureView, offline_store: OfflineStore, day: date) -> SlicePlan:
    """Return how many entity slices computing the view's partition of `day` needs to fit the memory budget.

    Events are counted from Parquet footers (row groups whose timestamp statistics overlap the range the partition
    reads, plus the view's pushed rows). Only a view that `is_sliceable` may be computed in slices.
    """
    start, end = day_bounds(day, view.lookback)
    events = estimated_source_events(offline_store, view.source, start, end) + _pushed_events(view, offline_store, day)
    event_bytes = _event_bytes(view, offline_store, start, end)
    needed = math.ceil(events * event_bytes / max(1, offline_store.memory_budget_bytes))
    return SlicePlan(events, event_bytes, min(MAX_SLICES, max(1, needed)))


def entity_slice(view: FeatureView, index: int, slices: int) -> pl.Expr:
    """Return the predicate selecting the rows of slice `index` of `slices`: a seeded hash of the join keys.

    Keys are cast to their declared dtypes first, so an entity hashes alike in the source and in pushed rows.
    """
    keys = [pl.col(key).cast(dtype, strict=False) for key, dtype in view.key_dtypes.items()]
    return pl.struct(keys).hash(seed=SLICE_SEED) % slices == index


def estimated_source_events(offline_store: OfflineStore, source: ParquetSource, start: datetime, end: datetime) -> int:
    """Return the rows of the source's row groups whose timestamp statistics overlap `[start, end)`.

    A row group without usable statistics counts whole, so the estimate errs high.
    """
    filesystem = offline_store.filesystem
    events = 0
    for path in filesystem.glob(offline_store.resolve(source.path)):
        with filesystem.open(path, "rb") as file:
            metadata = pq.ParquetFile(file).metadata
        column = _column_index(metadata, source.timestamp_field)
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            if column is None or _overlaps(row_group.column(column).statistics, start, end):
                events += row_group.num_rows
    return events


def _column_index(metadata: pq.FileMetaData, name: str) -> int | None:
    for index in range(metadata.num_columns):
        if metadata.schema.column(index).path == name:
            return index
    return None


def _overlaps(statistics: object, start: datetime, end: datetime) -> bool:
    """Return whether a column chunk's [min, max] may hold a moment in `[start, end)` (naive times are UTC)."""
    if statistics is None or not statistics.has_min_max:
        return True
    low, high = statistics.min, statistics.max
    if not isinstance(low, datetime) or not isinstance(high, datetime):
        return True
    low, high = (moment if moment.tzinfo else moment.replace(tzinfo=UTC) for moment in (low, high))
    return low < end and high >= start


def _pushed_events(view: FeatureView, offline_store: OfflineStore, day: date) -> int:
    """Return the rows pushed to the view on the days its partition of `day` reads (counted from footers)."""
    if view.streaming:
        first = (day_bounds(day, view.lookback)[0]).date()
        days = [first + timedelta(days=i) for i in range((day - first).days + 2)]
    elif view.takes_pushes:
        days = [day]
    else:
        return 0
    return sum(_pushed_rows(view, offline_store, pushed_day) for pushed_day in days)


def _pushed_rows(view: FeatureView, offline_store: OfflineStore, day: date) -> int:
    pushed = offline_store.scan_pushed(view, day)
    return 0 if pushed is None else pushed.select(pl.len()).collect().item()


def _event_bytes(view: FeatureView, offline_store: OfflineStore, start: datetime, end: datetime) -> int:
    """Return the estimated peak bytes one event costs: its columns' widths times the measured memory factor."""
    schema = offline_store.scan_source(view.source, start, end).collect_schema()
    if view.aggregations:
        read = [*view.join_keys, *sorted({a.column for a in view.aggregations})]
        widths = [_width(schema.get(name)) for name in read]
        return (sum(widths) + 3 * VALUE_BYTES) * AGGREGATION_MEMORY_FACTOR
    widths = [_width(dtype) for dtype in view.output_schema.values()]
    return sum(widths) * ROWS_MEMORY_FACTOR


def _width(dtype: pl.DataType | None) -> int:
    return STRING_BYTES if dtype is None or dtype in (pl.String, pl.Binary) or dtype.is_nested() else VALUE_BYTES
