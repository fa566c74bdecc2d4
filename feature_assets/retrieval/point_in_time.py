"""Point-in-time retrieval: for each entity row, the feature values that were current at its timestamp."""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, get_args

import duckdb
import pandas as pd
import polars as pl

from feature_assets.compute.served_windows import served_values
from feature_assets.compute.stream_events import stream_events
from feature_assets.language.errors import EntityFrameError, FeatureReferenceError
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.on_demand import OnDemandFeatureView
from feature_assets.language.repository import FeatureRepository, ResolvedFeatures
from resources.offline_store import OfflineStore

AsOf = Literal["event", "available"]
OutputFormat = Literal["polars", "pandas"]
EntityInput = pl.DataFrame | pd.DataFrame | str | os.PathLike[str]

CHUNK_ROWS = 2_000_000
"""Entity frames longer than this are joined in time-sorted chunks, bounding the memory of one query."""

_ROW = "__row"
_TIME = "__t"
_TIME_CEIL = "__t_ceil"
_ORDER = "__o"
_AVAILABLE = "__available"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# (event, created) packed into one HUGEINT: event in the high 64 bits, created shifted to unsigned in the low 64.
_VIEW_ORDER = (
    "(epoch_us(event_timestamp)::HUGEINT << 64) + (epoch_us(created_timestamp)::HUGEINT + 9223372036854775808)"
)


@dataclass(frozen=True)
class _OutputColumn:
    """One requested feature of one view version (`key`: `view`, or `view@v<N>`) and its column in the result."""

    view: FeatureView
    key: str
    feature: str
    name: str

    @property
    def dtype(self) -> pl.DataType:
        """Return the feature's declared dtype."""
        return self.view.fields_by_name[self.feature].dtype


def get_historical_features(
    entity_df: EntityInput,
    features: Sequence[str] | FeatureService,
    *,
    repository: FeatureRepository,
    offline_store: OfflineStore,
    full_feature_names: bool = False,
    as_of: AsOf = "event",
    timestamp_column: str = "event_timestamp",
    output: OutputFormat = "polars",
) -> pl.DataFrame | pd.DataFrame:
    """Return `entity_df` plus each requested feature's latest value at or before each row's timestamp.

    `as_of="event"` takes the latest row by event time; `"available"` only rows written (created) by then, and for a
    streaming view exactly what its stream workers served at that instant, from its event log. A reference
    `view@v<N>:feature` reads version N's partitions (a previous version the repository lists).
    """
    if as_of not in get_args(AsOf):
        raise ValueError(f"as_of must be one of {get_args(AsOf)}, got {as_of!r}")
    if output not in get_args(OutputFormat):
        raise ValueError(f"output must be one of {get_args(OutputFormat)}, got {output!r}")
    resolved = repository.resolve(features)
    frame = _read_entity_frame(entity_df, offline_store)
    columns = _output_columns(resolved, full_feature_names, frame.columns)
    entities = _join_input(frame, resolved.views, timestamp_column)
    values = _apply_on_demand(
        resolved, _join(entities, resolved, columns, offline_store, as_of), columns, frame, full_feature_names
    )
    if output == "polars":
        return frame.hstack(values.get_columns())
    if isinstance(entity_df, pd.DataFrame):
        feature_frame = values.to_pandas()
        feature_frame.index = entity_df.index
        return pd.concat([entity_df, feature_frame], axis=1)
    return frame.hstack(values.get_columns()).to_pandas()


def _read_entity_frame(entity_df: EntityInput, offline_store: OfflineStore) -> pl.DataFrame:
    if isinstance(entity_df, pl.DataFrame):
        return entity_df
    if isinstance(entity_df, pd.DataFrame):
        return pl.from_pandas(entity_df)
    if isinstance(entity_df, str | os.PathLike):
        path = os.fspath(entity_df)
        options = offline_store.storage_options if path.startswith("s3://") else None
        return pl.read_parquet(path, storage_options=options)
    raise EntityFrameError(
        f"entity_df must be a polars DataFrame, a pandas DataFrame or a Parquet path, got {type(entity_df).__name__}"
    )


def _output_columns(
    resolved: ResolvedFeatures, full_feature_names: bool, entity_columns: Sequence[str]
) -> list[_OutputColumn]:
    columns: list[_OutputColumn] = []
    owners: dict[str, str] = {}
    for view, key in zip(resolved.views, resolved.keys, strict=True):
        for feature in resolved.features[key]:
            hidden = (key, feature) in resolved.inputs_only
            name = f"{key}__{feature}" if full_feature_names or hidden else feature
            if name in owners:
                raise FeatureReferenceError(
                    f"feature {feature!r} is requested from both view {owners[name]!r} and view {key!r}; "
                    f"pass full_feature_names=True to get columns "
                    f"'{owners[name]}__{feature}' and '{key}__{feature}', or request only one of them"
                )
            if name in entity_columns:
                raise EntityFrameError(
                    f"entity_df already has a column {name!r}, the output name of feature {feature!r} of view "
                    f"{key!r}; rename or drop that column"
                    + ("" if full_feature_names else ", or pass full_feature_names=True")
                )
            owners[name] = key
            columns.append(_OutputColumn(view, key, feature, name))
    for on_demand in resolved.on_demand:
        for feature in resolved.on_demand_features[on_demand.name]:
            name = f"{on_demand.name}__{feature}" if full_feature_names else feature
            if name in owners or name in entity_columns:
                raise FeatureReferenceError(
                    f"feature {feature!r} of on-demand view {on_demand.name!r} clashes with another column; "
                    "pass full_feature_names=True or rename the entity_df column"
                )
            owners[name] = on_demand.name
    return columns


def _apply_on_demand(
    resolved: ResolvedFeatures,
    values: pl.DataFrame,
    columns: Sequence[_OutputColumn],
    frame: pl.DataFrame,
    full_feature_names: bool,
) -> pl.DataFrame:
    """Add the requested on-demand features, computed from the joined inputs and the entity frame's request columns.

    Inputs fetched only for an on-demand view are dropped from the result. On-demand views read current versions,
    whose key is the view's name.
    """
    if not resolved.on_demand:
        return values
    read = {(c.key, c.feature): c.name for c in columns}
    outputs = []
    for on_demand in resolved.on_demand:
        inputs = [
            values.get_column(read[source.name, name]).alias(name)
            for source in on_demand.source_views
            for name in source.feature_names
        ]
        result = on_demand.apply(pl.DataFrame([*inputs, *_request_columns(frame, on_demand)], height=frame.height))
        for feature in resolved.on_demand_features[on_demand.name]:
            name = f"{on_demand.name}__{feature}" if full_feature_names else feature
            outputs.append(result.get_column(feature).alias(name))
    return values.drop([read[pair] for pair in resolved.inputs_only]).hstack(outputs)


def _request_columns(frame: pl.DataFrame, on_demand: OnDemandFeatureView) -> list[pl.Series]:
    """Return the entity frame's request columns an on-demand view needs, cast to their declared dtypes."""
    series = []
    for field in on_demand.request_fields:
        if field.name not in frame.columns:
            raise EntityFrameError(
                f"entity_df lacks column {field.name!r}, a request value of on-demand view {on_demand.name!r}; "
                f"add it (columns: {frame.columns})"
            )
        try:
            series.append(frame.get_column(field.name).cast(field.dtype, strict=True))
        except pl.exceptions.PolarsError as error:
            raise EntityFrameError(
                f"entity_df column {field.name!r} (request value of on-demand view {on_demand.name!r}) must be "
                f"{field.dtype}, got {frame.schema[field.name]}"
            ) from error
    return series


def _join_input(frame: pl.DataFrame, views: Iterable[FeatureView], timestamp_column: str) -> pl.DataFrame:
    """Return the narrow frame DuckDB joins: row number, join keys cast to the views' dtypes, UTC epoch micros."""
    if timestamp_column not in frame.columns:
        raise EntityFrameError(
            f"entity_df has no timestamp column {timestamp_column!r}; pass timestamp_column= naming the column "
            f"that holds each row's point in time (columns: {frame.columns})"
        )
    time_dtype = frame.schema[timestamp_column]
    if not isinstance(time_dtype, pl.Datetime):
        raise EntityFrameError(
            f"entity_df column {timestamp_column!r} must hold datetimes (naive ones are read as UTC), "
            f"found {time_dtype}; convert it to a datetime column (strings: pl.col(...).str.to_datetime())"
        )
    keys: dict[str, pl.Series] = {}
    for view in views:
        for key, expected in view.key_dtypes.items():
            series = _join_key(frame, key, expected, view)
            keys.setdefault(key, series)
    timestamp = frame.get_column(timestamp_column)
    row_dtype = pl.UInt32 if frame.height < 2**32 else pl.UInt64
    columns = [pl.int_range(0, frame.height, dtype=row_dtype, eager=True).alias(_ROW), *keys.values()]
    columns.append(timestamp.dt.epoch("us").alias(_TIME))
    if time_dtype.time_unit == "ns":
        columns.append((-((-timestamp.dt.epoch("ns")) // 1000)).alias(_TIME_CEIL))
    return pl.DataFrame(columns)


def _join_key(frame: pl.DataFrame, key: str, expected: pl.DataType, view: FeatureView) -> pl.Series:
    if key not in frame.columns:
        raise EntityFrameError(
            f"entity_df lacks column {key!r}, a join key of view {view.name!r}; add it "
            f"(dtype {expected}) to the entity rows (columns: {frame.columns})"
        )
    series = frame.get_column(key)
    actual = series.dtype
    if actual == expected:
        return series
    castable = (
        (actual.is_integer() and expected.is_integer())
        or actual == pl.Null
        or (expected == pl.String and isinstance(actual, pl.Categorical | pl.Enum))
    )
    if not castable:
        raise EntityFrameError(
            f"entity_df column {key!r} has dtype {actual}, but view {view.name!r} joins on it as {expected}; "
            f"cast the column to {expected}"
        )
    try:
        return series.cast(expected, strict=True)
    except pl.exceptions.InvalidOperationError as error:
        raise EntityFrameError(
            f"entity_df column {key!r} has values that do not fit {expected}, the dtype of that join key "
            f"in view {view.name!r}; fix the values or the entity's key_dtypes"
        ) from error


def _join(
    entities: pl.DataFrame,
    resolved: ResolvedFeatures,
    columns: Sequence[_OutputColumn],
    offline_store: OfflineStore,
    as_of: AsOf,
) -> pl.DataFrame:
    """Return the feature columns, one row per entity row, in entity row order."""
    if entities.height <= CHUNK_ROWS:
        chunks = [entities]
    else:
        chunks = [chunk.sort(_ROW) for chunk in entities.sort(_TIME).iter_slices(CHUNK_ROWS)]
    with offline_store.duckdb_connection() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        parts = [_join_chunk(connection, chunk, resolved, columns, offline_store, as_of) for chunk in chunks]
    if len(parts) == 1:
        return parts[0].drop(_ROW)
    return pl.concat(parts).sort(_ROW).drop(_ROW)


def _join_chunk(
    connection: duckdb.DuckDBPyConnection,
    entities: pl.DataFrame,
    resolved: ResolvedFeatures,
    columns: Sequence[_OutputColumn],
    offline_store: OfflineStore,
    as_of: AsOf,
) -> pl.DataFrame:
    """Return the chunk's row numbers and feature columns, one DuckDB query per view; chunks are in row order."""
    times = entities.get_column(_TIME)
    first, last = times.min(), times.max()
    ceiling = _TIME_CEIL if _TIME_CEIL in entities.columns else _TIME
    values = [entities.get_column(_ROW)]
    connection.register("entities", entities.to_arrow())
    try:
        for view in resolved.views:
            view_columns = [c for c in columns if c.view is view]
            if view.streaming and as_of == "available" and first is not None and last is not None:
                values.extend(_served_columns(view, view_columns, entities, offline_store, first, last))
                continue
            files = _partition_files(offline_store, view, first, last)
            if files:
                sql = _view_query(view, view_columns, as_of, ceiling)
                frame = connection.sql(sql, params={"files": files}).pl()
                values.extend(frame.get_column(c.name).cast(c.dtype) for c in view_columns)
            else:
                values.extend(
                    pl.repeat(None, entities.height, dtype=c.dtype, eager=True).alias(c.name) for c in view_columns
                )
    finally:
        connection.unregister("entities")
    return pl.DataFrame(values)


def _view_query(view: FeatureView, columns: Sequence[_OutputColumn], as_of: AsOf, ceiling: str) -> str:
    """Return the ASOF LEFT JOIN of the registered entities with one view's partitions, in entity order.

    `event`: view rows are ordered by (event, created) packed in a HUGEINT; an entity row at T matches the
    greatest one below (T + 1us, 0): the latest event at or before T and, among equal events, the latest created.
    `available`: a row can be seen from max(event, created) on. Keeping only rows whose (event, created) beats
    every row available no later than them leaves, per key, a sequence where the last row available at T is the
    best row available at T, so an ASOF on the availability time finds it.
    Either way the packed value carries the matched row's event time (high 64 bits) for the ttl check.
    """
    keys = view.join_keys
    selected = ", ".join(_quote(c) for c in (*keys, *(c.feature for c in columns)))
    equalities = [f"e.{_quote(k)} = v.{_quote(k)}" for k in keys]
    if as_of == "event":
        entity_rows = f"(SELECT *, (({_TIME} + 1)::HUGEINT << 64) AS {_ORDER} FROM entities)"
        view_rows = f"SELECT {selected}, {_VIEW_ORDER} AS {_ORDER} FROM read_parquet($files)"
        condition = f"e.{_ORDER} > v.{_ORDER}"
    else:
        partition = f"PARTITION BY {', '.join(_quote(k) for k in keys)} " if keys else ""
        entity_rows = "entities"
        view_rows = (
            f"SELECT {selected}, {_ORDER}, {_AVAILABLE} FROM ("
            f"SELECT {selected}, {_VIEW_ORDER} AS {_ORDER}, "
            f"greatest(epoch_us(event_timestamp), epoch_us(created_timestamp)) AS {_AVAILABLE} "
            f"FROM read_parquet($files)) "
            f"QUALIFY {_ORDER} = max({_ORDER}) OVER ({partition}ORDER BY {_AVAILABLE} "
            f"RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
        condition = f"e.{_TIME} >= v.{_AVAILABLE}"
    outputs = []
    for column in columns:
        value = f"v.{_quote(column.feature)}"
        reach = _reach(view)
        if reach is not None:
            ttl = reach // _ONE_MICROSECOND
            value = f"CASE WHEN (v.{_ORDER} >> 64)::BIGINT >= e.{ceiling} - {ttl} THEN {value} END"
        outputs.append(f"{value} AS {_quote(column.name)}")
    return (
        f"SELECT {', '.join(outputs)} FROM {entity_rows} e ASOF LEFT JOIN ({view_rows}) v "
        f"ON {' AND '.join([*equalities, condition])} ORDER BY e.{_ROW}"
    )


def _served_columns(
    view: FeatureView,
    columns: Sequence[_OutputColumn],
    entities: pl.DataFrame,
    offline_store: OfflineStore,
    first: int,
    last: int,
) -> list[pl.Series]:
    """Return a streaming view's columns as its stream workers served them at each entity row's time."""
    start = _EPOCH + timedelta(microseconds=first) - view.lookback - view.step
    end = _EPOCH + timedelta(microseconds=last) + view.step
    requests = entities.select(_ROW, *view.join_keys, _TIME)
    served = served_values(view, stream_events(view, offline_store, start, end), requests, _ROW, _TIME)
    return [served.get_column(c.feature).alias(c.name).cast(c.dtype) for c in columns]


def _reach(view: FeatureView) -> timedelta | None:
    """Return how old a matched row may be: the ttl; for aggregations, less than one step (the row at T's step).

    A windowed aggregation has a row at every step whose longest window holds events, so an older row means the
    windows at T's step are empty: the values are null, not the stale row's.
    """
    if not view.aggregations:
        return view.ttl
    within_step = view.step - _ONE_MICROSECOND
    return within_step if view.ttl is None else min(view.ttl, within_step)


def _partition_files(offline_store: OfflineStore, view: FeatureView, first: int | None, last: int | None) -> list[str]:
    """Return the view's partitions that can hold a match for entity times in [first, last] (epoch micros)."""
    if first is None or last is None:
        return []
    start: date | None = None
    reach = _reach(view)
    if reach is not None:
        start = (_EPOCH + timedelta(microseconds=first) - reach).date()
    return offline_store.partition_files(view, start, (_EPOCH + timedelta(microseconds=last)).date())


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
