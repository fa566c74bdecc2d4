"""The entity rows of a point-in-time join: the caller's frame read and checked, and the narrow frame DuckDB joins."""

import os
from collections.abc import Iterable

import pandas as pd
import polars as pl

from feature_assets.language.errors import EntityFrameError
from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore

EntityInput = pl.DataFrame | pd.DataFrame | str | os.PathLike[str]

ROW = "__row"
"""The entity row's position in the caller's frame."""
TIME = "__t"
"""The entity row's point in time, UTC epoch microseconds rounded down."""
TIME_CEIL = "__t_ceil"
"""The point in time rounded up to a microsecond; present only when the caller's times are nanoseconds."""


def read_entity_frame(entity_df: EntityInput, offline_store: OfflineStore) -> pl.DataFrame:
    """Return the caller's entity rows as a polars frame (from polars, pandas or a Parquet path)."""
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


def join_input(frame: pl.DataFrame, views: Iterable[FeatureView], timestamp_column: str) -> pl.DataFrame:
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
    columns = [pl.int_range(0, frame.height, dtype=row_dtype, eager=True).alias(ROW), *keys.values()]
    columns.append(timestamp.dt.epoch("us").alias(TIME))
    if time_dtype.time_unit == "ns":
        columns.append((-((-timestamp.dt.epoch("ns")) // 1000)).alias(TIME_CEIL))
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
