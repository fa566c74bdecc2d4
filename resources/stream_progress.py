"""How far stream workers are: counters, watermark, pending and undelivered entries and the lag of each stream."""

from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster

from feature_assets.language.feature_view import FeatureView
from resources.stream_keys import GROUP, partitions, stream_keys

COUNTERS = ("applied", "late", "expired", "invalid", "dead", "archived", "covered")
UNDELIVERED_COUNTED = 10_000


@dataclass(frozen=True)
class StreamProgress:
    """A streaming view's progress over all its partitions (watermark in seconds since the epoch)."""

    applied: int
    late: int
    expired: int
    invalid: int
    dead_letters: int
    archived: int
    pending: int
    undelivered: int
    lag_seconds: float
    watermark: float | None
    dead_letter_keys: tuple[str, ...]


def partition_state(
    client: redis.Redis | RedisCluster, key_prefix: str, view: FeatureView
) -> list[dict[str, int | str | None]]:
    """Return each partition's counters, watermark (µs), last applied entry, pending count, dead-letter length and
    tile rebuild (`cut_us`: the last rebuild's cut; `rebuilding`: the token of a rebuild holding the partition)."""
    states = []
    for p in range(partitions(view)):
        keys = stream_keys(key_prefix, view, p)
        stored = {k.decode(): v.decode() for k, v in client.hgetall(keys.state).items()}
        try:
            pending = client.xpending(keys.stream, GROUP)
        except redis.ResponseError:
            pending = {"pending": 0, "min": None}
        state: dict[str, int | str | None] = {name: int(stored.get(name, 0)) for name in COUNTERS}
        oldest = _oldest_unapplied(client, keys.stream, pending)
        state.update(
            partition=p,
            watermark_us=int(stored["watermark"]) if "watermark" in stored else None,
            last_id=stored.get("last_id"),
            pending=int(pending["pending"]),
            undelivered=oldest[1],
            oldest_unapplied_ms=oldest[0],
            length=int(client.xlen(keys.stream)),
            dead_letters=int(client.xlen(keys.dead)),
            cut_us=int(stored["cut"]) if "cut" in stored else None,
            rebuilding=stored.get("rebuilding"),
        )
        states.append(state)
    return states


def stream_progress(
    client: redis.Redis | RedisCluster, key_prefix: str, view: FeatureView, now: float
) -> StreamProgress:
    """Return a streaming view's progress summed over its partitions; lag is `now` minus the oldest unapplied entry."""
    states = partition_state(client, key_prefix, view)
    oldest = [int(s["oldest_unapplied_ms"]) for s in states if s["oldest_unapplied_ms"] is not None]
    watermarks = [int(s["watermark_us"]) for s in states if s["watermark_us"] is not None]
    return StreamProgress(
        applied=sum(int(s["applied"] or 0) for s in states),
        late=sum(int(s["late"] or 0) for s in states),
        expired=sum(int(s["expired"] or 0) for s in states),
        invalid=sum(int(s["invalid"] or 0) for s in states),
        dead_letters=sum(int(s["dead_letters"] or 0) for s in states),
        archived=sum(int(s["archived"] or 0) for s in states),
        pending=sum(int(s["pending"] or 0) for s in states),
        undelivered=sum(int(s["undelivered"] or 0) for s in states),
        lag_seconds=max(0.0, now - min(oldest) / 1000) if oldest else 0.0,
        watermark=max(watermarks) / 1e6 if watermarks else None,
        dead_letter_keys=tuple(stream_keys(key_prefix, view, p).dead for p in range(partitions(view))),
    )


def _oldest_unapplied(
    client: redis.Redis | RedisCluster, stream: str, pending: dict[str, object]
) -> tuple[int | None, int]:
    """Return the time (ms) of the oldest entry not yet applied (pending or undelivered) and how many are undelivered
    (counted up to UNDELIVERED_COUNTED)."""
    group = consumer_group(client, stream, GROUP)
    if group is None:
        return None, 0
    delivered = group["last-delivered-id"]
    delivered = delivered.decode() if isinstance(delivered, bytes) else delivered
    undelivered = client.xrange(stream, f"({delivered}", "+", count=UNDELIVERED_COUNTED)
    candidates = [_ms(undelivered[0][0])] if undelivered else []
    if pending.get("min"):
        candidates.append(_ms(pending["min"]))
    return (min(candidates) if candidates else None), len(undelivered)


def consumer_group(client: redis.Redis | RedisCluster, stream: str, name: str) -> dict[str, object] | None:
    """Return XINFO GROUPS' entry of one consumer group of a stream, or None when the group or stream is missing."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    return next((group for group in groups if group["name"] in (name, name.encode())), None)


def _ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-")[0])
