"""Prometheus metrics of one feature server app, in its own registry: requests, latency, entities, freshness, usage.

Under uvicorn workers (PROMETHEUS_MULTIPROC_DIR set before the workers start, as `serve` does) a scrape adds up the
request, latency, entity and error counts of every worker; freshness is that of the worker answering the scrape,
and usage counts come from Redis, shared by all.
"""

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from feature_assets.language.errors import FeatureStoreError

logger = logging.getLogger("feature_store.server")

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ENTITY_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class UsageTotals(Protocol):
    """Read counts kept by the usage recorder: per feature reference, per feature service and per caller."""

    features: Mapping[str, int]
    services: Mapping[str, int]
    callers: Mapping[str, int]


class _FreshnessCollector(Collector):
    """Yields, at scrape time, each view's age of the newest event time the server has answered with."""

    def __init__(self, newest: Mapping[str, float]) -> None:
        self.newest = newest

    def collect(self) -> Iterator[Metric]:
        """Return the age gauge, one sample per view seen so far."""
        gauge = GaugeMetricFamily(
            "feature_server_newest_value_age_seconds",
            "Seconds since the event time of the newest value of each view that a read returned",
            labels=["view"],
        )
        now = time.time()
        for view, newest in sorted(self.newest.items()):
            gauge.add_metric([view], now - newest)
        yield gauge


class _UsageCollector(Collector):
    """Yields, at scrape time, the read counts of the usage recorder (shared by every worker through Redis)."""

    def __init__(self, usage_totals: Callable[[], UsageTotals]) -> None:
        self.usage_totals = usage_totals

    def collect(self) -> Iterator[Metric]:
        """Return read counts per feature, per service and per caller (none while Redis is unreachable)."""
        try:
            totals = self.usage_totals()
        except (FeatureStoreError, redis.RedisError, OSError) as error:
            logger.warning("usage counts left out of /metrics: %s", error)
            return
        for name, label, counts in (
            ("feature_store_feature_reads", "feature", totals.features),
            ("feature_store_service_reads", "service", totals.services),
            ("feature_store_caller_reads", "caller", totals.callers),
        ):
            family = CounterMetricFamily(name, f"Entity rows read, per {label} (every server, flushed)", labels=[label])
            for value, count in sorted(counts.items()):
                family.add_metric([value], count)
            yield family


class ServerMetrics:
    """The app's metrics: per endpoint and status a request counter and latency histogram, and read statistics."""

    def __init__(self, usage_totals: Callable[[], UsageTotals] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "feature_server_requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "feature_server_request_duration_seconds",
            "Seconds from the request's arrival to its answer",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.entities = Histogram(
            "feature_server_entities_per_request",
            "Entity rows per online read",
            buckets=ENTITY_BUCKETS,
            registry=self.registry,
        )
        self.online_store_errors = Counter(
            "feature_server_online_store_errors", "Online store reads or writes that failed", registry=self.registry
        )
        self.newest: dict[str, float] = {}
        self.scrape_time_collectors: list[Collector] = [_FreshnessCollector(self.newest)]
        if usage_totals is not None:
            self.scrape_time_collectors.append(_UsageCollector(usage_totals))
        for collector in self.scrape_time_collectors:
            self.registry.register(collector)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        children = self._children.get((endpoint, status))
        if children is None:
            label = str(status)
            children = (self.requests.labels(endpoint, label), self.latency.labels(endpoint, label))
            self._children[endpoint, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def saw_event_time(self, view: str, epoch_seconds: float) -> None:
        """Remember the newest event time answered for `view`."""
        if epoch_seconds > self.newest.get(view, 0.0):
            self.newest[view] = epoch_seconds

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format (summed over workers in multiprocess mode)."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)
        for collector in self.scrape_time_collectors:
            registry.register(collector)
        return generate_latest(registry)
