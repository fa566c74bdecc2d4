"""Benchmark: the stream worker against a floor of the same Redis Streams traffic, in the same run.

1. Throughput. N events (1,000 drivers, event times in the last 50 minutes) are appended to the streaming view's
   partition streams; one worker (`StreamWorker.poll` in this process, with the collector's start-up objects frozen
   as in the worker process) applies them all: events/s, and the Redis CPU per event. The floor reads the same
   prefilled streams with the same XREADGROUP calls and acknowledges each batch with XACK, applying nothing.
   Three more floors split the worker's extra work: the floor plus the worker's own fold of each batch (no
   writes), plus a plain-Polars group-by computing the same partials (no writes), and plus raw redis-py HSETs of a
   fixed 72-byte record into every (driver, minute) cell a batch touches, pipelined (no fold, no reads, no merge).
   A last row bounds any redesign of the apply step: the same worker with a script that only acknowledges and
   writes each folded record over its tile bucket (no tile reads, no merge, no pending check; wrong values).
   Median of `--repeats` runs each.
2. Freshness. A worker process (`python -m feature_assets.streaming.worker`) runs while this process appends events
   at 1,000 and 5,000 events/s (pipelined XADD, as producers do) and, 100 times a second, pushes one event of a new
   driver with `push(view, rows, to="online")` and reads that driver with `get_online_features` until it is present:
   push→readable latency percentiles. A probe reads every 0.1 ms until the value is there, so the reader does not
   take a core from the worker.
3. Memory. 1,000 drivers with an event in each of the last 60 one-minute buckets (the longest window, 1 hour):
   MEMORY USAGE of the tile hashes per entity.

Starts a private redis-server. Prints a table, then one JSON line.
"""

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stream_floors import blind_write_script, cell_writes, polars_fold  # noqa: E402
from feature_assets import Aggregation, Entity, FeatureRepository, FeatureView, ParquetSource, StreamSource  # noqa: E402
from feature_assets.streaming.push import push  # noqa: E402
from feature_assets.streaming.worker import StreamWorker  # noqa: E402
from resources.embedded_redis import RedisServer  # noqa: E402
from resources.online_store import RedisOnlineStore  # noqa: E402
from resources.stream_batches import StreamSpec, fold_entries  # noqa: E402
from resources.stream_keys import GROUP, partition_of, stream_entries, stream_keys  # noqa: E402
from resources.stream_progress import partition_state  # noqa: E402

driver = Entity("driver", ["driver_id"])
trip_stream = StreamSource(
    "bench_trip_stream",
    batch_source=ParquetSource("bench_trip_history", "bench/trips/*.parquet", timestamp_field="event_timestamp"),
    partitions=4,
)
driver_trips_now = FeatureView(
    "driver_trips_now",
    entities=[driver],
    source=trip_stream,
    aggregations=[
        Aggregation("trip", "count", "10m", name="trips_10m"),
        Aggregation("trip", "count", "1h", name="trips_1h"),
        Aggregation("fare", "sum", "1h"),
        Aggregation("fare", "mean", "1h"),
        Aggregation("fare", "max", "10m"),
        Aggregation("fare", "last", "1h"),
    ],
    step="1m",
)
repository = FeatureRepository([driver_trips_now])
DRIVERS = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PROBES_PER_S = 100
Run = tuple[float, float]  # seconds, Redis CPU seconds
PROBE_PAUSE_S = 0.0001  # between reads of a probe, so the reader does not take a whole core from the worker


def events(count: int, now: datetime, seed: int) -> pl.DataFrame:
    """Return `count` events of 1,000 drivers in the 50 minutes before `now`, each arriving 0-2 s after it happened."""
    rng = random.Random(seed)
    times = sorted(now - timedelta(microseconds=rng.randrange(3000 * 10**6)) for _ in range(count))
    return pl.DataFrame(
        {
            "driver_id": [rng.randrange(DRIVERS) for _ in range(count)],
            "event_timestamp": times,
            "created_timestamp": [t + timedelta(microseconds=rng.randrange(2 * 10**6)) for t in times],
            "fare": [rng.randrange(400) / 4 for _ in range(count)],
            "trip": [f"t{i}" for i in range(count)],
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC"), "created_timestamp": pl.Datetime("us", "UTC")},
    )


def prefill(store: RedisOnlineStore, frame: pl.DataFrame) -> None:
    """Reset the streams and append `frame` to them, with each partition's group created at the start."""
    store.client.flushall()
    StreamWorker([driver_trips_now], store.client).create_groups()
    for part in frame.iter_slices(50_000):
        store.append_events(driver_trips_now, part)


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run_worker(store: RedisOnlineStore, total: int, batch: int, script: str | None = None) -> Run:
    """Apply every prefilled event with one StreamWorker (running `script` instead of the apply script if given)."""
    worker = StreamWorker([driver_trips_now], store.client, batch_size=batch, consumer="bench")
    if script is not None:
        worker.scripts = {driver_trips_now.name: store.client.register_script(script)}
    cpu, started = redis_cpu(store.client), time.perf_counter()
    while worker.totals.applied + worker.totals.late + worker.totals.expired < total:
        worker.poll()
    return time.perf_counter() - started, redis_cpu(store.client) - cpu


def run_floor(client: redis.Redis, total: int, batch: int, work: Callable[[list], object] | None = None) -> Run:
    """Read the prefilled streams with XREADGROUP and XACK each batch, applying nothing.

    `work`, when given, is called with each partition's entries before its XACK (the extra floors).
    """
    client.set_response_callback("XREADGROUP", lambda response, **_: response)
    streams = {stream_keys("fs", driver_trips_now, p).stream: ">" for p in range(4)}
    done = 0
    cpu, started = redis_cpu(client), time.perf_counter()
    while done < total:
        reply = client.xreadgroup(GROUP, "floor", streams, count=batch, block=5) or {}
        for stream, entries in reply.items() if isinstance(reply, dict) else reply:
            if work is not None:
                work(entries)
            ids = [entry[0] for entry in entries]
            done += client.xack(stream, GROUP, *ids)
    return time.perf_counter() - started, redis_cpu(client) - cpu


def throughput(store: RedisOnlineStore, total: int, batch: int, repeats: int) -> dict[str, float]:
    frame = events(total, datetime.now(UTC), 1)
    spec = StreamSpec.of(driver_trips_now)
    client = redis.Redis.from_url(store.url)
    kinds: dict[str, Callable[[], Run]] = {
        "worker": lambda: run_worker(store, total, batch),
        "floor": lambda: run_floor(client, total, batch),
        "fold_floor": lambda: run_floor(client, total, batch, lambda entries: fold_entries(spec, entries)),
        "polars_floor": lambda: run_floor(client, total, batch, polars_fold),
        "write_floor": lambda: run_floor(client, total, batch, cell_writes(client)),
        "blind_write": lambda: run_worker(store, total, batch, blind_write_script(driver_trips_now)),
    }
    runs: dict[str, list[Run]] = {name: [] for name in kinds}
    for _ in range(repeats):
        for name, run in kinds.items():
            prefill(store, frame)
            runs[name].append(run())
    figures = {}
    for name, timings in runs.items():
        seconds = statistics.median(t[0] for t in timings)
        cpu = statistics.median(t[1] for t in timings)
        figures[f"{name}_events_per_s"] = total / seconds
        figures[f"{name}_redis_us_per_event"] = cpu * 1e6 / total
    return figures


def freshness(store: RedisOnlineStore, url: str, rate: int, seconds: float) -> dict[str, list[float]]:
    """Append events at `rate` per second for `seconds` while probing; return push→readable and XADD→readable ms.

    Probes alternate between `push()` (validation, then XADD) and a raw XADD of the encoded entry.
    """
    store.client.flushall()
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "feature_assets.streaming.worker", "--repository", "bench.streaming:repository"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        probe(store, 999_999)
        rng = random.Random(rate)
        latencies: dict[str, list[float]] = {"push": [], "xadd": []}
        started = time.perf_counter()
        sent, probes = 0, 0
        pipeline = store.client.pipeline(transaction=False)
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate) - sent
            if due > 0:
                now = datetime.now(UTC)
                frame = pl.DataFrame(
                    {
                        "driver_id": [rng.randrange(DRIVERS) for _ in range(due)],
                        "event_timestamp": [now] * due,
                        "created_timestamp": [now] * due,
                        "fare": [rng.randrange(400) / 4 for _ in range(due)],
                        "trip": ["t"] * due,
                    }
                )
                for partition, fields in stream_entries(driver_trips_now, frame):
                    pipeline.xadd(stream_keys("fs", driver_trips_now, partition).stream, fields)
                pipeline.execute()
                sent += due
            if int(elapsed * PROBES_PER_S) > probes:
                probes += 1
                kind = "push" if probes % 2 else "xadd"
                latencies[kind].append(probe(store, 1_000_000 + probes, raw=kind == "xadd"))
            else:
                time.sleep(0.0002)
        return latencies
    finally:
        worker.terminate()
        worker.wait(10)


def probe(store: RedisOnlineStore, driver_id: int, raw: bool = False) -> float:
    """Push one event of a new driver (or XADD it) and read it until present; return the milliseconds in between.

    The first probe of a run also waits for the worker process to start.
    """
    started = time.perf_counter()
    now = datetime.now(UTC)
    if raw:
        fields = {
            "k": f"i:{driver_id}",
            "t": str((now - EPOCH) // timedelta(microseconds=1)),
            "fare": "1.0",
            "trip": "p",
        }
        stream = stream_keys("fs", driver_trips_now, partition_of(fields["k"], 4)).stream
        store.client.xadd(stream, fields)
    else:
        row = {"driver_id": [driver_id], "event_timestamp": [now], "fare": [1.0], "trip": ["p"]}
        push(driver_trips_now, row, to="online", online_store=store)
    while store.get_online_features(["driver_trips_now:trips_10m"], [{"driver_id": driver_id}]).to_dict()[
        "trips_10m"
    ] != [1]:
        time.sleep(PROBE_PAUSE_S)
    return (time.perf_counter() - started) * 1000


def memory_per_entity(store: RedisOnlineStore) -> tuple[float, int]:
    """Return the mean MEMORY USAGE of a driver's tiles, and its field count, with every bucket of the hour filled."""
    now = datetime.now(UTC)
    store.client.flushall()
    worker = StreamWorker([driver_trips_now], store.client)
    worker.create_groups()
    frame = pl.DataFrame(
        {
            "driver_id": [d for d in range(DRIVERS) for _ in range(60)],
            "event_timestamp": [now - timedelta(minutes=m) for _ in range(DRIVERS) for m in range(60)],
            "created_timestamp": [now - timedelta(minutes=m) for _ in range(DRIVERS) for m in range(60)],
            "fare": [12.25] * (DRIVERS * 60),
            "trip": ["t"] * (DRIVERS * 60),
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC"), "created_timestamp": pl.Datetime("us", "UTC")},
    )
    store.append_events(driver_trips_now, frame)
    while worker.poll():
        pass
    keys = list(store.client.scan_iter(match="fs:{driver_trips_now:*}:t:*", count=1000))
    sizes = [store.client.memory_usage(key, samples=0) for key in keys]
    return statistics.mean(sizes), store.client.hlen(keys[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events applied in the throughput run")
    parser.add_argument("--batch", type=int, default=1000, help="entries per XREADGROUP (per stream)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs of each kind; medians reported")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each freshness run")
    arguments = parser.parse_args()

    server = RedisServer().start()
    try:
        store = RedisOnlineStore(url=server.url, repository="bench.streaming:repository")
        version = store.client.info("server")["redis_version"]
        gc.freeze()  # as the worker process does after start-up; the floor's loop runs under the same setting
        rates = throughput(store, arguments.events, arguments.batch, arguments.repeats)
        latencies = {rate: freshness(store, server.url, rate, arguments.seconds) for rate in (1000, 5000)}
        lag = partition_state(store.client, "fs", driver_trips_now)
        size, fields = memory_per_entity(store)
    finally:
        server.stop()

    ratio = rates["worker_events_per_s"] / rates["floor_events_per_s"]
    print(f"stream worker benchmark: {arguments.events} events, 1,000 drivers, 4 partitions, batch {arguments.batch}")
    print(f"{'throughput (one process)':<48}{'events/s':>12}{'redis us/event':>16}")
    for name, label in (
        ("worker", "worker: XREADGROUP + Lua apply (tiles, XACK)"),
        ("floor", "floor: XREADGROUP + XACK"),
        ("fold_floor", "floor + the worker's fold (no tile writes)"),
        ("polars_floor", "floor + plain Polars group-by (no tile writes)"),
        ("write_floor", "floor + raw HSET of touched cells (no fold)"),
        ("blind_write", "worker, blind write: no reads, merge, check"),
    ):
        print(f"{label:<48}{rates[f'{name}_events_per_s']:>12,.0f}{rates[f'{name}_redis_us_per_event']:>16.2f}")
    print(f"{'-> readable (worker process)':<48}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'probes':>8}")
    for rate, kinds in latencies.items():
        for kind, values in kinds.items():
            label = f"{'push()' if kind == 'push' else 'raw XADD (floor)'} at {rate:,} events/s"
            row = f"{percentile(values, 0.5):>10.2f}{percentile(values, 0.99):>10.2f}{max(values):>10.2f}"
            print(f"{label:<48}{row}{len(values):>8}")
    print(f"tiles per driver (1 h window, 1 min step, 60 buckets): {size:,.0f} bytes, {fields} hash fields")
    print(f"pending after the freshness runs: {sum(int(s['pending'] or 0) for s in lag)}; redis {version}")
    print(
        json.dumps(
            {
                "events_per_s": round(rates["worker_events_per_s"]),
                "floor_events_per_s": round(rates["floor_events_per_s"]),
                "ratio_to_floor": round(ratio, 3),
                "redis_us_per_event": round(rates["worker_redis_us_per_event"], 2),
                "floor_redis_us_per_event": round(rates["floor_redis_us_per_event"], 2),
                **{
                    f"{name}_events_per_s": round(rates[f"{name}_events_per_s"])
                    for name in ("fold_floor", "polars_floor", "write_floor", "blind_write")
                },
                "push_to_readable_p50_ms_1000": round(percentile(latencies[1000]["push"], 0.5), 3),
                "push_to_readable_p99_ms_1000": round(percentile(latencies[1000]["push"], 0.99), 3),
                "push_to_readable_p50_ms_5000": round(percentile(latencies[5000]["push"], 0.5), 3),
                "push_to_readable_p99_ms_5000": round(percentile(latencies[5000]["push"], 0.99), 3),
                "xadd_to_readable_p50_ms_1000": round(percentile(latencies[1000]["xadd"], 0.5), 3),
                "xadd_to_readable_p99_ms_1000": round(percentile(latencies[1000]["xadd"], 0.99), 3),
                "xadd_to_readable_p99_ms_5000": round(percentile(latencies[5000]["xadd"], 0.99), 3),
                "bytes_per_entity": round(size),
                "tile_fields_per_entity": fields,
                "redis_version": version,
            }
        )
    )


if __name__ == "__main__":
    main()
