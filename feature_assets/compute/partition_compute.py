"""Computing one daily partition of a feature view from its source, as exact offline rows."""

from dataclasses import dataclass
from datetime import date

import polars as pl

from feature_assets.compute.entity_slices import entity_slice, is_sliceable, plan_entity_slices
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

    When the events would not fit the offline store's memory budget, a view whose rows depend on one entity's
    events alone is computed in entity slices (see `entity_slices`) whose rows are concatenated and sorted alike.
    """
    slices = plan_entity_slices(view, offline_store, day).slices if is_sliceable(view) else 1
    if slices == 1:
        return _slice_rows(view, offline_store, day, None)
    parts = [_slice_rows(view, offline_store, day, entity_slice(view, index, slices)) for index in range(slices)]
    frame = pl.concat([part.rows for part in parts]).sort(*_identity(view), nulls_last=True, maintain_order=True)
    return PartitionRows(frame, sum(part.duplicates_collapsed for part in parts))


def _identity(view: FeatureView) -> list[str]:
    return [*view.join_keys, "event_timestamp", "created_timestamp"]


def _slice_rows(view: FeatureView, offline_store: OfflineStore, day: date, entities: pl.Expr | None) -> PartitionRows:
    """Return the partition's rows of the entities `entities` selects (all when None), sorted, duplicates collapsed.

    Rows sharing an identity keep their source order, so slices concatenated and sorted again equal the whole.
    """
    start, end = day_bounds(day, view.lookback)
    if view.streaming:
        events = stream_events(view, offline_store, start, end)
    else:
        events = normalize_source(view, offline_store.scan_source(view.source, start, end))
    if entities is not None:
        events = events.filter(entities)
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
        pushed = pushed if entities is None else pushed.filter(entities)
        output = pl.concat([output, pushed.select(list(view.output_schema))])
    frame = (
        output.filter((pl.col("event_timestamp") >= day_start) & (pl.col("event_timestamp") < day_end))
        .sort(*_identity(view), nulls_last=True, maintain_order=True)
        .collect(engine="streaming" if view.aggregations else "auto")
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
