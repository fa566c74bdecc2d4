"""Copying stream entries to the offline event log: the rows of the events producers appended to the streams
themselves, and the scripts an archiver reads and acknowledges a partition stream with while holding its lock.

One archiver at a time holds a partition stream (its lock is renewed by every read), and every archiver reads as the
one consumer `archiver` of the group `archive`. Whoever takes a partition over therefore first re-reads the whole
batch a previous holder left pending, and writes it under the same name (`archive-p<p>-<first id>-<last id>`): a
batch written twice replaces itself, so each event reaches the event log once.
"""

import math
from collections.abc import Mapping, Sequence

import polars as pl

from feature_assets.language.feature_view import FeatureView
from resources.online_encoding import decode_entity_key, is_integer_key
from resources.stream_keys import ARCHIVE_GROUP, column_kinds

ARCHIVE_CONSUMER = "archiver"
UTC_MICROSECONDS = pl.Datetime("us", "UTC")

# Read up to ARGV[4] entries after ARGV[3] ('>' for new ones) as the archive consumer, if ARGV[1] holds the lock;
# renews the lock for ARGV[2] ms. KEYS: the stream, the lock. Returns nil when the lock is not held.
READ_SCRIPT = f"""
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('XREADGROUP', 'GROUP', '{ARCHIVE_GROUP}', '{ARCHIVE_CONSUMER}', 'COUNT', ARGV[4],
  'STREAMS', KEYS[1], ARGV[3])
"""

# Acknowledge the entry IDs in ARGV and count them as archived. KEYS: the stream, its state hash.
ACK_SCRIPT = f"""
local acknowledged = 0
for i = 1, #ARGV, 4000 do
  local last = math.min(i + 3999, #ARGV)
  acknowledged = acknowledged + redis.call('XACK', KEYS[1], '{ARCHIVE_GROUP}', unpack(ARGV, i, last))
end
if acknowledged > 0 then redis.call('HINCRBY', KEYS[2], 'archived', acknowledged) end
return acknowledged
"""

# Release the lock if ARGV[1] holds it. KEYS: the lock.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def archive_rows(
    view: FeatureView, entries: Sequence[tuple[bytes, Sequence[bytes] | Mapping[bytes, bytes] | None]]
) -> tuple[pl.DataFrame, int, int]:
    """Return the event-log rows of the entries producers appended, and how many were pushed and unreadable.

    The rows have the columns `push()` logs: join keys, `event_timestamp`, `created_timestamp` (the arrival time)
    and the stream columns (numbers as Float64, count-only columns as String). Entries `push()` wrote are left out
    (it logged its own copy); so are unreadable ones, which the stream workers dead-letter.
    """
    kinds = column_kinds(view)
    names = [(column, column.encode(), len(kinds[column]) > 1) for column in view.stream_columns]
    integer_keys = [is_integer_key(dtype) for dtype in view.key_dtypes.values()]
    columns: dict[str, list[object]] = {name: [] for name in (*view.join_keys, "event_timestamp", "created_timestamp")}
    columns.update({column: [] for column, _, _ in names})
    pushed = unreadable = 0
    for entry_id, raw in entries:
        if raw is None:
            continue
        fields = raw if isinstance(raw, Mapping) else dict(zip(raw[::2], raw[1::2], strict=True))
        if b"p" in fields:
            pushed += 1
            continue
        try:
            keys = decode_entity_key(view, fields[b"k"].decode()) if fields.get(b"k") else None
            if keys is None or [isinstance(v, int) for v in keys.values()] != integer_keys:
                raise ValueError("entity key")
            event = int(fields[b"t"])
            arrival = int(fields.get(b"a") or entry_id.split(b"-")[0] + b"000")
            values = [_value(fields.get(encoded), numeric) for _, encoded, numeric in names]
        except (KeyError, ValueError, UnicodeDecodeError):
            unreadable += 1
            continue
        for name, value in keys.items():
            columns[name].append(value)
        columns["event_timestamp"].append(event)
        columns["created_timestamp"].append(arrival)
        for (column, _, _), value in zip(names, values, strict=True):
            columns[column].append(value)
    schema = {
        **{key: pl.Int64 if integer else pl.String for key, integer in zip(view.join_keys, integer_keys, strict=True)},
        "event_timestamp": pl.Int64,
        "created_timestamp": pl.Int64,
        **{column: pl.Float64 if numeric else pl.String for column, _, numeric in names},
    }
    frame = pl.DataFrame(columns, schema=schema).with_columns(
        *[pl.col(key).cast(dtype, strict=False) for key, dtype in view.key_dtypes.items()],
        pl.col("event_timestamp", "created_timestamp").cast(UTC_MICROSECONDS),
    )
    in_range = frame.filter(pl.all_horizontal(pl.col(view.join_keys).is_not_null()))
    return in_range, pushed, unreadable + frame.height - in_range.height


def _value(text: bytes | None, numeric: bool) -> float | str | None:
    """Return one stream column's value: a finite number, or text for count-only columns; None when absent."""
    if not text:
        return None
    if not numeric:
        return text.decode()
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number
