"""Push: rows of a view on a PushSource, validated first, then written online (newer wins) and to its event log."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import pandas as pd
import polars as pl

from feature_assets.compute.partition_compute import select_output
from feature_assets.compute.source_frames import UTC_MICROSECONDS, to_utc_microseconds
from feature_assets.language.errors import FeatureReferenceError, OnlineStoreError, PushError, first_line
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository
from feature_assets.quality.schema_validation import validate_partition
from feature_assets.streaming.event_entries import simple_event_entries
from resources.offline_store import OfflineStore
from resources.online_encoding import epoch_us
from resources.online_store import RedisOnlineStore
from resources.stream_keys import Entries

PushTarget = Literal["online", "offline", "online_and_offline"]
PushRows = pl.DataFrame | pd.DataFrame | Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]]
FAILURES_SHOWN = 5


@dataclass(frozen=True)
class PushResult:
    """What one push wrote: rows accepted, stored online values replaced, event-log files and the arrival time."""

    rows: int
    online_replaced: int
    offline_files: tuple[str, ...]
    arrival: datetime


def push(
    view: FeatureView,
    rows: PushRows,
    to: PushTarget = "online_and_offline",
    *,
    online_store: RedisOnlineStore | None = None,
    offline_store: OfflineStore | None = None,
    arrival: datetime | None = None,
) -> PushResult:
    """Validate `rows` against the view's schema, then write them online and/or to the view's offline event log.

    Args:
        view: a FeatureView whose source is a PushSource.
        rows: a Polars or pandas frame, a list of dicts or a dict of lists with the join keys, `event_timestamp`
            (or the batch source's timestamp column; naive times are UTC) and every feature of the view.
        to: "online" (Redis, newer event time wins), "offline" (the event log the view's daily partitions include
            when next materialized) or "online_and_offline".
        online_store: required when writing online.
        offline_store: required when writing offline.
        arrival: the arrival time stamped on every row as `created_timestamp` (default: now).

    Raises:
        PushError: the rows do not fit the view (missing or unknown columns, dtypes, checks, duplicate identity);
            the message names the column, the row and the rule, and nothing was written anywhere.
    """
    _check_target(view, to, online_store, offline_store)
    stamp = (arrival or datetime.now(UTC)).astimezone(UTC)
    if to == "online" and view.streaming and (entries := simple_event_entries(view, rows, stamp)) is not None:
        _append_events(view, entries, online_store, ())
        return PushResult(len(entries), 0, (), stamp)
    return _write(view, _prepared(view, rows, stamp), to, online_store, offline_store, stamp)


def push_to_source(
    repository: FeatureRepository,
    source_name: str,
    rows: PushRows,
    to: PushTarget = "online_and_offline",
    *,
    online_store: RedisOnlineStore | None = None,
    offline_store: OfflineStore | None = None,
    arrival: datetime | None = None,
) -> dict[str, PushResult]:
    """Push rows to every view on the push source `source_name`; all views' rows are validated before any write.

    Each view takes the columns it reads; a column no view reads is refused.
    """
    views = [v for v in repository.views.values() if v.takes_pushes and v.source.name == source_name]
    if not views:
        known = sorted({v.source.name for v in repository.views.values() if v.takes_pushes})
        raise FeatureReferenceError(f"unknown push source {source_name!r}; known push sources: {known}")
    frame = _as_frame(f"push to source {source_name!r}", rows)
    wanted = {view.name: _read_columns(view, frame.columns) for view in views}
    unread = [c for c in frame.columns if not any(c in columns for columns in wanted.values())]
    if unread:
        raise PushError(f"push to source {source_name!r}: no view on it reads column(s) {unread}; drop them")
    for view in views:
        _check_target(view, to, online_store, offline_store)
    stamp = (arrival or datetime.now(UTC)).astimezone(UTC)
    prepared = {view.name: _prepared(view, frame.select(wanted[view.name]), stamp) for view in views}
    return {view.name: _write(view, prepared[view.name], to, online_store, offline_store, stamp) for view in views}


def _read_columns(view: FeatureView, columns: Sequence[str]) -> list[str]:
    """Return the pushed columns `view` reads (its event or row columns, the source's time column for events)."""
    if view.streaming:
        needed = {*view.join_keys, "event_timestamp", view.source.timestamp_field, *view.stream_columns}
    else:
        needed = {name for name in view.output_schema if name != "created_timestamp"} | {view.source.timestamp_field}
    return [c for c in columns if c in needed]


def _check_target(
    view: FeatureView, to: str, online_store: RedisOnlineStore | None, offline_store: OfflineStore | None
) -> None:
    """Raise unless `view` takes pushes to `to` and the stores `to` needs are given."""
    where = f"push to FeatureView {view.name!r}"
    if to not in get_args(PushTarget):
        raise PushError(f"{where}: to={to!r}; use one of {', '.join(get_args(PushTarget))}")
    if not view.takes_pushes:
        raise PushError(f"{where}: the view does not take pushed rows; give it source=PushSource(name, batch_source)")
    online, offline = to in ("online", "online_and_offline"), to in ("offline", "online_and_offline")
    if online and not view.online:
        raise PushError(f"{where}: the view is offline only (online=False); push with to='offline'")
    needed = [
        name
        for name, wanted, store in (("online_store", online, online_store), ("offline_store", offline, offline_store))
        if wanted and store is None
    ]
    if needed:
        raise PushError(f"{where}: to={to!r} needs {' and '.join(needed)}")


def _prepared(view: FeatureView, rows: PushRows, stamp: datetime) -> pl.DataFrame:
    """Return the pushed rows (or events) as the view stores them, or raise PushError naming the failing rows."""
    if view.streaming:
        return pushed_events(view, rows, stamp)
    frame = pushed_rows(view, rows, stamp)
    report = validate_partition(view, frame)
    if not report.passed:
        shown = [
            f"row {row['row']}: column {row['column']!r} fails {row['check']} (value {row['value']})"
            if row["row"] is not None
            else f"column {row['column']!r} fails {row['check']} ({row['value']})"
            for row in report.sample.head(FAILURES_SHOWN).iter_rows(named=True)
        ]
        more = f"; and {report.failures - len(shown)} more" if report.failures > len(shown) else ""
        raise PushError(f"push to FeatureView {view.name!r} refused, nothing was written: {'; '.join(shown)}{more}")
    return frame


def _write(
    view: FeatureView,
    frame: pl.DataFrame,
    to: str,
    online_store: RedisOnlineStore | None,
    offline_store: OfflineStore | None,
    stamp: datetime,
) -> PushResult:
    """Write prepared rows to the event log first, then online (events: to the view's Redis Streams)."""
    online, offline = to in ("online", "online_and_offline"), to in ("offline", "online_and_offline")
    if view.streaming:
        return _push_events(view, frame, online_store if online else None, offline_store if offline else None, stamp)
    files = tuple(offline_store.append_pushed(view, frame)) if offline and offline_store is not None else ()
    replaced = 0
    if online and online_store is not None:
        try:
            replaced = online_store.write_batch(view, frame)
        except OnlineStoreError as error:
            kept = f"; the offline event log already holds the {frame.height} rows" if files else ""
            raise OnlineStoreError(f"{error}{kept}; pushing the same rows again is safe") from error
    return PushResult(frame.height, replaced, files, stamp)


def _push_events(
    view: FeatureView,
    frame: pl.DataFrame,
    online_store: RedisOnlineStore | None,
    offline_store: OfflineStore | None,
    stamp: datetime,
) -> PushResult:
    """Append validated events to the view's event log, then to its Redis Streams for the stream workers."""
    files = tuple(offline_store.append_pushed(view, frame)) if offline_store is not None else ()
    if online_store is not None:
        _append_events(view, frame, online_store, files)
    return PushResult(frame.height, 0, files, stamp)


def _append_events(
    view: FeatureView, events: pl.DataFrame | Entries, online_store: RedisOnlineStore, files: tuple[str, ...]
) -> None:
    """Append pushed events (a frame, or encoded entries) to the view's Redis Streams."""
    try:
        online_store.append_events(view, events, pushed=True)
    except OnlineStoreError as error:
        kept = f"; the offline event log already holds the {len(events)} events" if files else ""
        raise OnlineStoreError(f"{error}{kept}") from error


def pushed_events(view: FeatureView, rows: PushRows, arrival: datetime) -> pl.DataFrame:
    """Return events pushed to a streaming view as its event log's rows: keys, times, columns; arrival = `arrival`."""
    where = f"push to FeatureView {view.name!r}"
    expected = [*view.join_keys, "event_timestamp", *view.stream_columns]
    frame = _pushed_frame(where, view, rows, expected, "events", "are not read by the view; its events have")
    schema = frame.schema
    for key, dtype in view.key_dtypes.items():
        if schema[key] != dtype and not (schema[key].is_integer() and dtype.is_integer()):
            raise PushError(f"{where}: join key {key!r} has dtype {schema[key]}; the view declares {dtype}")
    numeric = {a.column for a in view.aggregations if a.function != "count"}
    for column in sorted(numeric):
        if not schema[column].is_numeric() and schema[column] != pl.Null:
            raise PushError(f"{where}: column {column!r} has dtype {schema[column]}; aggregations need numbers")
    with_nulls = [column for column in (*view.join_keys, "event_timestamp") if frame[column].null_count()]
    if with_nulls:
        row = frame[with_nulls[0]].is_null().arg_max()
        raise PushError(f"{where} refused, nothing was written: row {row}: {with_nulls[0]!r} is null")
    return frame.select(
        *[pl.col(key).cast(dtype) for key, dtype in view.key_dtypes.items()],
        to_utc_microseconds("event_timestamp", schema["event_timestamp"]),
        _arrival_column(arrival),
        *[pl.col(column).cast(pl.Float64 if column in numeric else pl.String) for column in view.stream_columns],
    )


def pushed_rows(view: FeatureView, rows: PushRows, arrival: datetime) -> pl.DataFrame:
    """Return pushed rows as the view's offline rows: its columns and dtypes, created time = `arrival`."""
    where = f"push to FeatureView {view.name!r}"
    expected = [name for name in view.output_schema if name != "created_timestamp"]
    frame = _pushed_frame(where, view, rows, expected, "rows", "are not in the view; its columns are")
    event_dtype = frame.schema["event_timestamp"]
    stamped = frame.lazy().with_columns(
        to_utc_microseconds("event_timestamp", event_dtype),
        _arrival_column(arrival),
    )
    return select_output(view, stamped).collect()


def _arrival_column(arrival: datetime) -> pl.Expr:
    """Return the `created_timestamp` column: `arrival` as UTC microseconds on every row."""
    return pl.lit(epoch_us(arrival)).cast(UTC_MICROSECONDS).alias("created_timestamp")


def _pushed_frame(
    where: str, view: FeatureView, rows: PushRows, expected: list[str], noun: str, unknown_text: str
) -> pl.DataFrame:
    """Return pushed rows as a frame with exactly the `expected` columns and a datetime `event_timestamp`.

    The batch source's timestamp column may stand for `event_timestamp`, as datetimes or ISO 8601 text (naive text
    is UTC, as JSON and CSV carry times); a `created_timestamp` is refused (the store stamps each row's arrival time).
    """
    frame = _as_frame(where, rows)
    timestamp_field = view.source.timestamp_field
    if "event_timestamp" not in frame.columns and timestamp_field in frame.columns:
        frame = frame.rename({timestamp_field: "event_timestamp"})
    if "created_timestamp" in frame.columns:
        raise PushError(f"{where}: drop the 'created_timestamp' column; the store stamps each row's arrival time")
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        raise PushError(f"{where}: the {noun} lack column(s) {missing}; give {expected}")
    unknown = [name for name in frame.columns if name not in expected]
    if unknown:
        raise PushError(f"{where}: column(s) {unknown} {unknown_text} {expected}")
    if frame.schema["event_timestamp"] == pl.String:
        try:
            text = pl.col("event_timestamp").str.strip_chars()
            aware = pl.when(text.str.contains(r"([Zz]|[+-]\d\d:?\d\d)$")).then(text).otherwise(text + "+00:00")
            frame = frame.with_columns(aware.str.to_datetime(time_unit="us", time_zone="UTC").alias("event_timestamp"))
        except pl.exceptions.PolarsError as error:
            raise PushError(f"{where}: 'event_timestamp' text must be ISO 8601 times: {first_line(error)}") from None
    event_dtype = frame.schema["event_timestamp"]
    if not isinstance(event_dtype, pl.Datetime):
        raise PushError(f"{where}: 'event_timestamp' must be a datetime column, got {event_dtype}")
    return frame


def _as_frame(where: str, rows: PushRows) -> pl.DataFrame:
    """Return rows given as a Polars or pandas frame, a list of dicts or a dict of lists as a Polars frame."""
    if isinstance(rows, pl.DataFrame):
        return rows
    if isinstance(rows, pd.DataFrame):
        return pl.from_pandas(rows)
    try:
        if isinstance(rows, Mapping):
            return pl.DataFrame(dict(rows))
        if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
            return pl.DataFrame(list(rows), infer_schema_length=None)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as error:
        raise PushError(f"{where}: cannot read the rows as a table: {error}") from error
    raise PushError(f"{where}: rows must be a Polars or pandas frame, a list of dicts or a dict of lists")
