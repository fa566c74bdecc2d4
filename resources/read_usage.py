"""Usage of online reads: reads counted per feature, view, service and caller in memory, added to Redis periodically.

`ReadUsage.record` only updates counters under a lock, so a read pays no I/O. `flush` adds the accumulated deltas
to Redis hashes with HINCRBY in one MULTI/EXEC transaction, so either every delta is added or none is; on a Redis
error the deltas go back into the counters for the next flush, and no count is lost to a transient failure. All
keys share the `{usage}` hash tag, so the transaction stays in one slot of a Redis Cluster:

    <prefix>:{usage}:features      view:feature -> reads that included it
    <prefix>:{usage}:views         view -> reads that included any of its features
    <prefix>:{usage}:services      service -> reads of that feature service
    <prefix>:{usage}:callers       caller -> reads
    <prefix>:{usage}:entity_rows   caller -> entity rows read
    <prefix>:{usage}:features:<YYYY-MM-DD>   view:feature -> reads flushed on that UTC day (expires after 90 days)
"""

import functools
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import redis
from redis.cluster import RedisCluster

from feature_assets.language.errors import OnlineStoreError

USAGE_TAG = "{usage}"
DAILY_KEPT = timedelta(days=90)
HASHES = ("features", "views", "services", "callers", "entity_rows")

logger = logging.getLogger(__name__)


def usage_key(key_prefix: str, name: str) -> str:
    """Return the Redis key of one usage hash (`features`, `views`, `services`, `callers`, `entity_rows`)."""
    if "{" in key_prefix or "}" in key_prefix:
        raise OnlineStoreError(f"key_prefix {key_prefix!r} must not contain braces (the hash tag's)")
    return f"{key_prefix}:{USAGE_TAG}:{name}"


def daily_features_key(key_prefix: str, day: date) -> str:
    """Return the Redis key of the hash of feature reads flushed on the UTC day `day`."""
    return f"{usage_key(key_prefix, 'features')}:{day.isoformat()}"


@dataclass(frozen=True)
class UsageCounts:
    """Reads counted so far: per `view:feature`, per service and per caller (plus per view and entity rows)."""

    features: dict[str, int]
    services: dict[str, int]
    callers: dict[str, int]
    views: dict[str, int] = field(default_factory=dict)
    entity_rows: dict[str, int] = field(default_factory=dict)

    @property
    def reads(self) -> int:
        """Return the number of reads (each read has one caller)."""
        return sum(self.callers.values())


def _as_counts(mapping: dict[bytes | str, bytes | str]) -> dict[str, int]:
    """Return a Redis hash of counters as text keys and integers."""
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in mapping.items()}


def usage_counts(client: redis.Redis | RedisCluster, key_prefix: str = "fs") -> UsageCounts:
    """Return the reads flushed to Redis so far, per feature, service and caller."""
    pipeline = client.pipeline(transaction=False)
    for name in HASHES:
        pipeline.hgetall(usage_key(key_prefix, name))
    features, views, services, callers, entity_rows = (_as_counts(reply) for reply in pipeline.execute())
    return UsageCounts(features, services, callers, views=views, entity_rows=entity_rows)


def daily_feature_reads(client: redis.Redis | RedisCluster, day: date, key_prefix: str = "fs") -> dict[str, int]:
    """Return the feature reads flushed to Redis on the UTC day `day`, per `view:feature`."""
    return _as_counts(client.hgetall(daily_features_key(key_prefix, day)))


@dataclass
class _Deltas:
    """Reads recorded since the last successful flush."""

    features: Counter[str] = field(default_factory=Counter)
    views: Counter[str] = field(default_factory=Counter)
    services: Counter[str] = field(default_factory=Counter)
    callers: Counter[str] = field(default_factory=Counter)
    entity_rows: Counter[str] = field(default_factory=Counter)

    def counters(self) -> dict[str, Counter[str]]:
        """Return each counter under the name of its Redis hash."""
        return {name: getattr(self, name) for name in HASHES}

    def add(self, other: "_Deltas") -> None:
        """Add `other`'s counts to these."""
        for name, counter in other.counters().items():
            getattr(self, name).update(counter)

    def __bool__(self) -> bool:
        return bool(self.callers)


@functools.lru_cache(maxsize=1024)
def _distinct(features: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """Return the distinct features and views of a read's references (cached: reads repeat the same lists)."""
    return frozenset(features), frozenset(feature.partition(":")[0] for feature in features)


class ReadUsage:
    """Counts online reads in memory (thread-safe, no I/O) and adds them to Redis every `flush_every` seconds."""

    def __init__(self, client: redis.Redis | RedisCluster, key_prefix: str = "fs", flush_every: float = 10.0) -> None:
        usage_key(key_prefix, "features")
        self.client = client
        self.key_prefix = key_prefix
        self.flush_every = flush_every
        self._pending = _Deltas()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, caller: str, features: Sequence[str], service: str | None, entities: int) -> None:
        """Count one read by `caller` of `view:feature` references (through `service`, if any) for `entities` rows."""
        read, views = _distinct(tuple(features))
        with self._lock:
            pending = self._pending
            pending.features.update(read)
            pending.views.update(views)
            pending.callers[caller] += 1
            pending.entity_rows[caller] += entities
            if service is not None:
                pending.services[service] += 1

    def flush(self) -> None:
        """Add the reads recorded since the last flush to Redis in one transaction; on failure keep them and raise."""
        with self._flush_lock:
            with self._lock:
                deltas, self._pending = self._pending, _Deltas()
            if not deltas:
                return
            today = datetime.now(UTC).date()
            daily = daily_features_key(self.key_prefix, today)
            try:
                pipeline = self.client.pipeline(transaction=True)
                for name, counter in deltas.counters().items():
                    key = usage_key(self.key_prefix, name)
                    for member, count in counter.items():
                        pipeline.hincrby(key, member, count)
                for member, count in deltas.features.items():
                    pipeline.hincrby(daily, member, count)
                pipeline.expire(daily, DAILY_KEPT)
                pipeline.execute()
            except (redis.RedisError, OSError) as error:
                with self._lock:
                    self._pending.add(deltas)
                raise OnlineStoreError(
                    f"flushing {sum(deltas.callers.values())} counted reads to Redis failed ({error}); they are kept "
                    "and added by the next flush once Redis is reachable"
                ) from error

    def start(self) -> None:
        """Start a daemon thread that flushes every `flush_every` seconds until `close()`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._flush_periodically, name="read-usage-flush", daemon=True)
        self._thread.start()

    def _flush_periodically(self) -> None:
        while not self._stopped.wait(self.flush_every):
            try:
                self.flush()
            except OnlineStoreError as error:
                logger.warning("%s", error)

    def close(self) -> None:
        """Stop the flushing thread and flush what is left (logging, not raising, when Redis is unreachable)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.flush()
        except OnlineStoreError as error:
            logger.error("read usage lost at close: %s", error)
