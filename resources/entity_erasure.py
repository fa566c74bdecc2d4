"""Erasing one entity from Redis: its view hashes in every version, its tiles and its events on the streams.

Where an entity lives (see `resources.online_encoding` and `resources.stream_keys` for the layouts):

    <prefix>:{<entity>}:<view>:v<N>            one hash per view version; the entity is the hash tag, so on a
                                               Cluster every version of every view of it sits in one slot
    <prefix>:{<view>:v<N>:p<p>}:t:<entity>     a streaming view's tiles of the entity
    <prefix>:{<view>:v<N>:p<p>}:events|dead    partition streams whose entries carry the entity in field `k`

Keys of every version are found with SCAN (MATCH on the entity's part of the key; redis-py's RedisCluster scans
every node); the client must return bytes (as the online store's does). Of the streams of a version the
repository knows, only the partition the entity hashes to is read; of others, every partition.
Stream entries are acknowledged for every consumer group before they are deleted, so a worker holding them in an
unapplied batch finds them no longer pending and refolds the batch without them; tiles are unlinked after that.
"""

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster

from feature_assets.language.feature_view import FeatureView
from resources import online_encoding as encoding
from resources.stream_keys import partition_of, partitions

SCAN_COUNT = 1000
XRANGE_COUNT = 10_000
DELETE_BATCH = 1000
_GLOB_SPECIAL = re.compile(rb"([*?\[\]\\])")
_STREAM = re.compile(rb"(?P<view>[a-z][a-z0-9_]*):v(?P<version>\d+):p(?P<partition>\d+)\}:(?:events|dead)")

Client = redis.Redis | RedisCluster


@dataclass
class OnlineTraces:
    """Where one entity is held in Redis, per view name: hashes (all versions), tiles and stream entry IDs."""

    hashes: dict[str, list[bytes]] = field(default_factory=dict)
    tiles: dict[str, list[bytes]] = field(default_factory=dict)
    entries: dict[str, dict[bytes, list[bytes]]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Return per view how many hashes, tile hashes and stream entries hold the entity."""
        names = sorted({*self.hashes, *self.tiles, *self.entries})
        return {
            name: {
                "hashes": len(self.hashes.get(name, ())),
                "tiles": len(self.tiles.get(name, ())),
                "stream_entries": sum(map(len, self.entries.get(name, {}).values())),
            }
            for name in names
        }


def _glob(text: str) -> bytes:
    """Return `text` as a SCAN MATCH pattern matching exactly itself."""
    return _GLOB_SPECIAL.sub(rb"\\\1", text.encode())


def _names(names: Iterable[str]) -> bytes:
    return b"(?P<view>" + b"|".join(re.escape(name.encode()) for name in sorted(names)) + b")"


def _scan(client: Client, pattern: bytes, kind: str | None = None) -> Iterator[bytes]:
    """Yield the keys matching `pattern` (of one type when `kind` is given), on every node of a Cluster."""
    yield from client.scan_iter(match=pattern, count=SCAN_COUNT, _type=kind)


def find_online_traces(
    client: Client, prefix: str, views: Sequence[FeatureView], entity: Mapping[str, int | str]
) -> OnlineTraces:
    """Return every hash, tile and stream entry of `entity` in any version of the views (read only).

    `views` holds the known definitions, previous versions included; versions found in Redis but not among them
    are read as the latest definition of their view.
    """
    traces = OnlineTraces()
    by_entity: dict[str, set[str]] = {}
    for view in views:
        by_entity.setdefault(_entity_key(view, entity), set()).add(view.name)
    for entity_key, names in by_entity.items():
        head = f"{prefix}:{{{entity_key}}}:"
        own = re.compile(re.escape(head.encode()) + _names(names) + rb":v\d+")
        for key in _scan(client, _glob(head) + b"*"):
            if matched := own.fullmatch(key):
                traces.hashes.setdefault(matched["view"].decode(), []).append(key)
        tail = f"}}:t:{entity_key}"
        tiles = re.compile(
            re.escape(f"{prefix}:{{".encode()) + _names(names) + rb":v\d+:p\d+" + re.escape(tail.encode())
        )
        for key in _scan(client, _glob(f"{prefix}:{{") + b"*" + _glob(tail)):
            if matched := tiles.fullmatch(key):
                traces.tiles.setdefault(matched["view"].decode(), []).append(key)
    known = {(view.name, view.version): view for view in views}
    latest = {view.name: view for view in sorted(views, key=lambda view: view.version)}
    head = f"{prefix}:{{".encode()
    for stream in _scan(client, _glob(f"{prefix}:{{") + b"*", "stream"):
        matched = _STREAM.fullmatch(stream[len(head) :]) if stream.startswith(head) else None
        name = matched["view"].decode() if matched else None
        if name not in latest:
            continue
        view = known.get((name, int(matched["version"])))
        entity_key = _entity_key(view or latest[name], entity)
        if (
            view is not None
            and view.streaming
            and int(matched["partition"]) != partition_of(entity_key, partitions(view))
        ):
            continue
        ids = _entries_of(client, stream, entity_key.encode())
        if ids:
            traces.entries.setdefault(name, {})[stream] = ids
    return traces


def _entity_key(view: FeatureView, entity: Mapping[str, int | str]) -> str:
    return encoding.entity_key(tuple(entity[key] for key in view.join_keys))


def _entries_of(client: Client, stream: bytes, entity_key: bytes) -> list[bytes]:
    """Return the IDs of the stream's entries whose field `k` is the entity key, reading in chunks."""
    ids: list[bytes] = []
    start = b"-"
    while True:
        chunk = client.xrange(stream, min=start, max="+", count=XRANGE_COUNT)
        ids += [entry_id for entry_id, fields in chunk if fields.get(b"k") == entity_key]
        if len(chunk) < XRANGE_COUNT:
            return ids
        start = b"(" + chunk[-1][0]


def erase_online_traces(client: Client, traces: OnlineTraces) -> None:
    """Acknowledge and delete the stream entries, then unlink the tiles and hashes (idempotent)."""
    for streams in traces.entries.values():
        for stream, ids in streams.items():
            groups = [group["name"] for group in client.xinfo_groups(stream)]
            for start in range(0, len(ids), DELETE_BATCH):
                batch = ids[start : start + DELETE_BATCH]
                pipeline = client.pipeline(transaction=False)
                for group in groups:
                    pipeline.xack(stream, group, *batch)
                pipeline.xdel(stream, *batch)
                pipeline.execute()
    keys = [key for found in (traces.tiles, traces.hashes) for view_keys in found.values() for key in view_keys]
    for start in range(0, len(keys), DELETE_BATCH):
        pipeline = client.pipeline(transaction=False)
        for key in keys[start : start + DELETE_BATCH]:
            pipeline.unlink(key)
        pipeline.execute()
