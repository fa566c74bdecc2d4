"""The Lua scripts of streaming views: merge folded batches into tiles (acknowledging them), read values, dead-letter.

See `resources.stream_keys` for the keys, the tile layout and the window rule, and `resources.stream_batches` for
the folded batches the apply script takes.
"""

import functools
from datetime import timedelta

from feature_assets.language.feature_view import FeatureView
from resources.stream_batches import StreamSpec, delta_width
from resources.stream_keys import column_kinds, steps

VALUE_SEPARATOR = "\x1f"
_ONE_MICROSECOND = timedelta(microseconds=1)
_KINDS = {"sum": "s", "mean": "s", "min": "n", "max": "x", "last": "l"}


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token_positions(view: FeatureView) -> dict[tuple[str, str], int]:
    """Return the 1-based position of each (column, partial) in a bucket's packed value (position 1: newest event)."""
    positions, at = {}, 2
    for column, kinds in column_kinds(view).items():
        for kind in kinds:
            positions[column, kind] = at
            at += 3 if kind == "l" else 1
    return positions


def _merge_statements(view: FeatureView) -> str:
    """Return Lua statements merging delta record `d` into tile record `t` (positions from `_token_positions`)."""
    lines = ["if d[3] > t[1] then t[1] = d[3] end"]
    for (_, kind), p in _token_positions(view).items():
        q = p + 2
        if kind == "c":
            lines.append(f"t[{p}] = t[{p}] + d[{q}]")
        elif kind == "s":
            lines.append(f"if d[{q}] == d[{q}] then t[{p}] = (t[{p}] == t[{p}]) and t[{p}] + d[{q}] or d[{q}] end")
        elif kind in ("n", "x"):
            better = "<" if kind == "n" else ">"
            lines.append(f"if d[{q}] {better} t[{p}] or t[{p}] ~= t[{p}] then t[{p}] = d[{q}] end")
        else:
            newer = (
                f"t[{p}] ~= t[{p}] or d[{q}] > t[{p}] or (d[{q}] == t[{p}] and (d[{q + 1}] > t[{p + 1}] or "
                f"(d[{q + 1}] == t[{p + 1}] and d[{q + 2}] > t[{p + 2}])))"
            )
            lines.append(
                f"if d[{q}] == d[{q}] and ({newer}) then "
                f"t[{p}], t[{p + 1}], t[{p + 2}] = d[{q}], d[{q + 1}], d[{q + 2}] end"
            )
    return "\n  ".join(lines)


def tile_width(view: FeatureView) -> int:
    """Return how many doubles one bucket's tile record takes: newest event time, then each column's partials."""
    return delta_width(StreamSpec.of(view)) - 2


@functools.cache
def apply_script(view: FeatureView) -> str:
    """Return the Lua script merging a folded batch of one partition stream into its tiles and acknowledging it.

    KEYS: the partition's stream and state hash. ARGV: the consumer group, the caller's clock in ms, a rebuild's
    token ('' for a worker), the number of entry IDs, the IDs (ascending), then the fold's arguments (see
    `resources.stream_batches`). Nothing is written, and the script returns {-3} while a rebuild other than the
    caller's holds the partition (state field `rebuilding`), {-2} if no rebuild holds it and the fold's cut is
    not the state's `cut`, and {-1} if any ID is no longer pending (another worker applied it). Otherwise
    it acknowledges every ID, merges each (entity, bucket) delta, drops buckets no read can reach any more,
    advances the watermark and returns {applied, late, expired, invalid, missing}.
    """
    step = view.step // _ONE_MICROSECOND
    lookback = steps(view.lookback, view.step)
    delta = delta_width(StreamSpec.of(view))
    return f"""
local call, tonumber, floor, format = redis.call, tonumber, math.floor, string.format
local pack, unpack_struct = struct.pack, struct.unpack
local STEP, L, DELTA, WIDTH = {step}, {lookback}, {delta}, {delta - 2}
local DELTA_FORMAT, TILE_FORMAT = '<' .. string.rep('d', DELTA), '<' .. string.rep('d', WIDTH)
local stream, state, group, token = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
local tiles = string.sub(stream, 1, -8) .. ':t:'
local n = tonumber(ARGV[4])
local at = 5 + n
local fence = call('HMGET', state, 'rebuilding', 'cut')
if fence[1] then
  if fence[1] ~= token then return {{-3}} end
elseif (tonumber(fence[2]) or 0) ~= tonumber(ARGV[at + 4]) then
  return {{-2}}
end
if n > 0 then
  local pending = {{}}
  for _, entry in ipairs(call('XPENDING', stream, group, ARGV[5], ARGV[4 + n], n * 4 + 16)) do
    pending[entry[1]] = true
  end
  for i = 5, 4 + n do
    if not pending[ARGV[i]] then return {{-1}} end
  end
  for i = 5, 4 + n, 4000 do call('XACK', stream, group, unpack(ARGV, i, math.min(i + 3999, 4 + n))) end
end
local late, invalid, missing = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
local covered = tonumber(ARGV[at + 3])
local max_event = tonumber(ARGV[at + 5])
local entity_count = tonumber(ARGV[at + 6])
local heads, records, key_at = ARGV[at + 7], ARGV[at + 8], at + 9
local head_at, record_at = 1, 1
local applied, expired = 0, 0
local function merge(stored, d)
  if not stored or #stored ~= WIDTH * 8 then return pack(TILE_FORMAT, unpack(d, 3, DELTA)) end
  local t = {{unpack_struct(TILE_FORMAT, stored)}}
  {_merge_statements(view)}
  return pack(TILE_FORMAT, unpack(t, 1, WIDTH))
end
for e = 1, entity_count do
  local fa, arrival, bucket_count
  fa, arrival, bucket_count, head_at = unpack_struct('<ddd', heads, head_at)
  local tk = tiles .. ARGV[key_at + e - 1]
  local names, deltas = {{'fa', 'lo', 'hb'}}, {{}}
  for j = 1, bucket_count do
    local d = {{unpack_struct(DELTA_FORMAT, records, record_at)}}
    record_at = d[DELTA + 1]
    deltas[j] = d
    names[3 + j] = format('%d', d[1])
  end
  local current = call('HMGET', tk, unpack(names))
  local stored_fa = tonumber(current[1])
  if stored_fa ~= nil and stored_fa > fa then fa = stored_fa end
  local cutoff = fa - L
  local lo, hb = tonumber(current[2]), tonumber(current[3])
  local old_hb = hb
  if lo ~= nil and lo <= cutoff then
    if cutoff - lo > L + 2 then
      for _, name in ipairs(call('HKEYS', tk)) do
        local bucket = tonumber(name)
        if bucket ~= nil and bucket <= cutoff then call('HDEL', tk, name) end
      end
    else
      local dead = {{}}
      for bucket = lo, cutoff do dead[#dead + 1] = format('%d', bucket) end
      call('HDEL', tk, unpack(dead))
    end
    lo = cutoff + 1
  end
  local out = {{}}
  for j = 1, bucket_count do
    local d = deltas[j]
    local b = d[1]
    if b <= cutoff then
      expired = expired + d[2]
    else
      applied = applied + d[2]
      out[#out + 1] = names[3 + j]
      out[#out + 1] = merge(current[3 + j] or nil, d)
      if lo == nil or b < lo then lo = b end
      if hb == nil or b > hb then hb = b end
    end
  end
  if #out > 0 then
    out[#out + 1] = 'fa'
    out[#out + 1] = format('%d', fa)
    out[#out + 1] = 'lo'
    out[#out + 1] = format('%d', lo)
    out[#out + 1] = 'hb'
    out[#out + 1] = format('%d', hb)
    call('HSET', tk, unpack(out))
    if hb ~= old_hb then
      local ttl = floor(((hb + L) * STEP - arrival) / 1000) + 1
      if ttl < 1 then ttl = 1 end
      call('PEXPIRE', tk, ttl)
    end
  end
end
if applied ~= 0 then call('HINCRBY', state, 'applied', applied) end
if late > 0 then call('HINCRBY', state, 'late', late) end
if expired > 0 then call('HINCRBY', state, 'expired', expired) end
if invalid > 0 then call('HINCRBY', state, 'invalid', invalid) end
if covered > 0 then call('HINCRBY', state, 'covered', covered) end
if n > 0 then
  local stored = call('HMGET', state, 'watermark', 'last_id')
  local update = {{'applied_at_ms', ARGV[2]}}
  if max_event ~= nil and (not stored[1] or max_event > tonumber(stored[1])) then
    update[#update + 1] = 'watermark'
    update[#update + 1] = format('%d', max_event)
  end
  local last_id = ARGV[4 + n]
  local ms, seq = string.match(last_id, '^(%d+)-(%d+)$')
  local sms, sseq = string.match(stored[2] or '0-0', '^(%d+)-(%d+)$')
  ms, seq, sms, sseq = tonumber(ms), tonumber(seq), tonumber(sms), tonumber(sseq)
  if ms > sms or (ms == sms and seq > sseq) then
    update[#update + 1] = 'last_id'
    update[#update + 1] = last_id
  end
  call('HSET', state, unpack(update))
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
    lookback = steps(view.lookback, view.step)
    positions = _token_positions(view)
    aggregations = []
    for aggregation in view.aggregations:
        integer = "true" if aggregation.dtype.is_integer() else "false"
        kind = "c" if aggregation.function == "count" else _KINDS[aggregation.function]
        aggregations.append(
            f"{{fn={_lua_string(aggregation.function)}, w={steps(aggregation.window, view.step)}, "
            f"c={positions[aggregation.column, 'c']}, k={positions[aggregation.column, kind]}, int={integer}}}"
        )
    return f"""
local tonumber, format, unpack_struct = tonumber, string.format, struct.unpack
local STEP, L = {step}, {lookback}
local TILE_FORMAT, TILE_BYTES = '<' .. string.rep('d', {tile_width(view)}), {tile_width(view) * 8}
local AGGREGATIONS = {{{", ".join(aggregations)}}}
local now = tonumber(ARGV[1])
local r = now % STEP
local F = (now - r) / STEP
local B = F + ((r > 0) and 1 or 0)
local first = F - L + 1
local names = {{}}
for b = first, B do names[#names + 1] = b end
local packed = redis.call('HMGET', KEYS[1], unpack(names))
local buckets, newest = {{}}, nil
for i = 1, #names do
  local value = packed[i]
  if value and #value == TILE_BYTES then
    local t = {{unpack_struct(TILE_FORMAT, value)}}
    buckets[first + i - 1] = t
    local m = t[1]
    if newest == nil or m > newest then newest = m end
  end
end
if newest == nil then return false end
local function number(x, int)
  if x == nil then return '' end
  if int then return format('%d', x) end
  return format('%.17g', x)
end
local order = '1' .. format('%018d', newest)
local out = {{order .. order}}
for _, a in ipairs(AGGREGATIONS) do
  local count, acc, le, la, lv = 0, nil, nil, nil, nil
  for b = F - a.w + 1, B do
    local t = buckets[b]
    local c = t and t[a.c]
    if c ~= nil and c > 0 then
      count = count + c
      if a.fn == 'sum' or a.fn == 'mean' then
        acc = (acc or 0) + t[a.k]
      elseif a.fn == 'min' then
        local v = t[a.k]
        if acc == nil or v < acc then acc = v end
      elseif a.fn == 'max' then
        local v = t[a.k]
        if acc == nil or v > acc then acc = v end
      elseif a.fn == 'last' then
        local e, s, v = t[a.k], t[a.k + 1], t[a.k + 2]
        if le == nil or e > le or (e == le and (s > la or (s == la and v > lv))) then le, la, lv = e, s, v end
      end
    end
  end
  local text
  if a.fn == 'count' then
    text = format('%d', count)
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
