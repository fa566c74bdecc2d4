"""The stream worker: reads a streaming view's partition streams in a consumer group and applies events to tiles.

Any number of workers (processes, machines) share the consumer group `workers` of every partition stream. Each
batch read with XREADGROUP is applied by one Lua script that acknowledges each entry and updates its tiles in the
same atomic step, so an entry is counted once however often it is delivered: after a crash, a retry or a takeover.
Entries left pending by a worker that died are taken over with XAUTOCLAIM once idle for `claim_idle_ms`; an entry
delivered `max_deliveries` times without being applied (it is malformed) moves to the dead-letter stream.

    python -m feature_assets.streaming.worker [--views a,b] [--consumer NAME] [--batch 1000]

runs until SIGTERM or SIGINT, against REDIS_URL or the project's embedded Redis.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster

from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository, load_repository
from resources.online_store import RedisOnlineStore
from resources.stream_state import (
    DEAD_LETTER_SCRIPT,
    GROUP,
    StreamKeys,
    apply_script,
    partitions,
    stream_keys,
)

Client = redis.Redis | RedisCluster
COUNTERS = ("applied", "late", "expired", "invalid", "dead")


@dataclass
class WorkerTotals:
    """What one worker did since it started: events applied, late, expired, invalid deliveries, dead-lettered."""

    applied: int = 0
    late: int = 0
    expired: int = 0
    invalid: int = 0
    dead: int = 0
    batches: int = 0
    claimed: int = 0

    def add(self, result: Sequence[int]) -> None:
        """Add one apply script's result {applied, late, expired, invalid, missing}."""
        self.applied += int(result[0])
        self.late += int(result[1])
        self.expired += int(result[2])
        self.invalid += int(result[3])
        self.batches += 1


@dataclass
class _Partition:
    view: FeatureView
    keys: StreamKeys


@dataclass
class StreamWorker:
    """One consumer of the `workers` group on every partition stream of the given streaming views."""

    views: Sequence[FeatureView]
    client: Client
    key_prefix: str = "fs"
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    batch_size: int = 1000
    block_ms: int = 5
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    totals: WorkerTotals = field(default_factory=WorkerTotals)

    def __post_init__(self) -> None:
        for view in self.views:
            if not view.streaming:
                raise ValueError(f"FeatureView {view.name!r} is not on a StreamSource; a stream worker cannot run it")
        self.partitions = [
            _Partition(view, stream_keys(self.key_prefix, view, partition))
            for view in self.views
            for partition in range(partitions(view))
        ]
        self.by_stream = {part.keys.stream.encode(): part for part in self.partitions}
        self.scripts = {view.name: self.client.register_script(apply_script(view)) for view in self.views}
        self.dead_letter = self.client.register_script(DEAD_LETTER_SCRIPT)
        self.client.set_response_callback("XREADGROUP", lambda response, **_: response)
        self.cluster = isinstance(self.client, RedisCluster)

    def create_groups(self) -> None:
        """Create each partition stream and its consumer group when missing (reading from the stream's start)."""
        for part in self.partitions:
            try:
                self.client.xgroup_create(part.keys.stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def poll(self) -> int:
        """Read and apply one batch per partition stream that has new entries; return how many entries were read."""
        replies = self._read_new()
        read = 0
        for stream, entries in replies:
            ids = [entry[0] for entry in entries if entry[1] is not None]
            read += len(entries)
            if ids:
                self._apply(self.by_stream[stream], ids)
        return read

    def recover(self) -> int:
        """Take over entries pending longer than `claim_idle_ms`, dead-lettering those delivered too often."""
        handled = 0
        for part in self.partitions:
            start = "0-0"
            while True:
                reply = self.client.xautoclaim(
                    part.keys.stream, GROUP, self.consumer, self.claim_idle_ms, start, count=self.batch_size
                )
                start, claimed = reply[0], [entry[0] for entry in reply[1] if entry[1] is not None]
                if claimed:
                    handled += self._settle(part, claimed)
                if start in (b"0-0", "0-0"):
                    break
        return handled

    def run(self, stop: threading.Event, recover_every_s: float = 1.0) -> WorkerTotals:
        """Apply events until `stop` is set, taking over idle pending entries every `recover_every_s` seconds."""
        self.create_groups()
        self.recover()
        next_recovery = time.monotonic() + recover_every_s
        while not stop.is_set():
            read = self.poll()
            if self.cluster and not read:
                stop.wait(self.block_ms / 1000)
            if time.monotonic() >= next_recovery:
                self.recover()
                next_recovery = time.monotonic() + recover_every_s
        return self.totals

    def _read_new(self) -> list[tuple[bytes, list[list[object]]]]:
        """Return new entries per stream: one blocking XREADGROUP over all streams, or one call per stream (Cluster)."""
        if not self.cluster:
            streams = {part.keys.stream: ">" for part in self.partitions}
            reply = self.client.xreadgroup(GROUP, self.consumer, streams, count=self.batch_size, block=self.block_ms)
            return _per_stream(reply)
        replies = []
        for part in self.partitions:
            reply = self.client.xreadgroup(GROUP, self.consumer, {part.keys.stream: ">"}, count=self.batch_size)
            replies += _per_stream(reply)
        return replies

    def _apply(self, part: _Partition, ids: list[bytes]) -> None:
        script = self.scripts[part.view.name]
        result = script(keys=[part.keys.stream, part.keys.state], args=[GROUP, int(time.time() * 1000), *ids])
        self.totals.add(result)

    def _settle(self, part: _Partition, claimed: list[bytes]) -> int:
        """Dead-letter claimed entries delivered `max_deliveries` times or more; apply the others."""
        pending = self.client.xpending_range(
            part.keys.stream, GROUP, min=claimed[0], max=claimed[-1], count=len(claimed) * 4 + 16
        )
        deliveries = {entry["message_id"]: entry["times_delivered"] for entry in pending}
        exhausted = [i for i in claimed if deliveries.get(i, 0) >= self.max_deliveries]
        retried = [i for i in claimed if deliveries.get(i, 0) < self.max_deliveries]
        if exhausted:
            moved = self.dead_letter(
                keys=[part.keys.stream, part.keys.state, part.keys.dead],
                args=[GROUP, self.max_deliveries, *exhausted],
            )
            self.totals.dead += int(moved)
        if retried:
            self._apply(part, retried)
        self.totals.claimed += len(claimed)
        return len(claimed)


def _per_stream(reply: object) -> list[tuple[bytes, list[list[object]]]]:
    """Return an unparsed XREADGROUP reply (a RESP3 map or RESP2 pairs) as (stream, entries) pairs."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(stream, entries) for stream, entries in pairs]


def partition_state(client: Client, key_prefix: str, view: FeatureView) -> list[dict[str, int | str | None]]:
    """Return each partition's counters, watermark, last applied entry, pending count and dead-letter length."""
    states = []
    for p in range(partitions(view)):
        keys = stream_keys(key_prefix, view, p)
        stored = {k.decode(): v.decode() for k, v in client.hgetall(keys.state).items()}
        try:
            pending = client.xpending(keys.stream, GROUP)["pending"]
        except redis.ResponseError:
            pending = 0
        state: dict[str, int | str | None] = {name: int(stored.get(name, 0)) for name in COUNTERS}
        state.update(
            partition=p,
            watermark_us=int(stored["watermark"]) if "watermark" in stored else None,
            last_id=stored.get("last_id"),
            pending=int(pending),
            length=int(client.xlen(keys.stream)),
            dead_letters=int(client.xlen(keys.dead)),
        )
        states.append(state)
    return states


def main(argv: list[str] | None = None) -> int:
    """Run one stream worker until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m feature_assets.streaming.worker", description=main.__doc__)
    parser.add_argument("--repository", default="feature_assets.demo.views:repository")
    parser.add_argument("--views", default="", help="comma-separated streaming views (default: all of them)")
    parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--block-ms", type=int, default=5)
    parser.add_argument("--claim-idle-ms", type=int, default=30_000)
    parser.add_argument("--max-deliveries", type=int, default=5)
    parser.add_argument("--key-prefix", default="fs")
    args = parser.parse_args(argv)
    repository: FeatureRepository = load_repository(args.repository)
    names = [name for name in args.views.split(",") if name]
    views = [repository.view(name) for name in names] or [v for v in repository.views.values() if v.streaming]
    if not views:
        print(f"no streaming views in {args.repository}", file=sys.stderr)
        return 2
    store = RedisOnlineStore.from_env(repository=args.repository, key_prefix=args.key_prefix)
    worker = StreamWorker(
        views,
        store.client,
        key_prefix=args.key_prefix,
        consumer=args.consumer,
        batch_size=args.batch,
        block_ms=args.block_ms,
        claim_idle_ms=args.claim_idle_ms,
        max_deliveries=args.max_deliveries,
    )
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    print(f"stream worker {args.consumer}: views {[v.name for v in views]}", flush=True)
    totals = worker.run(stop)
    print(f"stream worker {args.consumer} stopped: {totals}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
