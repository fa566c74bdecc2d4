"""Disaster recovery of a streaming view: its tiles rebuilt from the event log, fenced against its stream workers.

The rebuild takes a cut C (an arrival time) and serves, from then on, every event of the event log that arrived by
C plus every stream entry that arrived after it, each once:

1. It fences each partition (state field `rebuilding` = its token), so workers' batches wait, then takes C and
   stores it as each partition's `cut`: once the fence lifts, workers leave out entries that arrived by C.
2. It waits `grace` for pushes and producers' XADDs stamped before C to finish, notes each partition stream's last
   entry, and waits for the stream archiver to have copied every entry up to the noted one (producers' own XADDs
   reach the event log only through it; a stream no archiver reads must hold only pushed entries). If this fails
   it restores the cuts and lifts the fence: nothing has changed.
3. It deletes the view's tiles, folds the event log's events that arrived by C into fresh ones with the workers'
   own fold and apply script, and lifts the fence. If it fails midway the fence stays, so workers never merge into
   half-built tiles: run it again.

Events pushed with `to="online"` only are not in the event log and so not in the rebuilt tiles, and neither are
events stamped before C that reach the event log or a stream more than `grace` after it.
"""

import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import polars as pl
import redis

from feature_assets.compute.stream_events import stream_events
from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore
from resources.online_encoding import epoch_us
from resources.online_store import RedisOnlineStore
from resources.stream_batches import StreamSpec, fold_entries
from resources.stream_keys import ARCHIVE_GROUP, GROUP, StreamKeys, partitions, stream_entries, stream_keys
from resources.stream_progress import consumer_group
from resources.stream_scripts import apply_script

REBUILD_BATCH = 5000


class StreamRebuildError(RuntimeError):
    """A streaming view's tiles could not be rebuilt; the message says whether anything changed."""


class RebuiltTiles(NamedTuple):
    """What a tile rebuild did: partitions fenced, events read from the event log, entities given tiles."""

    partitions: int
    events: int
    entities: int


def rebuild_stream_tiles(
    view: FeatureView,
    offline_store: OfflineStore,
    online_store: RedisOnlineStore,
    grace: timedelta = timedelta(seconds=2),
    archive_timeout: timedelta = timedelta(seconds=60),
) -> RebuiltTiles:
    """Rebuild a streaming view's tiles from its event log (see the module); return what was read and written."""
    client = online_store.client
    parts = [stream_keys(online_store.key_prefix, view, p) for p in range(partitions(view))]
    token = uuid.uuid4().hex
    earlier_cuts = [client.hget(keys.state, "cut") for keys in parts]
    for keys in parts:
        client.hset(keys.state, "rebuilding", token)
    moment = datetime.now(UTC)
    for keys in parts:
        client.hset(keys.state, "cut", epoch_us(moment))
    try:
        time.sleep(grace.total_seconds())
        targets = {keys.stream: _last_id(client, keys.stream) for keys in parts}
        _wait_for_archivers(client, view, targets, archive_timeout)
    except BaseException:
        for keys, earlier in zip(parts, earlier_cuts, strict=True):
            if earlier is None:
                client.hdel(keys.state, "cut")
            else:
                client.hset(keys.state, "cut", earlier)
            client.hdel(keys.state, "rebuilding")
        raise
    for keys in parts:
        _delete_tiles(client, keys)
    window = view.lookback + view.step
    events = (
        stream_events(view, offline_store, moment - window, moment + window)
        .filter(pl.col("created_timestamp") <= moment)
        .collect()
    )
    entities = _write_tiles(client, view, parts, events, token)
    for keys in parts:
        if client.hget(keys.state, "rebuilding") == token.encode():
            client.hdel(keys.state, "rebuilding")
    return RebuiltTiles(len(parts), events.height, entities)


def _write_tiles(
    client: redis.Redis, view: FeatureView, parts: list[StreamKeys], events: pl.DataFrame, token: str
) -> int:
    """Fold the events into each partition's tiles with the apply script, under the rebuild's token; return the
    number of entities written."""
    by_partition: dict[int, list[tuple[bytes, dict[bytes, bytes]]]] = defaultdict(list)
    for index, (partition, fields) in enumerate(stream_entries(view, events)):
        entry = {name.encode(): value.encode() for name, value in fields.items()}
        by_partition[partition].append((f"0-{index}".encode(), entry))
    script = client.register_script(apply_script(view))
    spec = StreamSpec.of(view)
    entities = 0
    for partition, entries in sorted(by_partition.items()):
        keys = parts[partition]
        entities += len({fields[b"k"] for _, fields in entries})
        for start in range(0, len(entries), REBUILD_BATCH):
            fold = fold_entries(spec, entries[start : start + REBUILD_BATCH])
            result = script(
                keys=[keys.stream, keys.state], args=[GROUP, int(time.time() * 1000), token, 0, *fold.arguments]
            )
            if int(result[0]) < 0:
                raise StreamRebuildError(
                    f"another rebuild of {view.name!r} took partition {partition} midway; its workers wait until "
                    "one rebuild finishes: run it again"
                )
    return entities


def _last_id(client: redis.Redis, stream: str) -> bytes | None:
    """Return a stream's last entry ID, or None when it holds no entries."""
    last = client.xrevrange(stream, count=1)
    return last[0][0] if last else None


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


def _wait_for_archivers(
    client: redis.Redis, view: FeatureView, targets: dict[str, bytes | None], timeout: timedelta
) -> None:
    """Wait until the archive group has read and acknowledged each stream up to its target entry."""
    deadline = time.monotonic() + timeout.total_seconds()
    for stream, target in targets.items():
        if target is None:
            continue
        while True:
            archive = consumer_group(client, stream, ARCHIVE_GROUP)
            if archive is None:
                produced = _produced_entries(client, stream, target)
                if produced:
                    raise StreamRebuildError(
                        f"stream {stream} of {view.name!r} holds {produced} events appended by producers and no stream "
                        "archiver has read it, so they are not in the event log: run `feature-store stream archive` "
                        "and retry (nothing was changed)"
                    )
                break
            caught_up = _id_key(archive["last-delivered-id"]) >= _id_key(target) and int(archive["pending"]) == 0
            if caught_up:
                break
            if time.monotonic() > deadline:
                raise StreamRebuildError(
                    f"the stream archiver of {view.name!r} has not copied {stream} up to {_text(target)} within "
                    f"{timeout}: check that `feature-store stream archive` runs and retry (nothing was changed)"
                )
            time.sleep(0.1)


def _produced_entries(client: redis.Redis, stream: str, last: bytes) -> int:
    """Return how many entries up to `last` producers appended (those `push()` wrote carry the field `p`)."""
    produced, start = 0, "-"
    while True:
        entries = client.xrange(stream, start, last, count=10_000)
        produced += sum(1 for _, fields in entries if b"p" not in fields)
        if len(entries) < 10_000:
            return produced
        start = "(" + _text(entries[-1][0])


def _delete_tiles(client: redis.Redis, keys: StreamKeys) -> None:
    """Delete every tile hash of one partition."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{keys.tiles}*", count=1000):
        batch.append(key)
        if len(batch) == 500:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
