"""Streaming views in Redis: partition streams, per-entity tiles and the Lua scripts that apply and read them.

Keys of partition p of a view (`p = crc32(entity key) mod partitions`), all sharing the hash tag `{<view>:v<N>:p<p>}`
so one script touches one Cluster slot:

    <prefix>:{<view>:v<N>:p<p>}:events      the Redis Stream producers append to (XADD); consumer group `workers`
    <prefix>:{<view>:v<N>:p<p>}:state       hash: applied, late, expired, invalid, dead counts and the watermark
    <prefix>:{<view>:v<N>:p<p>}:dead        dead-letter stream: entries delivered `max_deliveries` times unapplied
    <prefix>:{<view>:v<N>:p<p>}:t:<entity>  the entity's tiles (one hash)

An event entry has the fields `k` (the canonical entity key, e.g. `i:42`), `t` (event time, µs since the epoch),
`a` (arrival time, µs; defaults to the entry ID's time) and one field per aggregated column (a decimal number, or
empty or absent for null).

Tiles. Time is cut into buckets of the view's step; bucket `b` holds events with event time in
`((b - 1) * step, b * step]`. A tile hash holds, per bucket, the newest event time seen (field `<b>`, also the
bucket's existence) and per column its non-null count `<b>:c:<column>`, sum `:s:`, min `:n:`, max `:x:` and last
`:l:` (`event arrival value`, the greatest such triple). Values served at instant t: with F = floor(t / step) and
B = ceil(t / step), an aggregation of window w = W steps merges buckets F - W < b <= B, i.e. events with event
time in (F*step - w, B*step], of those that had arrived (and been applied) by t. At a step boundary (F = B = s) this
is exactly the batch row at s, `(s - w, s]`; between boundaries the tail stays on the last boundary and the head
follows t ("sawtooth"), so a window covers between w and w + step of event time.

An event whose arrival is later than its event time plus the view's allowed lateness is counted as late and not
applied; one whose bucket no read can reach any more (older than the longest window before its arrival) is counted as
expired. Tiles expire by themselves once their newest bucket leaves the longest window.
"""

import functools
import zlib
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from feature_assets.language.feature_view import FeatureView
from resources import online_encoding as encoding

GROUP = "workers"
VALUE_SEPARATOR = "\x1f"
_ONE_MICROSECOND = timedelta(microseconds=1)
_KINDS = {"sum": "s", "mean": "s", "min": "n", "max": "x", "last": "l"}


@dataclass(frozen=True)
class StreamKeys:
    """The Redis keys of one partition of a streaming view."""

    stream: str
    state: str
    dead: str
    tiles: str

    def tile(self, entity: str) -> str:
        """Return the tile hash key of one canonical entity key."""
        return self.tiles + entity


def tile_key_affixes(prefix: str, view: FeatureView) -> tuple[str, str]:
    """Return the text before and after the partition number in a streaming view's tile keys (the entity follows)."""
    return f"{prefix}:{{{view.name}:v{view.version}:p", "}:t:"


def stream_keys(prefix: str, view: FeatureView, partition: int) -> StreamKeys:
    """Return the keys of partition `partition` of a streaming view."""
    before, after = tile_key_affixes(prefix, view)
    base = f"{before}{partition}}}"
    return StreamKeys(f"{base}:events", f"{base}:state", f"{base}:dead", f"{before}{partition}{after}")


def partitions(view: FeatureView) -> int:
    """Return how many partition streams a streaming view has."""
    return int(getattr(view.source, "partitions", 1))


def partition_of(entity: str, count: int) -> int:
    """Return the partition of a canonical entity key: crc32 of its UTF-8 bytes modulo the partition count."""
    return zlib.crc32(entity.encode()) % count


def _column_kinds(view: FeatureView) -> dict[str, list[str]]:
    """Return the partial kinds kept per aggregated column: always the count, then sum, min, max, last as needed."""
    kinds: dict[str, list[str]] = {}
    for column in view.stream_columns:
        needed = {_KINDS[a.function] for a in view.aggregations if a.column == column and a.function in _KINDS}
        kinds[column] = ["c", *[kind for kind in ("s", "n", "x", "l") if kind in needed]]
    return kinds


def _lua_columns(view: FeatureView) -> str:
    """Return a Lua table literal of the columns: name, partial kinds and whether values must be numbers."""
    rows = []
    for column, kinds in _column_kinds(view).items():
        numeric = "true" if len(kinds) > 1 else "false"
        names = ", ".join(map(_lua_string, kinds))
        rows.append(f"{{name={_lua_string(column)}, kinds={{{names}}}, numeric={numeric}}}")
    return "{" + ", ".join(rows) + "}"


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _steps(duration: timedelta, step: timedelta) -> int:
    return duration // step


@functools.cache
def apply_script(view: FeatureView) -> str:
    """Return the Lua script applying a batch of entry IDs of one partition stream: tiles, watermark and XACK at once.

    KEYS: the partition's stream and state hash. ARGV: the consumer group, the caller's clock in ms, then entry IDs.
    Each ID is applied only when XACK acknowledges it (it was still pending), so a batch applied twice, or by two
    workers, counts each event once. An entry with a malformed field is left pending (counted as invalid) for the
    dead-letter path. Returns {applied, late, expired, invalid, acknowledged-but-missing}.
    """
    step = view.step // _ONE_MICROSECOND
    lookback = _steps(view.lookback, view.step)
    lateness = (view.allowed_lateness or timedelta(0)) // _ONE_MICROSECOND
    return f"""
local call, tonumber, floor = redis.call, tonumber, math.floor
local STEP, L, LATENESS = {step}, {lookback}, {lateness}
local COLUMNS = {_lua_columns(view)}
local stream, state, group = KEYS[1], KEYS[2], ARGV[1]
local tiles = string.sub(stream, 1, -8) .. ':t:'
local n = #ARGV - 2
local wanted, fields_of = {{}}, {{}}
for i = 3, #ARGV do wanted[ARGV[i]] = true end
local function keep(entries)
  for _, entry in ipairs(entries) do
    if wanted[entry[1]] then fields_of[entry[1]] = entry[2] end
  end
end
keep(call('XRANGE', stream, ARGV[3], ARGV[#ARGV], 'COUNT', n * 4))
local applied, late, expired, invalid, missing = 0, 0, 0, 0, 0
local max_event, last_id = nil, nil
local entities, order = {{}}, {{}}
local function id_ms(id) return tonumber(string.match(id, '^(%d+)')) end
local function later_id(a, b)
  if b == nil then return true end
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  return ams > bms or (ams == bms and tonumber(aseq) > tonumber(bseq))
end
for i = 3, #ARGV do
  local id = ARGV[i]
  local flat = fields_of[id]
  if flat == nil then
    local found = call('XRANGE', stream, id, id)
    if found[1] then flat = found[1][2] end
  end
  if flat == nil then
    missing = missing + call('XACK', stream, group, id)
  else
    local f = {{}}
    for j = 1, #flat, 2 do f[flat[j]] = flat[j + 1] end
    local key, event = f.k, tonumber(f.t)
    local arrival = f.a and tonumber(f.a) or id_ms(id) * 1000
    local ok = key ~= nil and key ~= '' and event ~= nil and arrival ~= nil and event == floor(event)
    local values = {{}}
    if ok then
      for c, column in ipairs(COLUMNS) do
        local raw = f[column.name]
        if raw ~= nil and raw ~= '' then
          local number = tonumber(raw)
          if column.numeric then
            if number == nil or number ~= number then ok = false end
            values[c] = number
          else
            values[c] = true
          end
        end
      end
    end
    if not ok then
      invalid = invalid + 1
    elseif call('XACK', stream, group, id) == 1 then
      if later_id(id, last_id) then last_id = id end
      if arrival - event > LATENESS then
        late = late + 1
      else
        local r = event % STEP
        local b = (event - r) / STEP + ((r > 0) and 1 or 0)
        local fa = floor(arrival / STEP)
        local e = entities[key]
        if e == nil then
          e = {{fa = fa, arrival = arrival, buckets = {{}}, border = {{}}}}
          entities[key] = e
          order[#order + 1] = key
        elseif fa > e.fa then
          e.fa, e.arrival = fa, arrival
        elseif arrival > e.arrival then
          e.arrival = arrival
        end
        local t = e.buckets[b]
        if t == nil then
          t = {{}}
          e.buckets[b] = t
          e.border[#e.border + 1] = b
        end
        t[#t + 1] = {{event, arrival, values}}
        if max_event == nil or event > max_event then max_event = event end
        applied = applied + 1
      end
    end
  end
end
local function fmt(x) return string.format('%.17g', x) end
for _, key in ipairs(order) do
  local e = entities[key]
  local tk = tiles .. key
  local meta = call('HMGET', tk, 'fa', 'lo', 'hb')
  local fa = e.fa
  if meta[1] and tonumber(meta[1]) > fa then fa = tonumber(meta[1]) end
  local cutoff = fa - L
  local lo, hb = tonumber(meta[2]), tonumber(meta[3])
  if lo ~= nil and lo <= cutoff then
    if cutoff - lo > L + 2 then
      local names = call('HKEYS', tk)
      for _, name in ipairs(names) do
        local bucket = tonumber(string.match(name, '^(%d+)'))
        if bucket ~= nil and bucket <= cutoff then call('HDEL', tk, name) end
      end
    else
      for bucket = lo, cutoff do
        local names = {{tostring(bucket)}}
        for _, column in ipairs(COLUMNS) do
          for _, kind in ipairs(column.kinds) do names[#names + 1] = bucket .. ':' .. kind .. ':' .. column.name end
        end
        call('HDEL', tk, unpack(names))
      end
    end
    lo = cutoff + 1
  end
  local wrote = false
  for _, b in ipairs(e.border) do
    if b <= cutoff then
      expired = expired + #e.buckets[b]
      applied = applied - #e.buckets[b]
    else
      local names = {{tostring(b)}}
      for _, column in ipairs(COLUMNS) do
        for _, kind in ipairs(column.kinds) do names[#names + 1] = b .. ':' .. kind .. ':' .. column.name end
      end
      local current = call('HMGET', tk, unpack(names))
      local newest = tonumber(current[1])
      local out, at = {{}}, 2
      local stored = {{}}
      for c, column in ipairs(COLUMNS) do
        local parts = {{}}
        for _, kind in ipairs(column.kinds) do parts[kind] = current[at] or nil; at = at + 1 end
        stored[c] = parts
      end
      for _, ev in ipairs(e.buckets[b]) do
        local event, arrival, values = ev[1], ev[2], ev[3]
        if newest == nil or event > newest then newest = event end
        for c, column in ipairs(COLUMNS) do
          local v = values[c]
          if v ~= nil then
            local parts = stored[c]
            parts.c = tostring((tonumber(parts.c) or 0) + 1)
            if column.numeric then
              for _, kind in ipairs(column.kinds) do
                local cur = parts[kind]
                if kind == 's' then
                  parts.s = fmt((tonumber(cur) or 0) + v)
                elseif kind == 'n' then
                  if cur == nil or v < tonumber(cur) then parts.n = fmt(v) end
                elseif kind == 'x' then
                  if cur == nil or v > tonumber(cur) then parts.x = fmt(v) end
                elseif kind == 'l' then
                  local le, la, lv
                  if cur ~= nil then
                    le, la, lv = string.match(cur, '^(%S+) (%S+) (%S+)$')
                    le, la, lv = tonumber(le), tonumber(la), tonumber(lv)
                  end
                  if le == nil or event > le or (event == le and (arrival > la or (arrival == la and v > lv))) then
                    parts.l = string.format('%d %d ', event, arrival) .. fmt(v)
                  end
                end
              end
            end
          end
        end
      end
      out[1], out[2] = names[1], string.format('%d', newest)
      at = 2
      for c, column in ipairs(COLUMNS) do
        for _, kind in ipairs(column.kinds) do
          local value = stored[c][kind]
          if value ~= nil then
            out[#out + 1] = names[at]
            out[#out + 1] = value
          end
          at = at + 1
        end
      end
      call('HSET', tk, unpack(out))
      if lo == nil or b < lo then lo = b end
      if hb == nil or b > hb then hb = b end
      wrote = true
    end
  end
  if wrote then
    call('HSET', tk, 'fa', fa, 'lo', lo, 'hb', hb)
    local ttl = floor(((hb + L) * STEP - e.arrival) / 1000) + 1
    if ttl < 1 then ttl = 1 end
    call('PEXPIRE', tk, ttl)
  end
end
if applied ~= 0 then call('HINCRBY', state, 'applied', applied) end
if late > 0 then call('HINCRBY', state, 'late', late) end
if expired > 0 then call('HINCRBY', state, 'expired', expired) end
if invalid > 0 then call('HINCRBY', state, 'invalid', invalid) end
if max_event ~= nil then
  local stored = tonumber(call('HGET', state, 'watermark'))
  if stored == nil or max_event > stored then call('HSET', state, 'watermark', string.format('%d', max_event)) end
end
if last_id ~= nil then
  local stored = call('HGET', state, 'last_id')
  if not stored or later_id(last_id, stored) then call('HSET', state, 'last_id', last_id) end
  call('HSET', state, 'applied_at_ms', ARGV[2])
end
return {{applied, late, expired, invalid, missing}}
"""


@functools.cache
def read_script(view: FeatureView) -> str:
    """Return the Lua script reading one entity's values of a streaming view at an instant, packed like a stored row.

    KEYS: the tile hash. ARGV: the instant in µs. Returns nil when no bucket falls in the longest window, else the
    order (the newest event time in that window, twice, as fixed-width digits) and the features in schema order,
    separated by 0x1F, encoded as the online store encodes them (null as the empty string).
    """
    step = view.step // _ONE_MICROSECOND
    lookback = _steps(view.lookback, view.step)
    kinds = _column_kinds(view)
    fields: list[str] = []
    for column in view.stream_columns:
        fields += [f"{kind}:{column}" for kind in kinds[column]]
    aggregations = []
    for aggregation in view.aggregations:
        integer = "true" if aggregation.dtype.is_integer() else "false"
        kind = "c" if aggregation.function == "count" else _KINDS[aggregation.function]
        aggregations.append(
            f"{{fn={_lua_string(aggregation.function)}, w={_steps(aggregation.window, view.step)}, "
            f"c={1 + fields.index(f'c:{aggregation.column}')}, k={1 + fields.index(f'{kind}:{aggregation.column}')}, "
            f"int={integer}}}"
        )
    return f"""
local tonumber, floor = tonumber, math.floor
local STEP, L = {step}, {lookback}
local FIELDS = {{{", ".join(map(_lua_string, fields))}}}
local AGGREGATIONS = {{{", ".join(aggregations)}}}
local now = tonumber(ARGV[1])
local r = now % STEP
local F = (now - r) / STEP
local B = F + ((r > 0) and 1 or 0)
local first = F - L + 1
local names, width = {{}}, #FIELDS + 1
for b = first, B do
  names[#names + 1] = tostring(b)
  for _, field in ipairs(FIELDS) do names[#names + 1] = b .. ':' .. field end
end
local values = redis.call('HMGET', KEYS[1], unpack(names))
local newest = nil
for i = 0, B - first do
  local m = tonumber(values[i * width + 1])
  if m ~= nil and (newest == nil or m > newest) then newest = m end
end
if newest == nil then return false end
local function number(x, int)
  if x == nil then return '' end
  if int then return string.format('%d', x) end
  return string.format('%.17g', x)
end
local order = '1' .. string.format('%018d', newest)
local out = {{order .. order}}
for _, a in ipairs(AGGREGATIONS) do
  local count, acc, le, la, lv = 0, nil, nil, nil, nil
  for b = F - a.w + 1, B do
    local base = (b - first) * width + 1
    local c = tonumber(values[base + a.c])
    if c ~= nil and c > 0 then
      count = count + c
      local raw = values[base + a.k]
      if a.fn == 'sum' or a.fn == 'mean' then
        acc = (acc or 0) + tonumber(raw)
      elseif a.fn == 'min' then
        local v = tonumber(raw)
        if acc == nil or v < acc then acc = v end
      elseif a.fn == 'max' then
        local v = tonumber(raw)
        if acc == nil or v > acc then acc = v end
      elseif a.fn == 'last' then
        local e, t, v = string.match(raw, '^(%S+) (%S+) (%S+)$')
        e, t, v = tonumber(e), tonumber(t), tonumber(v)
        if le == nil or e > le or (e == le and (t > la or (t == la and v > lv))) then le, la, lv = e, t, v end
      end
    end
  end
  local text
  if a.fn == 'count' then
    text = string.format('%d', count)
  elseif a.fn == 'mean' then
    text = number(count > 0 and acc / count or nil, a.int)
  elseif a.fn == 'last' then
    text = number(lv, a.int)
  else
    text = number(acc, a.int)
  end
  out[#out + 1] = text
end
return table.concat(out, '{VALUE_SEPARATOR}')
"""


# Lua: move entries (still pending) to the dead-letter stream with their delivery count, acknowledged, counted.
# KEYS: stream, state, dead-letter stream. ARGV: the group, the delivery count, then entry IDs.
DEAD_LETTER_SCRIPT = """
local stream, state, dead, group = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local moved = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('XACK', stream, group, id) == 1 then
    local found = redis.call('XRANGE', stream, id, id)
    local fields = {'id', id, 'deliveries', ARGV[2]}
    if found[1] then
      for _, value in ipairs(found[1][2]) do fields[#fields + 1] = value end
    end
    redis.call('XADD', dead, '*', unpack(fields))
    moved = moved + 1
  end
end
if moved > 0 then redis.call('HINCRBY', state, 'dead', moved) end
return moved
"""


def stream_entries(view: FeatureView, frame: pl.DataFrame) -> list[tuple[int, dict[str, str]]]:
    """Return each event row as (partition, entry fields) for XADD.

    `frame` holds the view's join keys, `event_timestamp` and `created_timestamp` (the arrival time; both
    UTC datetimes) and its stream columns; null values are left out of the entry.
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
        entries.append((partition_of(row["k"], count), fields))
    return entries
