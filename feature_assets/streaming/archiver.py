"""The stream archiver: copies the events producers append to streaming views' Redis Streams into the offline event
log, so training sees every event the stream workers served.

It reads each partition stream in the consumer group `archive` (created at the stream's start, so a first run copies
what the streams still hold), writes each batch's events as one atomically written Parquet file per UTC day, then
acknowledges the batch. Events `push()` wrote are skipped (it logged its own copy when asked to). Any number of
archivers may run: each partition is held by one at a time through a lock renewed by every read; a standby takes a
partition over when its holder stops (at once) or dies (after `--lock-ms`), re-writing the batch left unacknowledged
under the same name (see `resources.stream_archive`).

    python -m feature_assets.streaming.archiver [--views a,b] [--batch 5000]

runs until SIGTERM or SIGINT, against REDIS_URL or the project's embedded Redis and the project's offline store.
"""

import argparse
import os
import socket
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster

from feature_assets.language.feature_view import FeatureView
from feature_assets.streaming.stream_process import add_common_arguments, create_group, process_views, stop_event
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from resources.stream_archive import ACK_SCRIPT, READ_SCRIPT, RELEASE_SCRIPT, archive_rows
from resources.stream_keys import ARCHIVE_GROUP, StreamKeys, partitions, stream_keys

Client = redis.Redis | RedisCluster


@dataclass
class ArchiveTotals:
    """What one archiver did since it started: events written offline, pushed and unreadable entries skipped."""

    written: int = 0
    pushed: int = 0
    unreadable: int = 0
    batches: int = 0
    taken_over: int = 0


@dataclass
class _Partition:
    view: FeatureView
    number: int
    keys: StreamKeys


@dataclass
class StreamArchiver:
    """Copies producers' events from streaming views' partition streams to the offline event log."""

    views: Sequence[FeatureView]
    client: Client
    offline_store: OfflineStore
    key_prefix: str = "fs"
    batch_size: int = 5000
    lock_ms: int = 30_000
    idle_s: float = 0.2
    token: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    totals: ArchiveTotals = field(default_factory=ArchiveTotals)

    def __post_init__(self) -> None:
        for view in self.views:
            if not view.streaming:
                raise ValueError(f"FeatureView {view.name!r} is not on a StreamSource; it has no streams to archive")
        self.partitions = [
            _Partition(view, number, stream_keys(self.key_prefix, view, number))
            for view in self.views
            for number in range(partitions(view))
        ]
        self.held: set[str] = set()
        self.read_script = self.client.register_script(READ_SCRIPT)
        self.ack_script = self.client.register_script(ACK_SCRIPT)
        self.release_script = self.client.register_script(RELEASE_SCRIPT)

    def create_groups(self) -> None:
        """Create each partition stream and its `archive` group when missing (reading from the stream's start)."""
        for part in self.partitions:
            create_group(self.client, part.keys.stream, ARCHIVE_GROUP)

    def poll(self) -> int:
        """Archive one batch of each partition this archiver holds or can take; return how many entries it handled."""
        handled = 0
        for part in self.partitions:
            stream = part.keys.stream
            if stream not in self.held:
                if not self.client.set(part.keys.archive_lock, self.token, nx=True, px=self.lock_ms):
                    continue
                self.held.add(stream)
                left = self._left_pending(part)
                if left:
                    self.totals.taken_over += 1
                    handled += self._archive(part, left)
            entries = self._read(part, ">")
            if entries is None:
                self.held.discard(stream)
            elif entries:
                handled += self._archive(part, entries)
        return handled

    def run(self, stop: threading.Event) -> ArchiveTotals:
        """Archive until `stop` is set, then release the partitions held so a standby takes them over at once."""
        self.create_groups()
        try:
            while not stop.is_set():
                if not self.poll():
                    stop.wait(self.idle_s)
        finally:
            for part in self.partitions:
                if part.keys.stream in self.held:
                    self.release_script(keys=[part.keys.archive_lock], args=[self.token])
            self.held.clear()
        return self.totals

    def _read(self, part: _Partition, after: str) -> list | None:
        """Return up to `batch_size` entries after `after` while holding the partition's lock (None if it is lost)."""
        reply = self.read_script(
            keys=[part.keys.stream, part.keys.archive_lock], args=[self.token, self.lock_ms, after, self.batch_size]
        )
        if reply is None:
            return None
        return list(reply[0][1]) if reply else []

    def _left_pending(self, part: _Partition) -> list:
        """Return every entry the archive consumer has pending on the partition: the batch a previous holder left."""
        entries: list = []
        after = "0"
        while batch := self._read(part, after):
            entries += batch
            after = batch[-1][0]
        return entries

    def _archive(self, part: _Partition, entries: list) -> int:
        """Write a batch's producer events to the event log (named by its first and last IDs), then acknowledge it."""
        rows, pushed, unreadable = archive_rows(part.view, entries)
        if rows.height:
            first, last = (entry_id.decode() for entry_id in (entries[0][0], entries[-1][0]))
            self.offline_store.append_pushed(part.view, rows, batch=f"archive-p{part.number}-{first}-{last}")
        self.ack_script(keys=[part.keys.stream, part.keys.state], args=[entry[0] for entry in entries])
        self.totals.written += rows.height
        self.totals.pushed += pushed
        self.totals.unreadable += unreadable
        self.totals.batches += 1
        return len(entries)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the archiver's options (repository, views, batch size, lock time) to `parser`."""
    add_common_arguments(parser)
    parser.add_argument("--batch", type=int, default=5000, help="entries per batch (and per file) of a partition")
    parser.add_argument("--lock-ms", type=int, default=30_000, help="how long a dead archiver holds its partitions")


def run_archiver(args: argparse.Namespace) -> int:
    """Run one stream archiver with parsed options until SIGTERM or SIGINT."""
    views = process_views(args)
    if not views:
        print(f"no streaming views in {args.repository}", file=sys.stderr)
        return 2
    store = RedisOnlineStore.from_env(repository=args.repository, key_prefix=args.key_prefix)
    archiver = StreamArchiver(
        views,
        store.client,
        OfflineStore.from_env(),
        key_prefix=args.key_prefix,
        batch_size=args.batch,
        lock_ms=args.lock_ms,
    )
    stop = stop_event()
    print(f"stream archiver {archiver.token}: views {[v.name for v in views]}", flush=True)
    totals = archiver.run(stop)
    print(f"stream archiver {archiver.token} stopped: {totals}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one stream archiver until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m feature_assets.streaming.archiver", description=main.__doc__)
    add_arguments(parser)
    return run_archiver(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
