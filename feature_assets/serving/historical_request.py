"""`POST /get-historical-features`: an entity frame sent as JSON columns, the training frame as Arrow or Parquet."""

import io
from collections.abc import Mapping
from typing import Literal, get_args

import polars as pl

from feature_assets.serving.http_errors import HttpError
from feature_assets.serving.request_fields import columns, parse_timestamp

FrameFormat = Literal["arrow", "parquet"]
CONTENT_TYPES: dict[str, bytes] = {
    "arrow": b"application/vnd.apache.arrow.stream",
    "parquet": b"application/vnd.apache.parquet",
}
TIMESTAMP_COLUMN = "event_timestamp"


def frame_format(body: Mapping[str, object]) -> FrameFormat:
    """Return the requested answer format: "arrow" (default, an Arrow IPC stream) or "parquet"."""
    value = body.get("format", "arrow")
    if value not in get_args(FrameFormat):
        raise HttpError(422, f"field 'format' must be one of {list(get_args(FrameFormat))}, got {value!r}")
    return value


def entity_frame(body: Mapping[str, object], max_rows: int) -> pl.DataFrame:
    """Return `entities` as an entity frame (join keys, request values, a UTC `event_timestamp`), within `max_rows`."""
    entities = columns(body, "entities")
    rows = len(next(iter(entities.values())))
    if rows > max_rows:
        raise HttpError(
            413,
            f"the entity frame has {rows:,} rows; this server answers at most {max_rows:,} (setting "
            "max_historical_rows): split the frame, or call get_historical_features in Python for large frames",
        )
    if TIMESTAMP_COLUMN not in entities:
        raise HttpError(422, f"field 'entities' lacks the {TIMESTAMP_COLUMN!r} column (ISO 8601 times, one per row)")
    typed = dict(entities)
    typed[TIMESTAMP_COLUMN] = [
        parse_timestamp(value, f"field 'entities': column {TIMESTAMP_COLUMN!r} row {index}")
        for index, value in enumerate(entities[TIMESTAMP_COLUMN])
    ]
    try:
        frame = pl.DataFrame(typed, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as error:
        raise HttpError(422, f"field 'entities' does not make a table: {error}") from None
    return frame.with_columns(pl.col(TIMESTAMP_COLUMN).cast(pl.Datetime("us", "UTC")))


def encode_frame(frame: pl.DataFrame, encoding: FrameFormat) -> bytes:
    """Return the frame as an Arrow IPC stream or as Parquet bytes."""
    buffer = io.BytesIO()
    if encoding == "arrow":
        frame.write_ipc_stream(buffer)
    else:
        frame.write_parquet(buffer)
    return buffer.getvalue()
