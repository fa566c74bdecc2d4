"""What publishing writes to Redis: the newest live row per entity, and the newer-wins script that stores it."""

import functools

import polars as pl

from feature_assets.language.errors import EntityFrameError, OnlineStoreError
from feature_assets.language.feature_view import FeatureView
from resources import online_encoding as encoding
from resources.entity_rows import check_key_dtype
from resources.online_read_plan import micros


@functools.cache
def newer_wins_script(values_field: str) -> str:
    """Return the Lua script writing rows only where they are newer than the stored row.

    KEYS are entity hashes. ARGV holds per key its expire-at (ms, '' for none) and its packed value for the field
    `values_field`, which starts with the order (event then created time as fixed-width digits, so the string
    comparison is the numeric one). The script returns how many hashes it replaced.
    """
    width = encoding.ORDER_WIDTH
    return f"""
local call, sub, keys, argv, replaced = redis.call, string.sub, KEYS, ARGV, 0
for i = 1, #keys do
  local key, value = keys[i], argv[i * 2]
  local stored = call('HGET', key, '{values_field}')
  if not stored or sub(value, 1, {width}) > sub(stored, 1, {width}) then
    call('HSET', key, '{values_field}', value)
    local expire_at = argv[i * 2 - 1]
    if expire_at ~= '' then
      call('PEXPIREAT', key, expire_at)
    elseif stored then
      call('PERSIST', key)
    end
    replaced = replaced + 1
  end
end
return replaced
"""


def latest_live_rows(view: FeatureView, frame: pl.DataFrame, now_us: int) -> pl.DataFrame:
    """Return the newest row per entity as join keys, `_ts`, `_ct` (µs) and features, dropping expired rows."""
    where = f"FeatureView {view.name!r}"
    schema = frame.schema
    for key, dtype in view.key_dtypes.items():
        check_key_dtype(view, key, dtype)
        actual = schema.get(key)
        if actual is None:
            raise EntityFrameError(f"{where}: the frame lacks join key column {key!r}; write the view's offline rows")
        if encoding.is_integer_key(dtype) != actual.is_integer() or not (actual.is_integer() or actual == pl.String):
            raise EntityFrameError(f"{where}: join key column {key!r} has dtype {actual}; expected {dtype}")
    for column in ("event_timestamp", "created_timestamp"):
        if column in schema and not isinstance(schema[column], pl.Datetime):
            raise EntityFrameError(f"{where}: column {column!r} has dtype {schema[column]}; expected a Datetime")
    if "event_timestamp" not in schema:
        raise EntityFrameError(f"{where}: the frame lacks the 'event_timestamp' column")
    missing = [name for name in view.feature_names if name not in schema]
    if missing:
        raise OnlineStoreError(f"{where}: the frame lacks feature columns {missing}; write the view's offline rows")
    for f in view.schema:
        if schema[f.name] != f.dtype:
            try:
                frame[f.name].cast(f.dtype, strict=True)
            except pl.exceptions.PolarsError as error:
                raise OnlineStoreError(
                    f"{where}: feature {f.name!r} has dtype {schema[f.name]} and does not cast to {f.dtype}: {error}"
                ) from error
    nulls = frame.select(pl.col(*view.join_keys, "event_timestamp").null_count()).row(0, named=True)
    if any(nulls.values()):
        counts = {name: count for name, count in nulls.items() if count}
        raise EntityFrameError(f"{where}: null join keys or event times {counts}; every row needs them")
    created = pl.col("created_timestamp").dt.epoch("us").fill_null(0) if "created_timestamp" in schema else pl.lit(0)
    rows = frame.lazy().select(
        *view.join_keys,
        pl.col("event_timestamp").dt.epoch("us").alias("_ts"),
        created.cast(pl.Int64).alias("_ct"),
        *(pl.col(f.name).cast(f.dtype) for f in view.schema),
    )
    ttl_us = micros(view.ttl)
    if ttl_us is not None:
        rows = rows.filter(pl.col("_ts") + ttl_us >= now_us)
    latest = rows.collect()
    keys = list(view.join_keys)
    if latest.select(keys).n_unique() == latest.height:
        return latest
    return latest.sort("_ts", "_ct").unique(subset=keys, keep="last")
