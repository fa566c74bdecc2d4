"""Normalization of raw source rows into the store's columns: join keys, UTC timestamps, raw columns."""

import polars as pl

from feature_assets.language.errors import SourceSchemaError, TransformationOutputError
from feature_assets.language.feature_view import FeatureView

UTC_MICROSECONDS = pl.Datetime("us", "UTC")


def to_utc_microseconds(column: str, dtype: pl.DataType) -> pl.Expr:
    """Return `column` as UTC microseconds; naive datetimes are taken to be UTC already."""
    expr = pl.col(column)
    if not isinstance(dtype, pl.Datetime):
        raise TransformationOutputError(f"column {column!r} must be a datetime, found {dtype}")
    if dtype == UTC_MICROSECONDS:
        return expr
    if dtype.time_zone is None:
        expr = expr.dt.replace_time_zone("UTC")
    return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def normalize_source(view: FeatureView, source_rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rename the source's timestamp columns to `event_timestamp`/`created_timestamp` in UTC microseconds."""
    source = view.source
    schema = source_rows.collect_schema()
    missing = [key for key in view.join_keys if key not in schema]
    if missing:
        raise SourceSchemaError(
            f"FeatureView {view.name!r}: source {source.name!r} has no join key column(s) {missing}; "
            f"its columns are {list(schema)}"
        )
    event = to_utc_microseconds(source.timestamp_field, schema[source.timestamp_field]).alias("event_timestamp")
    if source.created_timestamp_field:
        if source.created_timestamp_field not in schema:
            raise SourceSchemaError(
                f"FeatureView {view.name!r}: source {source.name!r} has no created_timestamp_field "
                f"{source.created_timestamp_field!r}; its columns are {list(schema)}"
            )
        created = to_utc_microseconds(source.created_timestamp_field, schema[source.created_timestamp_field])
    else:
        created = event
    rest = [c for c in schema if c not in (*source.columns_read, "event_timestamp", "created_timestamp")]
    return source_rows.select(event, created.alias("created_timestamp"), *rest)
