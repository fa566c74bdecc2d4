"""Computing one daily partition of a feature view from its source, as exact offline rows."""

from dataclasses import dataclass
from datetime import date

import polars as pl

from feature_assets.compute.source_frames import UTC_MICROSECONDS, normalize_source, to_utc_microseconds
from feature_assets.compute.sql_rows import sql_rows
from feature_assets.compute.stream_events import stream_events
from feature_assets.compute.windowed_aggregation import aggregate_windows
from feature_assets.language.errors import TransformationOutputError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.field import widens
from resources.offline_store import OfflineStore, day_bounds


@dataclass(frozen=True)
class PartitionRows:
    """A computed partition: its rows, and how many exact duplicate rows were collapsed into them."""

    rows: pl.DataFrame
    duplicates_collapsed: int


def compute_partition(view: FeatureView, offline_store: OfflineStore, day: date) -> PartitionRows:
    """Return the view's rows whose event time falls in the UTC `day`, sorted by identity, duplicates collapsed.

    A row's identity is (join keys, event_timestamp, created_timestamp). Exact duplicate rows (a snapshot exported
    twice) collapse to one; rows that share an identity but differ in a value stay, for the schema check to refuse.
    Windowed aggregations emit one row per entity and step, so they have no duplicates to look for. A view on a
    push source also holds the day's pushed rows (its event log), each with its arrival time as created time; a view
    on a stream source aggregates its batch source's events and the events pushed to it.
    """
    start, end = day_bounds(day, view.lookback)
    if view.streaming:
        events = stream_events(view, offline_store, start, end)
    else:
        events = normalize_source(view, offline_store.scan_source(view.source, start, end))
    if view.aggregations:
        rows = aggregate_windows(events, view, day)
    elif view.transformation is not None:
        rows = view.transformation(events)
    elif view.sql is not None:
        rows = sql_rows(view, events)
    else:
        rows = events
    day_start, day_end = day_bounds(day)
    output = select_output(view, rows)
    pushed = offline_store.scan_pushed(view, day) if view.takes_pushes and not view.streaming else None
    if pushed is not None:
        output = pl.concat([output, pushed.select(list(view.output_schema))])
    frame = (
        output.filter((pl.col("event_timestamp") >= day_start) & (pl.col("event_timestamp") < day_end))
        .sort(*view.join_keys, "event_timestamp", "created_timestamp", nulls_last=True)
        .collect()
    )
    if view.aggregations:
        return PartitionRows(frame, 0)
    unique = frame.unique(maintain_order=True)
    return PartitionRows(unique, frame.height - unique.height)


def select_output(view: FeatureView, rows: pl.LazyFrame) -> pl.LazyFrame:
    """Select the view's columns in order, casting only where no value can change (wider ints, UTC).

    Other dtypes are left as they are, for the schema check to name.
    """
    if not isinstance(rows, pl.LazyFrame):
        raise TransformationOutputError(
            f"FeatureView {view.name!r}: the transformation must return a polars LazyFrame, got {type(rows).__name__}"
        )
    schema = rows.collect_schema()
    expected = view.output_schema
    missing = [name for name in expected if name not in schema]
    if missing:
        raise TransformationOutputError(
            f"FeatureView {view.name!r}: the computed rows lack column(s) {missing}; "
            f"they have {list(schema)}. Return every join key, event_timestamp and each schema field."
        )
    columns = []
    for name, dtype in expected.items():
        actual = schema[name]
        if actual == dtype:
            columns.append(pl.col(name))
        elif dtype == UTC_MICROSECONDS and isinstance(actual, pl.Datetime):
            columns.append(to_utc_microseconds(name, actual))
        elif widens(actual, dtype):
            columns.append(pl.col(name).cast(dtype))
        else:
            columns.append(pl.col(name))
    return rows.select(columns)
