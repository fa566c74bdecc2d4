"""A few events pushed online, encoded as stream entries in plain Python: the latency path of `push(to="online")`.

Building Polars frames costs about a millisecond per push whatever its size, which is most of a fresh event's time
to readable. For a small batch given as plain Python values that need no conversion (integer or text keys of the
declared kind, datetimes, finite numbers, text for count-only columns), the entries are built directly and equal
what the frame path writes. Anything else returns None, and the frame path validates it and names what is wrong.
"""

import math
from collections.abc import Mapping
from datetime import UTC, datetime

import polars as pl

from feature_assets.language.feature_view import FeatureView
from resources.online_encoding import entity_key, epoch_us, is_integer_key
from resources.stream_keys import column_kinds, partition_of, partitions

SMALL_PUSH = 16
_INTEGER_RANGES = [
    (dtype, 0 if unsigned else -(2 ** (bits - 1)), 2**bits if unsigned else 2 ** (bits - 1))
    for bits, signed_dtype, unsigned_dtype in (
        (8, pl.Int8, pl.UInt8),
        (16, pl.Int16, pl.UInt16),
        (32, pl.Int32, pl.UInt32),
        (64, pl.Int64, pl.UInt64),
    )
    for dtype, unsigned in ((signed_dtype, False), (unsigned_dtype, True))
]


def simple_event_entries(view: FeatureView, rows: object, arrival: datetime) -> list[tuple[int, dict[str, str]]] | None:
    """Return (partition, fields) of each pushed event, marked as pushed, or None when the frame path must decide."""
    columns = _columns(rows)
    if columns is None:
        return None
    timestamp_field = view.source.timestamp_field
    if "event_timestamp" not in columns and timestamp_field in columns:
        columns["event_timestamp"] = columns.pop(timestamp_field)
    if set(columns) != {*view.join_keys, "event_timestamp", *view.stream_columns}:
        return None
    keys = [_key_values(columns[key], dtype) for key, dtype in view.key_dtypes.items()]
    times = _event_times(columns["event_timestamp"])
    kinds = column_kinds(view)
    values = {column: _column_values(columns[column], len(kinds[column]) > 1) for column in view.stream_columns}
    if times is None or any(k is None for k in keys) or any(v is None for v in values.values()):
        return None
    arrived = str(epoch_us(arrival))
    count = partitions(view)
    entries = []
    for index, event in enumerate(times):
        key = entity_key(tuple(column[index] for column in keys))
        fields = {"k": key, "t": str(event), "a": arrived}
        fields.update({name: column[index] for name, column in values.items() if column[index] is not None})
        fields["p"] = "1"
        entries.append((partition_of(key, count), fields))
    return entries


def _columns(rows: object) -> dict[str, list[object]] | None:
    """Return a dict of lists or a list of dicts with the same keys as columns, if it has at most SMALL_PUSH rows."""
    if isinstance(rows, Mapping):
        columns = {name: list(values) for name, values in rows.items() if isinstance(values, list | tuple)}
        if len(columns) != len(rows) or len({len(values) for values in columns.values()}) != 1:
            return None
    elif isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        names = list(rows[0])
        if any(list(row) != names for row in rows):
            return None
        columns = {name: [row[name] for row in rows] for name in names}
    else:
        return None
    return columns if len(next(iter(columns.values()), ())) <= SMALL_PUSH else None


def _key_values(values: list[object], dtype: pl.DataType) -> list[int | str] | None:
    """Return join key values already of the declared kind (integers within its range, or text), else None."""
    if not is_integer_key(dtype):
        return values if all(type(v) is str for v in values) else None  # type: ignore[return-value]
    low, high = next(((low, high) for known, low, high in _INTEGER_RANGES if dtype == known), (0, 0))
    return values if all(type(v) is int and low <= v < high for v in values) else None  # type: ignore[return-value]


def _event_times(values: list[object]) -> list[int] | None:
    """Return event times in µs since the epoch (naive times are UTC), if all are datetimes in one time zone."""
    if not all(isinstance(v, datetime) for v in values) or len({v.tzinfo for v in values}) != 1:
        return None
    return [epoch_us(v.replace(tzinfo=UTC) if v.tzinfo is None else v) for v in values]


def _column_values(values: list[object], numeric: bool) -> list[str | None] | None:
    """Return a stream column's entry texts (None for null): finite numbers of one type (as a frame column would
    hold them), or text for count-only columns."""
    if numeric:
        kinds = {type(v) for v in values if v is not None}
        if not kinds <= {int} and not kinds <= {float} or not all(v is None or math.isfinite(v) for v in values):
            return None
        return [None if v is None else repr(float(v)) for v in values]
    if not all(v is None or type(v) is str for v in values):
        return None
    return values  # type: ignore[return-value]
