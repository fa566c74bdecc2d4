"""The HTTP feature server as an ASGI app built from the stores, as Feast's `get_app(store)`: Feast's paths and shapes.

A raw ASGI callable rather than a framework: a routing dict, one body read, orjson, and prometheus_client; the
online read (one pipelined Redis round trip) runs inline on the event loop for small requests.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
import redis
from dagster import DagsterInstance

from feature_assets.language.errors import OnlineStoreError
from feature_assets.language.repository import FeatureRepository
from feature_assets.retrieval.point_in_time import get_historical_features
from feature_assets.serving import historical_request, push_request
from feature_assets.serving.api_keys import ApiKey, ApiKeys, presented_key
from feature_assets.serving.audit import ANONYMOUS, Audited, attach_audit_file
from feature_assets.serving.http_errors import HttpError, error_answer
from feature_assets.serving.http_exchange import Answer, Receive, Request, Scope, Send
from feature_assets.serving.materialize import launch_materialization
from feature_assets.serving.online_answer import TIMESTAMP_SUFFIX, ReadShape, ReadShapes, feast_answer
from feature_assets.serving.request_fields import (
    columns,
    entity_columns,
    feature_selection,
    flag,
    json_object,
    names,
    parse_day,
    text,
)
from feature_assets.serving.server_metrics import CONTENT_TYPE, ServerMetrics
from feature_assets.serving.view_descriptions import describe_view, describe_views, find_view
from feature_assets.streaming.push import push_to_source
from resources.offline_store import OfflineStore
from resources.online_response import OnlineResponse
from resources.online_store import RedisOnlineStore

logger = logging.getLogger("feature_store.server")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_HISTORICAL_ROWS = 100_000
# Reads of up to this many entities run on the event loop (awaiting Redis on the loop's own connection), larger
# ones in a worker thread. Measured with bench/http_serving.py's load generator (1 uvicorn worker, 10 features of
# 2 views, interleaved rounds on this 2-core machine), a blocking read inline vs asyncio.to_thread: 1,918 vs 1,208
# req/s for 1 entity (436 vs 757 µs of server CPU per request), 1,010 vs 778 for 20 entities, 313 vs 302 for 100:
# the hand-off costs more than it overlaps. Past ~500 entities decoding holds the loop for over 10 ms, so a thread
# lets other connections in between.
INLINE_READ_MAX_ENTITIES = 500


class UsageRecorder(Protocol):
    """Counts reads per feature, service and caller in memory and flushes them to Redis now and then."""

    def record(self, caller: str, features: Sequence[str], service: str | None, entities: int) -> None:
        """Count one successful read."""

    def start(self) -> None:
        """Start flushing in the background."""

    def close(self) -> None:
        """Flush what is left and stop."""


class FeatureServer:
    """The ASGI app: routes Feast's endpoints to the stores, with API keys, metrics, audit lines and JSON errors."""

    def __init__(
        self,
        online_store: RedisOnlineStore,
        repository: FeatureRepository,
        offline_store: OfflineStore,
        *,
        api_keys: ApiKeys | None,
        usage: UsageRecorder | None,
        metrics: ServerMetrics,
        max_body_bytes: int,
        max_historical_rows: int,
        instance: DagsterInstance | None,
    ) -> None:
        self.online_store, self.repository, self.offline_store = online_store, repository, offline_store
        self.api_keys, self.usage, self.metrics = api_keys, usage, metrics
        self.max_body_bytes, self.max_historical_rows = max_body_bytes, max_historical_rows
        self._instance = instance
        self.shapes = ReadShapes(repository)
        self.routes: dict[str, tuple[str, Callable[[Request], Awaitable[Answer]]]] = {
            "/get-online-features": ("POST", self.get_online_features),
            "/get-historical-features": ("POST", self.get_historical_features),
            "/push": ("POST", self.push),
            "/materialize": ("POST", self.materialize),
            "/health": ("GET", self.health),
            "/metrics": ("GET", self.render_metrics),
            "/views": ("GET", self.list_views),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope: an HTTP request or the lifespan."""
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request, count it and time it."""
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route, endpoint, params = self.routes.get(path), path, {}
        if route is None and path.startswith("/views/"):
            route, endpoint, params = ("GET", self.get_view), "/views/{name}", {"name": path[len("/views/") :]}
        headers: Sequence[tuple[bytes, bytes]] = ()
        try:
            if route is None:
                endpoint = "unknown"
                raise HttpError(404, f"no endpoint {method} {path}; the endpoints are {sorted(self.routes)}")
            if method != route[0]:
                raise HttpError(405, f"{path} answers {route[0]}, not {method}", ((b"allow", route[0].encode()),))
            answer = await route[1](Request(scope, receive, self.max_body_bytes, params))
        except Exception as error:  # every failure becomes a JSON answer; unexpected ones are logged with the trace
            status, body = error_answer(error, f"{method} {path}")
            if isinstance(error, OnlineStoreError | redis.exceptions.RedisError):
                self.metrics.online_store_errors.inc()
            answer, headers = Answer(status, body), error.headers if isinstance(error, HttpError) else ()
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type),
                    (b"content-length", b"%d" % len(answer.body)),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
        self.metrics.observe_request(endpoint, answer.status, time.perf_counter() - started)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start the usage recorder at startup, flush and close it at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as error:  # uvicorn reports the message and exits
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Say how callers are authenticated and start the usage recorder."""
        if self.api_keys is None:
            logger.warning("no API keys configured (FEATURE_STORE_API_KEYS[_FILE]): the server is open to every caller")
        else:
            logger.info("API keys required: %d key(s) configured", len(self.api_keys.keys))
        if self.usage is not None:
            self.usage.start()

    def close(self) -> None:
        """Flush usage counts and release the stores' connections."""
        if self.usage is not None:
            self.usage.close()
        self.online_store.close()

    def authenticate(self, request: Request) -> ApiKey | None:
        """Return the caller's key (None on an open server), or raise 401."""
        if self.api_keys is None:
            return None
        return self.api_keys.authenticate(presented_key(request.scope["headers"]))

    async def get_online_features(self, request: Request) -> Answer:
        """Read features (or a service) for entity rows from Redis: Feast's column-by-column answer."""
        key = self.authenticate(request)
        body = json_object(await request.body())
        features, service = feature_selection(body)
        full_feature_names = flag(body, "full_feature_names")
        entities = entity_columns(body)
        shape = self.shapes.get(features, service, full_feature_names)
        if key is not None:
            key.require("read", shape.views, shape.service)
        rows = len(next(iter(entities.values())))
        if rows <= INLINE_READ_MAX_ENTITIES:
            response = await self.online_store.get_online_features_async(
                shape.features, entities, include_timestamps=True, full_feature_names=full_feature_names
            )
        else:
            response = await asyncio.to_thread(self._read, shape, entities, full_feature_names)
        newest: dict[str, Any] = {}
        answer = feast_answer(response, shape, newest)
        for timestamp_column, moment in newest.items():
            self.metrics.saw_event_time(timestamp_column.removesuffix(TIMESTAMP_SUFFIX), moment.timestamp())
        self.metrics.entities.observe(rows)
        if self.usage is not None:
            self.usage.record(key.name if key else ANONYMOUS, shape.references, shape.service, rows)
        return Answer(200, answer)

    def _read(self, shape: ReadShape, entities: Mapping[str, list[object]], full_feature_names: bool) -> OnlineResponse:
        return self.online_store.get_online_features(
            shape.features, entities, include_timestamps=True, full_feature_names=full_feature_names
        )

    async def get_historical_features(self, request: Request) -> Answer:
        """Join features point in time onto an entity frame; answer an Arrow IPC stream or Parquet bytes."""
        key = self.authenticate(request)
        body = json_object(await request.body())
        features, service = feature_selection(body)
        full_feature_names = flag(body, "full_feature_names")
        encoding = historical_request.frame_format(body)
        shape = self.shapes.get(features, service, full_feature_names)
        if key is not None:
            key.require("read", shape.views, shape.service)
        entities = historical_request.entity_frame(body, self.max_historical_rows)

        def join_and_encode() -> bytes:
            frame = get_historical_features(
                entities,
                shape.features,
                repository=self.repository,
                offline_store=self.offline_store,
                full_feature_names=full_feature_names,
            )
            return historical_request.encode_frame(frame, encoding)

        return Answer(200, await asyncio.to_thread(join_and_encode), historical_request.CONTENT_TYPES[encoding])

    async def push(self, request: Request) -> Answer:
        """Push rows to every view fed by a push (or stream) source, online and/or offline."""
        with Audited("push") as audited:
            key = self.authenticate(request)
            audited.who = key.name if key else ANONYMOUS
            body = json_object(await request.body())
            source, to = text(body, "push_source_name"), text(body, "to", "online")
            audited.target = {"push_source": source, "to": to}
            views = push_request.views_fed_by(self.repository, source)
            audited.target["views"] = [view.name for view in views]
            if key is not None:
                key.require("push", audited.target["views"])
            rows = push_request.typed_columns(views, columns(body, "df"))
            written = await asyncio.to_thread(
                push_to_source,
                self.repository,
                source,
                rows,
                to,
                online_store=self.online_store,
                offline_store=self.offline_store,
            )
            audited.target["rows"] = max((result.rows for result in written.values()), default=0)
            results = {
                view: {"rows": done.rows, "online_replaced": done.online_replaced, "files": len(done.offline_files)}
                for view, done in written.items()
            }
            return Answer(200, orjson.dumps({"push_source_name": source, "to": to, "views": results}))

    async def materialize(self, request: Request) -> Answer:
        """Start Dagster runs materializing views over a range of days; answer 202 with their run IDs."""
        with Audited("materialize") as audited:
            key = self.authenticate(request)
            audited.who = key.name if key else ANONYMOUS
            body = json_object(await request.body())
            views = names(body, "feature_views") or sorted(self.repository.views)
            start = parse_day(body.get("start_ts"), "field 'start_ts'")
            end = parse_day(body.get("end_ts"), "field 'end_ts'")
            audited.target = {"views": views, "start": start.isoformat(), "end": end.isoformat()}
            if key is not None:
                key.require("materialize", views)
            runs = await asyncio.to_thread(
                launch_materialization, views, start, end, repository=self.repository, instance=self.instance()
            )
            audited.target["run_ids"] = [run.run_id for run in runs]
            audited.status = 202
            described = [{"run_id": run.run_id, "view": run.view, "partitions": list(run.partitions)} for run in runs]
            return Answer(202, orjson.dumps({"run_ids": audited.target["run_ids"], "runs": described}))

    def instance(self) -> DagsterInstance:
        """Return the Dagster instance runs are launched on (the one under DAGSTER_HOME unless one was given)."""
        if self._instance is None:
            self._instance = DagsterInstance.get()
        return self._instance

    async def health(self, request: Request) -> Answer:
        """Answer 200 when Redis answers PING, else 503 saying so."""
        try:
            await asyncio.to_thread(self.online_store.client.ping)
        except (redis.RedisError, OSError, OnlineStoreError) as error:
            self.metrics.online_store_errors.inc()
            raise HttpError(503, f"Redis does not answer PING ({error}); check that it is up and REDIS_URL") from None
        return Answer(200, b'{"status":"ok"}')

    async def render_metrics(self, request: Request) -> Answer:
        """Answer every metric in the Prometheus text format."""
        return Answer(200, await asyncio.to_thread(self.metrics.render), CONTENT_TYPE)

    async def list_views(self, request: Request) -> Answer:
        """Describe the views (those the caller's key is granted, when keys are configured)."""
        key = self.authenticate(request)
        views = [view for view in describe_views(self.repository) if key is None or key.may_use_view(view["name"])]
        return Answer(200, orjson.dumps({"views": views}))

    async def get_view(self, request: Request) -> Answer:
        """Describe one view, or 404 naming the known views."""
        key = self.authenticate(request)
        view = find_view(self.repository, request.params["name"])
        if key is not None and not key.may_use_view(view.name):
            raise HttpError(403, f"API key {key.name!r} is not granted view {view.name!r}")
        return Answer(200, orjson.dumps(describe_view(view)))


def build_app(
    online_store: RedisOnlineStore,
    repository: FeatureRepository,
    offline_store: OfflineStore,
    *,
    api_keys: ApiKeys | None = None,
    usage: UsageRecorder | None = None,
    usage_totals: Callable[[], Any] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_historical_rows: int = DEFAULT_MAX_HISTORICAL_ROWS,
    instance: DagsterInstance | None = None,
    audit_log: str | None = None,
) -> FeatureServer:
    """Return the HTTP feature server over the stores, as an ASGI app (Feast's `get_app(store)`).

    Args:
        online_store: the Redis store reads and pushes go to; it must resolve names in `repository`.
        repository: the views and services served.
        offline_store: where pushes append offline and historical reads join.
        api_keys: the keys callers must present (see `api_keys`); None: the server is open to every caller.
        usage: a recorder counting reads per feature, service and caller, started and closed with the app.
        usage_totals: a function returning the recorded totals, exposed on /metrics at scrape time.
        max_body_bytes: larger request bodies are refused with 413.
        max_historical_rows: larger entity frames are refused with 413.
        instance: the Dagster instance /materialize launches runs on (default: the one under DAGSTER_HOME).
        audit_log: a file audit lines are appended to as well (default: $FEATURE_STORE_AUDIT_LOG).
    """
    attach_audit_file(audit_log)
    return FeatureServer(
        online_store,
        repository,
        offline_store,
        api_keys=api_keys,
        usage=usage,
        metrics=ServerMetrics(usage_totals),
        max_body_bytes=max_body_bytes,
        max_historical_rows=max_historical_rows,
        instance=instance,
    )
