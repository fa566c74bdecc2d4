"""Streaming views in Redis: the keys of partition streams and tiles, and how events are written to the streams.

Keys of partition p of a view (`p = crc32(entity key) mod partitions`), all sharing the hash tag `{<view>:v<N>:p<p>}`
so one script touches one Cluster slot:

    <prefix>:{<view>:v<N>:p<p>}:events      the Redis Stream producers append to (XADD); consumer group `workers`
    <prefix>:{<view>:v<N>:p<p>}:state       hash: applied, late, expired, invalid, dead, archived, covered counts, the
                                            watermark and a tile rebuild's `cut` and fence (`rebuilding`)
    <prefix>:{<view>:v<N>:p<p>}:dead        dead-letter stream: entries delivered `max_deliveries` times unapplied
    <prefix>:{<view>:v<N>:p<p>}:archiver    lock of the archiver copying the stream offline (group `archive`)
    <prefix>:{<view>:v<N>:p<p>}:t:<entity>  the entity's tiles (one hash)

An event entry has the fields `k` (the canonical entity key, e.g. `i:42`), `t` (event time, µs since the epoch),
`a` (arrival time, µs; defaults to the entry ID's time), one field per aggregated column (a decimal number, or
empty or absent for null) and, on entries `push()` wrote, `p` (the stream archiver leaves those out: the push logged
its own offline copy when asked to). Other fields are ignored.

Tiles. Time is cut into buckets of the view's step; bucket `b` holds events with event time in
`((b - 1) * step, b * step]`. A tile hash holds one field per bucket, named `<b>`, a record of little-endian
doubles: the newest event time in the bucket (µs), then per column (sorted) its non-null count and, as its
aggregations need them, sum, min, max and last (event, arrival, value: the greatest such triple), NaN where there
is no value; plus `fa` (the latest arrival's bucket), `lo` and `hb` (the lowest and highest bucket held). A bucket
value of another length (an older release's text record) reads as empty and is replaced by the next merge.

Values served at instant t: with F = floor(t / step) and B = ceil(t / step), an aggregation of window w = W steps
merges buckets F - W < b <= B, i.e. events with event time in (F*step - w, B*step], of those that had arrived (and
been applied) by t. At a step boundary (F = B = s) this is exactly the batch row at s, `(s - w, s]`; between
boundaries the tail stays on the last boundary and the head follows t ("sawtooth"), so a window covers between w and
w + step of event time.

An event whose arrival is later than its event time plus the view's allowed lateness is counted as late and not
applied; one whose bucket no read can reach any more (older than the longest window before its arrival) is counted as
expired. Tiles expire by themselves once their newest bucket leaves the longest window.
"""

import zlib
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from feature_assets.language.feature_view import FeatureView
from resources import online_encoding as encoding

GROUP = "workers"
Entries = list[tuple[int, dict[str, str]]]
ARCHIVE_GROUP = "archive"
_KINDS = {"sum": "s", "mean": "s", "min": "n", "max": "x", "last": "l"}


@dataclass(frozen=True)
class StreamKeys:
    """The Redis keys of one partition of a streaming view."""

    stream: str
    state: str
    dead: str
    tiles: str
    archive_lock: str


def tile_key_affixes(prefix: str, view: FeatureView) -> tuple[str, str]:
    """Return the text before and after the partition number in a streaming view's tile keys (the entity follows)."""
    return f"{prefix}:{{{view.name}:v{view.version}:p", "}:t:"


def stream_keys(prefix: str, view: FeatureView, partition: int) -> StreamKeys:
    """Return the keys of partition `partition` of a streaming view."""
    before, after = tile_key_affixes(prefix, view)
    base = f"{before}{partition}}}"
    tiles = f"{before}{partition}{after}"
    return StreamKeys(f"{base}:events", f"{base}:state", f"{base}:dead", tiles, f"{base}:archiver")


def partitions(view: FeatureView) -> int:
    """Return how many partition streams a streaming view has."""
    return int(getattr(view.source, "partitions", 1))


def partition_of(entity: str, count: int) -> int:
    """Return the partition of a canonical entity key: crc32 of its UTF-8 bytes modulo the partition count."""
    return zlib.crc32(entity.encode()) % count


def column_kinds(view: FeatureView) -> dict[str, list[str]]:
    """Return the partials kept per aggregated column: `c` (count) always, then `s`, `n`, `x`, `l` as needed."""
    kinds: dict[str, list[str]] = {}
    for column in view.stream_columns:
        needed = {_KINDS[a.function] for a in view.aggregations if a.column == column and a.function in _KINDS}
        kinds[column] = ["c", *[kind for kind in ("s", "n", "x", "l") if kind in needed]]
    return kinds


def steps(duration: timedelta, step: timedelta) -> int:
    """Return how many steps fit in `duration`."""
    return duration // step


def stream_entries(view: FeatureView, frame: pl.DataFrame, pushed: bool = False) -> Entries:
    """Return each event row as (partition, entry fields) for XADD.

    `frame` holds the view's join keys, `event_timestamp` and `created_timestamp` (the arrival time; both
    UTC datetimes) and its stream columns; null values are left out of the entry. `pushed` entries (written by
    `push()`, which logs its own offline copy when asked to) carry `p` so the archiver leaves them out.
    """
    columns = view.stream_columns
    encoded = frame.select(
        encoding.entity_key_expr(view).alias("k"),
        pl.col("event_timestamp").dt.epoch("us").cast(pl.String).alias("t"),
        pl.col("created_timestamp").dt.epoch("us").cast(pl.String).alias("a"),
        *[pl.col(column).cast(pl.String) for column in columns],
    )
    count = partitions(view)
    entries = []
    for row in encoded.iter_rows(named=True):
        fields = {name: value for name, value in row.items() if value is not None}
        if pushed:
            fields["p"] = "1"
        entries.append((partition_of(row["k"], count), fields))
    return entries
