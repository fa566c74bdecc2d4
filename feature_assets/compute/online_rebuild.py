"""Disaster recovery: the online store rebuilt from the offline store, the latest live row per entity of each view
(and, for streaming views, their tiles from the event log: see `compute.stream_rebuild`)."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from feature_assets.compute.stream_rebuild import rebuild_stream_tiles
from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore


@dataclass(frozen=True)
class RebuiltView:
    """What rebuilding one view wrote: partitions read, entity rows offered, stored values written."""

    view: str
    partitions: int
    rows: int
    written: int


def rebuildable_views(views: Iterator[FeatureView] | list[FeatureView]) -> list[FeatureView]:
    """Return the views a rebuild restores: online views (streaming views' tiles from their event log)."""
    return [view for view in views if view.online]


def rebuild_online_view(
    view: FeatureView, offline_store: OfflineStore, online_store: RedisOnlineStore, now: datetime | None = None
) -> RebuiltView:
    """Write the latest row per entity within ttl from the view's passed partitions, one partition at a time.

    Partitions go oldest first and each write is newer-event-time-wins, decided in Redis, so memory stays one
    partition and a value published meanwhile is never overwritten by an older one. Only days that can hold a live
    row (the last `ttl` plus one day) are read. A streaming view's tiles are rebuilt from its event log instead
    (partitions: its partition streams; rows: events read; written: entities given tiles).
    """
    if view.streaming:
        tiles = rebuild_stream_tiles(view, offline_store, online_store)
        return RebuiltView(view.name, tiles.partitions, tiles.events, tiles.entities)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    first = (moment - view.ttl).date() if view.ttl is not None else None
    days = [day for day in offline_store.list_partitions(view) if first is None or day >= first]
    rows = written = 0
    for day in days:
        frame = offline_store.read_partition(view, day)
        rows += frame.height
        written += online_store.write_batch(view, frame)
    return RebuiltView(view.name, len(days), rows, written)
