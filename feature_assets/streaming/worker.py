"""The stream worker: reads a streaming view's partition streams in a consumer group and applies events to tiles.

Any number of workers (processes, machines) share the consumer group `workers` of every partition stream. Each
batch read with XREADGROUP is folded here into per-(entity, bucket) deltas and applied by one Lua script that checks
its entries are still pending, merges the deltas into the tiles and acknowledges the entries in one atomic step, so
an entry is counted once however often it is delivered: after a crash, a retry or a takeover.
Entries left pending by a worker that died are taken over with XAUTOCLAIM once idle for `claim_idle_ms`; an entry
delivered `max_deliveries` times without being applied (it is malformed) moves to the dead-letter stream.

    python -m feature_assets.streaming.worker [--views a,b] [--consumer NAME] [--batch 1000]

runs until SIGTERM or SIGINT, against REDIS_URL or the project's embedded Redis.
"""

import argparse
import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
from dagster import DagsterInstance
from redis.cluster import RedisCluster

from feature_assets.language.feature_view import FeatureView
from feature_assets.orchestration.stream_assets import report_observations
from feature_assets.streaming.stream_process import add_common_arguments, create_group, process_views, stop_event
from resources.online_store import RedisOnlineStore
from resources.stream_batches import Entry, Fold, StreamSpec, fold_entries
from resources.stream_keys import GROUP, StreamKeys, partitions, stream_keys
from resources.stream_scripts import DEAD_LETTER_SCRIPT, apply_script

Client = redis.Redis | RedisCluster
REBUILD_WAIT_S = 0.05


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
    spec: StreamSpec


_Work = list[tuple[_Partition, Fold, Sequence[Entry]]]


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
            _Partition(view, stream_keys(self.key_prefix, view, partition), StreamSpec.of(view))
            for view in self.views
            for partition in range(partitions(view))
        ]
        self.by_stream = {part.keys.stream.encode(): part for part in self.partitions}
        self.scripts = {view.name: self.client.register_script(apply_script(view)) for view in self.views}
        self.dead_letter = self.client.register_script(DEAD_LETTER_SCRIPT)
        self.client.set_response_callback("XREADGROUP", lambda response, **_: response)
        self.cluster = isinstance(self.client, RedisCluster)
        self._prefetched: _Work = []
        self._cuts: dict[str, int] = {}
        self._stop = threading.Event()

    def create_groups(self) -> None:
        """Create each partition stream and its consumer group when missing (reading from the stream's start)."""
        for part in self.partitions:
            create_group(self.client, part.keys.stream, GROUP)

    def poll(self) -> int:
        """Apply one batch per partition stream with new entries; return how many entries were applied or skipped.

        On a standalone server the next batch is read in the same round trip as this batch's scripts, and folded
        while Redis runs them.
        """
        work = self._prefetched or self._fold(self._read(">", self.block_ms))
        self._prefetched = []
        if not work:
            return 0
        if self.cluster:
            for part, fold, entries in work:
                self._apply(part, fold, entries)
        else:
            self._apply_and_read_ahead(work)
        return sum(len(entries) for _, _, entries in work)

    def recover(self) -> int:
        """Take over entries pending longer than `claim_idle_ms`, dead-lettering those delivered too often."""
        handled = 0
        for part in self.partitions:
            start = "0-0"
            while True:
                reply = self.client.xautoclaim(
                    part.keys.stream, GROUP, self.consumer, self.claim_idle_ms, start, count=self.batch_size
                )
                start, claimed = reply[0], [(entry[0], entry[1]) for entry in reply[1] if entry[1] is not None]
                if claimed:
                    handled += self._settle(part, claimed)
                if start in (b"0-0", "0-0"):
                    break
        return handled

    def run(
        self,
        stop: threading.Event,
        recover_every_s: float = 1.0,
        observe: Callable[[], None] | None = None,
        observe_every_s: float = 10.0,
    ) -> WorkerTotals:
        """Apply events until `stop` is set, taking over idle pending entries every `recover_every_s` seconds.

        This consumer's own pending entries (left by an earlier run under the same name) are applied first, and
        entries already read when `stop` is set are applied before returning.
        `observe`, when given, is called every `observe_every_s` seconds (e.g. to report to Dagster).
        """
        self._stop = stop
        self.create_groups()
        for part, fold, entries in self._fold(self._read("0", None)):
            self._apply(part, fold, entries)
        self.recover()
        next_recovery = time.monotonic() + recover_every_s
        next_observation = time.monotonic()
        while not stop.is_set():
            read = self.poll()
            if self.cluster and not read:
                stop.wait(self.block_ms / 1000)
            now = time.monotonic()
            if now >= next_recovery:
                self.recover()
                next_recovery = now + recover_every_s
            if observe is not None and now >= next_observation:
                observe()
                next_observation = now + observe_every_s
        for part, fold, entries in self._prefetched:
            self._apply(part, fold, entries)
        self._prefetched = []
        return self.totals

    def _read(self, start: str, block_ms: int | None) -> list[tuple[bytes, Sequence[Entry]]]:
        """Return entries per stream: new ones (`>`) or this consumer's pending ones (`0`); one call per stream on
        a Cluster, else one (blocking) XREADGROUP over all streams."""
        if not self.cluster:
            streams = {part.keys.stream: start for part in self.partitions}
            return _per_stream(self.client.xreadgroup(GROUP, self.consumer, streams, self.batch_size, block_ms))
        replies = []
        for part in self.partitions:
            replies += _per_stream(
                self.client.xreadgroup(GROUP, self.consumer, {part.keys.stream: start}, self.batch_size)
            )
        return replies

    def _fold(self, replies: list[tuple[bytes, Sequence[Entry]]]) -> _Work:
        work = []
        for stream, entries in replies:
            if entries:
                part = self.by_stream[stream]
                work.append((part, self._fold_batch(part, entries), entries))
        return work

    def _fold_batch(self, part: _Partition, entries: Sequence[Entry]) -> Fold:
        """Fold entries of one partition, leaving out those its last tile rebuild covered."""
        cut = self._cuts.get(part.keys.state)
        if cut is None:
            cut = self._cuts[part.keys.state] = int(self.client.hget(part.keys.state, "cut") or 0)
        return fold_entries(part.spec, entries, cut=cut)

    def _arguments(self, fold: Fold) -> list[object]:
        return [GROUP, int(time.time() * 1000), "", len(fold.ids), *fold.ids, *fold.arguments]

    def _apply(self, part: _Partition, fold: Fold, entries: Sequence[Entry]) -> None:
        """Run the apply script on a folded batch until it is applied or nothing of it is left to apply.

        While a rebuild holds the partition the batch waits (left pending if the worker is told to stop); after one,
        it is refolded with the rebuild's cut; if another worker applied some of it, what is left is refolded.
        """
        script = self.scripts[part.view.name]
        while True:
            result = script(keys=[part.keys.stream, part.keys.state], args=self._arguments(fold))
            code = int(result[0])
            if code >= 0:
                self.totals.add(result)
                return
            if code == -3:
                if self._stop.wait(REBUILD_WAIT_S):
                    return
                continue
            if code == -2:
                self._cuts.pop(part.keys.state, None)
            else:
                still = {
                    entry["message_id"]
                    for entry in self.client.xpending_range(
                        part.keys.stream, GROUP, min=entries[0][0], max=entries[-1][0], count=len(entries) * 8 + 64
                    )
                }
                entries = [entry for entry in entries if entry[0] in still]
                if not entries:
                    return
            fold = self._fold_batch(part, entries)

    def _apply_and_read_ahead(self, work: _Work) -> None:
        """Send the next XREADGROUP and this batch's scripts in one round trip; fold the next batch meanwhile."""
        streams = [part.keys.stream for part in self.partitions]
        read_ahead = ["XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", self.batch_size, "STREAMS"]
        commands = [(*read_ahead, *streams, *[">"] * len(streams))]
        for part, fold, _ in work:
            sha = self.scripts[part.view.name].sha
            commands.append(("EVALSHA", sha, 2, part.keys.stream, part.keys.state, *self._arguments(fold)))
        connection = self.client.connection_pool.get_connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            ahead = connection.read_response()
            self._prefetched = self._fold(_per_stream(ahead))
            results: list[object] = []
            for _ in work:
                try:
                    results.append(connection.read_response())
                except redis.ResponseError as error:
                    results.append(error)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self.client.connection_pool.release(connection)
        for (part, fold, entries), result in zip(work, results, strict=True):
            if isinstance(result, redis.exceptions.NoScriptError):
                self._apply(part, fold, entries)
            elif isinstance(result, Exception):
                raise result
            elif int(result[0]) < 0:
                self._apply(part, fold, entries)
            else:
                self.totals.add(result)

    def _settle(self, part: _Partition, claimed: list[Entry]) -> int:
        """Dead-letter claimed entries delivered `max_deliveries` times or more; apply the others."""
        ids = [entry_id for entry_id, _ in claimed]
        pending = self.client.xpending_range(part.keys.stream, GROUP, min=ids[0], max=ids[-1], count=len(ids) * 4 + 16)
        deliveries = {entry["message_id"]: entry["times_delivered"] for entry in pending}
        exhausted = [i for i in ids if deliveries.get(i, 0) >= self.max_deliveries]
        retried = [entry for entry in claimed if deliveries.get(entry[0], 0) < self.max_deliveries]
        if exhausted:
            moved = self.dead_letter(
                keys=[part.keys.stream, part.keys.state, part.keys.dead],
                args=[GROUP, self.max_deliveries, *exhausted],
            )
            self.totals.dead += int(moved)
        if retried:
            self._apply(part, self._fold_batch(part, retried), retried)
        self.totals.claimed += len(claimed)
        return len(claimed)


def _per_stream(reply: object) -> list[tuple[bytes, list[list[object]]]]:
    """Return an unparsed XREADGROUP reply (a RESP3 map or RESP2 pairs) as (stream, entries) pairs."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(stream, entries) for stream, entries in pairs]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options (repository, views, consumer name, batch and recovery settings) to `parser`."""
    add_common_arguments(parser)
    parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--block-ms", type=int, default=5)
    parser.add_argument("--claim-idle-ms", type=int, default=30_000)
    parser.add_argument("--max-deliveries", type=int, default=5)
    parser.add_argument(
        "--observe-every",
        type=float,
        default=10.0,
        help="seconds between observations reported to the Dagster instance at $DAGSTER_HOME (0: never)",
    )


def run_worker(args: argparse.Namespace) -> int:
    """Run one stream worker with parsed options until SIGTERM or SIGINT."""
    views = process_views(args)
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
    observe = None
    if args.observe_every > 0 and os.environ.get("DAGSTER_HOME"):
        instance = DagsterInstance.get()
        observe = functools.partial(report_observations, instance, store, views)
    stop = stop_event()
    print(f"stream worker {args.consumer}: views {[v.name for v in views]}", flush=True)
    totals = worker.run(stop, observe=observe, observe_every_s=args.observe_every)
    print(f"stream worker {args.consumer} stopped: {totals}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one stream worker until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m feature_assets.streaming.worker", description=main.__doc__)
    add_arguments(parser)
    return run_worker(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
