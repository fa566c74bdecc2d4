"""The online store: the latest feature values of each entity in Redis hashes, newer event time wins.

One hash per (view, version, entity) holds one field packing the write order (event and created times) and the
view's encoded features; see `resources.online_encoding` for the key and value layout. Writes go through a Lua
script that replaces a hash only when the incoming (event time, created time) is greater than the stored one, and
then sets its expiry to event time + ttl: one HGET, one HSET of one field and one PEXPIREAT per row. Reads of any
number of entities and views are one pipeline of HGETs of that field, i.e. one round trip.
"""

import os
import time
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import redis
from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from feature_assets.language.errors import EntityFrameError, OnlineStoreError
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository, load_repository
from resources import online_encoding as encoding
from resources.entity_rows import EntityRows, check_key_dtype, entity_columns
from resources.online_read_plan import Features, ReadPlan, ViewPlan, apply_on_demand, build_read_plan, micros
from resources.online_response import OnlineResponse
from resources.online_write_rows import latest_live_rows, newer_wins_script
from resources.project_redis import embedded_url
from resources.read_usage import ReadUsage
from resources.redis_async_transport import AsyncStandaloneTransport
from resources.redis_transport import ClusterTransport, StandaloneTransport, WriteProgress
from resources.stream_keys import Entries, stream_entries, stream_keys

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
WRITE_SLICE_ROWS = 8192
READ_PLAN_CACHE_SIZE = 1024


@dataclass
class _Engine:
    """The plain-Python state behind the resource: a transport, the feature repository and cached read plans."""

    transport: StandaloneTransport | ClusterTransport
    repository_path: str
    key_prefix: str
    repository_cache: FeatureRepository | None = None
    plans: dict[tuple[object, ...], ReadPlan] = field(default_factory=dict)
    count_usage: bool = True
    caller: str = "python"
    usage: ReadUsage | None = None
    async_transport: AsyncStandaloneTransport | None = None

    @property
    def repository(self) -> FeatureRepository:
        """Return the feature repository, imported on first use."""
        if self.repository_cache is None:
            self.repository_cache = load_repository(self.repository_path)
        return self.repository_cache

    def view(self, view: FeatureView | str) -> FeatureView:
        """Return `view`, looking a name up in the repository."""
        return view if isinstance(view, FeatureView) else self.repository.view(view)

    def plan(self, features: Features, full_feature_names: bool) -> ReadPlan:
        """Return the cached read plan of a feature list or service."""
        cache_key = (features if isinstance(features, FeatureService | str) else tuple(features), full_feature_names)
        plan = self.plans.get(cache_key)
        if plan is None:
            if len(self.plans) >= READ_PLAN_CACHE_SIZE:
                self.plans.clear()
            plan = build_read_plan(self.repository, self.key_prefix, features, full_feature_names)
            self.plans[cache_key] = plan
        return plan

    def read(
        self,
        features: Features,
        entity_rows: EntityRows,
        include_timestamps: bool,
        full_feature_names: bool,
        now_us: int | None,
        caller: str | None = None,
    ) -> OnlineResponse:
        """Read features of entities in one round trip and decode them in request order, counting the read."""
        plan, keys, requests = self.requests(features, entity_rows, full_feature_names)
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        try:
            try:
                replies = self.transport.read(requests, now_us)
            except redis.exceptions.NoScriptError:
                self.load_scripts(plan)
                replies = self.transport.read(requests, now_us)
        except (redis.RedisError, OSError) as error:
            raise _read_failed(plan, error) from error
        return self.answer(features, plan, keys, entity_rows, replies, include_timestamps, now_us, caller)

    async def read_async(
        self,
        features: Features,
        entity_rows: EntityRows,
        include_timestamps: bool,
        full_feature_names: bool,
        now_us: int | None,
        caller: str | None = None,
    ) -> OnlineResponse:
        """Read as `read` does, awaiting Redis on the running event loop instead of blocking."""
        if self.async_transport is None:
            return self.read(features, entity_rows, include_timestamps, full_feature_names, now_us, caller)
        plan, keys, requests = self.requests(features, entity_rows, full_feature_names)
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        try:
            try:
                replies = await self.async_transport.read(requests, now_us)
            except redis.exceptions.NoScriptError:
                self.load_scripts(plan)
                replies = await self.async_transport.read(requests, now_us)
        except (redis.RedisError, OSError) as error:
            raise _read_failed(plan, error) from error
        return self.answer(features, plan, keys, entity_rows, replies, include_timestamps, now_us, caller)

    def requests(
        self, features: Features, entity_rows: EntityRows, full_feature_names: bool
    ) -> tuple[ReadPlan, dict[str, list[object]], list[tuple[ViewPlan, list[bytes]]]]:
        """Return the read plan, the entity key columns and the Redis keys to read per view."""
        plan = self.plan(features, full_feature_names)
        keys = entity_columns(entity_rows, plan.join_keys)
        return plan, keys, [(view_plan, view_plan.keys(keys)) for view_plan in plan.views]

    def load_scripts(self, plan: ReadPlan) -> None:
        """Load the read scripts of the plan's streaming views (after Redis answered NOSCRIPT)."""
        for view_plan in plan.views:
            if view_plan.script is not None:
                self.transport.client.script_load(view_plan.script)

    def answer(
        self,
        features: Features,
        plan: ReadPlan,
        keys: dict[str, list[object]],
        entity_rows: EntityRows,
        replies: list[list[bytes | None]],
        include_timestamps: bool,
        now_us: int,
        caller: str | None,
    ) -> OnlineResponse:
        """Decode the replies of one read into the response, computing on-demand features and counting the read."""
        decoded: dict[str, list[object]] = {}
        decoded_statuses: dict[str, list[str]] = {}
        timestamps: dict[str, list[object]] | None = {} if include_timestamps else None
        for view_plan, view_replies in zip(plan.views, replies, strict=True):
            view_plan.decode(view_replies, now_us, decoded, decoded_statuses, timestamps)
        for on_demand in plan.on_demand:
            apply_on_demand(on_demand, entity_rows, decoded, decoded_statuses)
        columns: dict[str, list[object]] = {key: keys[key] for key in plan.join_keys}
        for name in plan.feature_columns:
            columns[name] = decoded[name]
        columns.update(timestamps or {})
        statuses = {name: decoded_statuses[name] for name in plan.feature_columns}
        if self.count_usage:
            if self.usage is None:
                self.usage = ReadUsage(self.transport.client, self.key_prefix)
                self.usage.start()
            service = features.name if isinstance(features, FeatureService) else None
            rows = len(next(iter(keys.values()))) if keys else len(next(iter(columns.values()), ()))
            self.usage.record(caller or self.caller, plan.references, service, rows)
        return OnlineResponse(columns, statuses, plan.dtypes, now_us)

    def write(self, view: FeatureView, frame: pl.DataFrame) -> int:
        """Write the newest row per entity of `frame`; return how many stored values it replaced."""
        if not view.online:
            raise OnlineStoreError(f"FeatureView {view.name!r} is offline only (online=False); it cannot be published")
        rows = latest_live_rows(view, frame, time.time_ns() // 1000)
        if rows.is_empty():
            return 0
        ttl_us = micros(view.ttl)
        expire_at = ((pl.col("_ts") + ttl_us + 999) // 1000).cast(pl.String) if ttl_us is not None else pl.lit("")
        encoded = [
            encoding.redis_key_expr(self.key_prefix, view).alias("key"),
            expire_at.alias("_exp"),
            encoding.packed_row_expr(view, "_ts", "_ct").alias("_value"),
        ]
        slices = (part.select(encoded) for part in rows.iter_slices(WRITE_SLICE_ROWS))
        progress = WriteProgress()
        try:
            self.transport.write(slices, newer_wins_script(encoding.values_field(view)), progress)
        except (redis.RedisError, OSError) as error:
            raise OnlineStoreError(
                f"writing FeatureView {view.name!r} to Redis failed after {progress.rows} of {rows.height} entity "
                f"rows were written ({error}); writes are idempotent and newer-wins, so re-run the write once "
                "Redis is reachable"
            ) from error
        return progress.replaced

    def append_events(
        self, view: FeatureView, frame: pl.DataFrame | Entries, max_length: int, pushed: bool
    ) -> list[str]:
        """Append events (or encoded entries) to a view's partition streams (XADD, trimmed near `max_length`)."""
        entries = frame if isinstance(frame, list) else stream_entries(view, frame, pushed)
        pipeline = self.transport.client.pipeline(transaction=False)
        for partition, fields in entries:
            stream = stream_keys(self.key_prefix, view, partition).stream
            pipeline.xadd(stream, fields, maxlen=max_length, approximate=True)
        try:
            ids = pipeline.execute()
        except (redis.RedisError, OSError) as error:
            raise OnlineStoreError(
                f"appending {len(entries)} events to the streams of FeatureView {view.name!r} failed: {error}; "
                "some may have been appended, and pushing them again may count them twice"
            ) from error
        return [entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id) for entry_id in ids]

    def delete(self, view: FeatureView, keys: EntityRows) -> int:
        """Delete the hashes of the given entities of `view`; return how many existed."""
        for key, dtype in view.key_dtypes.items():
            check_key_dtype(view, key, dtype)
        join_keys = {key: (dtype, view.name) for key, dtype in view.key_dtypes.items()}
        columns = entity_columns(keys, join_keys)
        before, after = encoding.key_affixes(self.key_prefix, view)
        rows = zip(*(columns[key] for key in view.join_keys), strict=True)
        redis_keys = [(before + encoding.entity_key(values) + after).encode() for values in rows]
        if not redis_keys:
            return 0
        try:
            return self.transport.delete(redis_keys)
        except (redis.RedisError, OSError) as error:
            raise OnlineStoreError(f"deleting entities of FeatureView {view.name!r} failed: {error}") from error


def _read_failed(plan: ReadPlan, error: Exception) -> OnlineStoreError:
    """Return the error of a read that Redis did not answer."""
    views = [view_plan.name for view_plan in plan.views]
    return OnlineStoreError(f"reading views {views} from Redis failed: {error}; check that Redis is up")


def _epoch_micros(moment: datetime) -> int:
    """Return an aware datetime as microseconds since the Unix epoch."""
    if moment.tzinfo is None:
        raise EntityFrameError(f"now={moment!r} is naive; pass an aware datetime, e.g. with tzinfo=UTC")
    return encoding.epoch_us(moment)


def _parse_url(url: str) -> tuple[str, bool]:
    scheme, separator, rest = url.partition("://")
    if separator and scheme in CLUSTER_SCHEMES:
        return f"{CLUSTER_SCHEMES[scheme]}://{rest}", True
    return url, False


class RedisOnlineStore(ConfigurableResource):
    """Latest feature values per entity in Redis (standalone or Cluster), newer event time wins, TTL honoured."""

    url: str | None = Field(
        default=None,
        description=(
            "redis://[:password@]host:port/db or rediss:// for TLS; redis+cluster:// or rediss+cluster:// for a "
            "Redis Cluster. Unset: the project's background redis-server under $DAGSTER_HOME/redis, shared by every "
            "run process (started when missing); without DAGSTER_HOME, a private server for this process."
        ),
    )
    cluster: bool = Field(
        default=False, description="Connect to a Redis Cluster (also implied by a redis+cluster:// URL)."
    )
    repository: str = Field(
        default="feature_assets.demo.views:repository",
        description="Import path `module:attribute` of the FeatureRepository used to resolve feature references.",
    )
    socket_timeout: float = Field(default=5.0, description="Seconds to wait for Redis to answer before failing.")
    max_connections: int = Field(default=32, description="Size of the connection pool (per node on a cluster).")
    key_prefix: str = Field(default="fs", description="First segment of every key the store writes (no braces).")
    stream_max_length: int = Field(
        default=1_000_000,
        description="Entries kept per partition stream of a streaming view (approximate MAXLEN trimming on append).",
    )

    count_usage: bool = Field(
        default=True, description="Count reads per feature, service and caller, flushed to Redis every 10 s."
    )
    caller: str = Field(default="python", description="Who reads, in usage analytics (e.g. a model's name).")

    _engine: _Engine | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **settings: object) -> "RedisOnlineStore":
        """Build the store from REDIS_URL when it is set, else use the embedded server; other fields as keywords."""
        if os.environ.get("REDIS_URL"):
            settings["url"] = EnvVar("REDIS_URL")
        return cls(**settings)

    def _connected(self) -> _Engine:
        """Return the engine, creating the client and its connection pool on first use."""
        if self._engine is None:
            if "{" in self.key_prefix or "}" in self.key_prefix:
                raise OnlineStoreError(f"key_prefix {self.key_prefix!r} must not contain braces (the hash tag's)")
            configured = self.url.get_value() if isinstance(self.url, EnvVar) else self.url
            url, cluster = _parse_url(configured or embedded_url())
            options = {
                "socket_timeout": self.socket_timeout,
                "socket_connect_timeout": self.socket_timeout,
                "max_connections": self.max_connections,
                "retry": Retry(NoBackoff(), retries=1),
            }
            transport: StandaloneTransport | ClusterTransport
            async_transport = None
            if cluster or self.cluster:
                transport = ClusterTransport(RedisCluster.from_url(url, **options))
            else:
                transport = StandaloneTransport(redis.Redis.from_url(url, **options))
                pool = transport.pool
                if pool.connection_class in (redis.Connection, redis.UnixDomainSocketConnection):
                    async_transport = AsyncStandaloneTransport(pool.connection_kwargs, self.socket_timeout)
            self._engine = _Engine(
                transport=transport,
                async_transport=async_transport,
                repository_path=self.repository,
                key_prefix=self.key_prefix,
                count_usage=self.count_usage,
                caller=self.caller,
            )
        return self._engine

    def write_batch(self, view: FeatureView | str, frame: pl.DataFrame) -> int:
        """Write the newest row per entity of offline rows of `view`; return how many stored values it replaced."""
        engine = self._connected()
        return engine.write(engine.view(view), frame)

    def get_online_features(
        self,
        features: Features,
        entity_rows: EntityRows,
        *,
        include_timestamps: bool = False,
        full_feature_names: bool = False,
        now: datetime | None = None,
        caller: str | None = None,
    ) -> OnlineResponse:
        """Read `view:feature` references (or a service) for entity rows in one round trip, in request order.

        `now` (default: the clock) is the instant the values are for: it decides expiry (ttl) and, for streaming
        views, which tiles each window covers. The read is counted for usage analytics under `caller` (default:
        the resource's `caller`) when `count_usage` is on.
        """
        now_us = None if now is None else _epoch_micros(now)
        return self._connected().read(features, entity_rows, include_timestamps, full_feature_names, now_us, caller)

    async def get_online_features_async(
        self,
        features: Features,
        entity_rows: EntityRows,
        *,
        include_timestamps: bool = False,
        full_feature_names: bool = False,
        now: datetime | None = None,
        caller: str | None = None,
    ) -> OnlineResponse:
        """Read as `get_online_features` does, awaiting Redis on the running event loop (one connection per loop).

        On a standalone Redis over TCP or a Unix socket the read never blocks the loop; on a Cluster or over TLS it
        is the blocking read.
        """
        now_us = None if now is None else _epoch_micros(now)
        engine = self._connected()
        return await engine.read_async(features, entity_rows, include_timestamps, full_feature_names, now_us, caller)

    def append_events(
        self, view: FeatureView | str, frame: pl.DataFrame | Entries, *, pushed: bool = False
    ) -> list[str]:
        """Append events (join keys, event and arrival times, stream columns; or entries `stream_entries` encoded) to
        a streaming view's Redis Streams; the archiver copies events not `pushed` to the offline event log."""
        engine = self._connected()
        resolved = engine.view(view)
        if not resolved.streaming:
            raise OnlineStoreError(f"FeatureView {resolved.name!r} is not on a StreamSource; it has no streams")
        return engine.append_events(resolved, frame, self.stream_max_length, pushed)

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """Return the underlying redis-py client (standalone or cluster), connecting on first use."""
        return self._connected().transport.client

    def delete_entities(self, view: FeatureView | str, keys: EntityRows) -> int:
        """Delete the stored values of the given entities of `view`; return how many existed."""
        engine = self._connected()
        return engine.delete(engine.view(view), keys)

    def close(self) -> None:
        """Flush the counted reads and disconnect the client's pooled connections."""
        if self._engine is not None:
            if self._engine.usage is not None:
                self._engine.usage.close()
            if self._engine.async_transport is not None:
                self._engine.async_transport.close()
            self._engine.transport.client.close()
            self._engine = None
