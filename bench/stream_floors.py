"""Extra floors of `bench/streaming.py`: the aggregation alone, raw tile writes alone, and a blind apply step."""

from collections.abc import Callable

import numpy as np
import polars as pl
import redis

from feature_assets.language.feature_view import FeatureView
from resources.stream_batches import StreamSpec, delta_width


def polars_fold(entries: list) -> pl.DataFrame:
    """Return one batch's partials per (driver, minute) computed with plain Polars: the aggregation floor."""
    names = entries[0][1][0::2]
    columns = dict(zip(names, zip(*(entry[1][1::2] for entry in entries), strict=True), strict=True))
    frame = pl.DataFrame(
        {
            "k": list(columns[b"k"]),
            "t": np.array(columns[b"t"], dtype=np.bytes_).astype(np.int64),
            "a": np.array(columns[b"a"], dtype=np.bytes_).astype(np.int64),
            "fare": np.array(columns[b"fare"], dtype=np.bytes_).astype(np.float64),
        }
    )
    return frame.group_by("k", (-(-pl.col("t") // 60_000_000)).alias("bucket")).agg(
        pl.len(),
        pl.col("t").max().alias("newest"),
        pl.col("fare").count().alias("fares"),
        pl.col("fare").sum().alias("sum"),
        pl.col("fare").max().alias("max"),
        pl.col("fare").sort_by("t", "a", "fare").last().alias("last"),
    )


def cell_writes(client: redis.Redis) -> Callable[[list], object]:
    """Return a floor's work: HSET one 72-byte record per (driver, minute) a batch touches, pipelined (raw redis-py)."""
    record = b"r" * 72

    def write(entries: list) -> object:
        cells: dict[bytes, dict[int, bytes]] = {}
        for _, fields in entries:
            cells.setdefault(b"floor:t:" + fields[1], {})[-(-int(fields[3]) // 60_000_000)] = record
        pipeline = client.pipeline(transaction=False)
        for key, buckets in cells.items():
            pipeline.hset(key, mapping=buckets)
        return pipeline.execute()

    return write


def blind_write_script(view: FeatureView) -> str:
    """Return a Lua apply step doing the least any design must: acknowledge and write each folded record.

    It takes the apply script's KEYS and ARGV, checks an owner lock key with one GET (as a single-owner design
    would), acknowledges the IDs and writes each (entity, bucket) delta over the tile's bucket, with no tile reads,
    no merge and no pending check: what is left of the apply step if everything that makes it correct were free.
    """
    delta = delta_width(StreamSpec.of(view))
    return f"""
local call, format, unpack_struct = redis.call, string.format, struct.unpack
local RECORD = {delta * 8}
local stream, state, group = KEYS[1], KEYS[2], ARGV[1]
if call('GET', state .. ':owner') then return {{-1}} end
local tiles = string.sub(stream, 1, -8) .. ':t:'
local n = tonumber(ARGV[4])
for i = 5, 4 + n, 4000 do call('XACK', stream, group, unpack(ARGV, i, math.min(i + 3999, 4 + n))) end
local at = 5 + n
local heads, records, key_at = ARGV[at + 7], ARGV[at + 8], at + 9
local head_at, record_at, applied = 1, 1, 0
for e = 1, tonumber(ARGV[at + 6]) do
  local _, _, bucket_count, next_head = unpack_struct('<ddd', heads, head_at)
  head_at = next_head
  local out = {{}}
  for _ = 1, bucket_count do
    local bucket, events = unpack_struct('<dd', records, record_at)
    out[#out + 1] = format('%d', bucket)
    out[#out + 1] = string.sub(records, record_at + 16, record_at + RECORD - 1)
    record_at = record_at + RECORD
    applied = applied + events
  end
  call('HSET', tiles .. ARGV[key_at + e - 1], unpack(out))
end
call('HINCRBY', state, 'applied', applied)
return {{applied, 0, 0, 0, 0}}
"""
