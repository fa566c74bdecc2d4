"""Benchmark: online reads and publishing through RedisOnlineStore vs raw redis-py floors in the same run.

Loads N entities into two views of 10 features each, then times `get_online_features` for 1, 100 and 1000
entities (10 features, 5 from each view) against the floor, a raw redis-py pipeline of the same HMGETs. Then
publishes 1M entity rows: through the view's online asset (two days materialized by Dagster: the first into an
empty store, the next over it), with `write_batch` of an in-memory frame (newer-wins script on), and as floors a
raw redis-py pipeline of HSETs of the same encoded rows and the same HSET + PEXPIREAT commands prepacked as RESP
(the same writes without the guard and without a Python object per row), each with the Redis CPU time it took per
row; each publish runs `--repeats` times and the median is reported. Uses REDIS_URL when set, else starts the
embedded redis-server. Prints a table, then one JSON line.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource  # noqa: E402
from resources.embedded_redis import shared_server  # noqa: E402
from resources.online_encoding import packed_row_expr, redis_key_expr, resp_bulk_expr, values_field  # noqa: E402
from resources.online_store import RedisOnlineStore  # noqa: E402

FEATURES_PER_VIEW = 10
READ_SIZES = {1: 3000, 100: 300, 1000: 60}

rider = Entity("rider", ["rider_id"])
source = ParquetSource("bench_events", "bench/events/*.parquet", timestamp_field="event_timestamp")


def _schema(prefix: str) -> list[Field]:
    dtypes = [pl.Int64, pl.Float64, pl.String, pl.Boolean, pl.Int32]
    return [Field(f"{prefix}_{index}", dtypes[index % len(dtypes)]) for index in range(FEATURES_PER_VIEW)]


rider_activity = FeatureView("rider_activity", entities=[rider], source=source, ttl="30d", schema=_schema("act"))
rider_profile = FeatureView("rider_profile", entities=[rider], source=source, ttl="30d", schema=_schema("prof"))
publish_target = FeatureView("publish_target", entities=[rider], source=source, ttl="30d", schema=_schema("pub"))
repository = FeatureRepository([rider_activity, rider_profile, publish_target])
REQUESTED = [f"rider_activity:act_{i}" for i in range(5)] + [f"rider_profile:prof_{i}" for i in range(5)]


def offline_rows(view: FeatureView, entities: int, seed: int) -> pl.DataFrame:
    """Return one offline row per entity with random values of the view's dtypes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    columns: dict[str, object] = {
        "rider_id": pl.int_range(entities, eager=True),
        "event_timestamp": [now - timedelta(minutes=rng.randrange(600)) for _ in range(1000)] * (entities // 1000),
        "created_timestamp": [now] * entities,
    }
    for f in view.schema:
        if f.dtype == pl.String:
            columns[f.name] = [f"city_{rng.randrange(500)}" for _ in range(1000)] * (entities // 1000)
        elif f.dtype == pl.Boolean:
            columns[f.name] = [rng.random() < 0.5 for _ in range(1000)] * (entities // 1000)
        elif f.dtype.is_float():
            columns[f.name] = [rng.random() * 100 for _ in range(1000)] * (entities // 1000)
        else:
            columns[f.name] = [rng.randrange(10_000) for _ in range(1000)] * (entities // 1000)
    return pl.DataFrame(columns, schema=view.output_schema)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """Return p50, p95 and p99 of latencies in milliseconds."""
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "mean": statistics.fmean(ordered)}


def time_calls(call, batches: list) -> list[float]:
    """Return the latency in ms of `call(batch)` for each batch, after a short warm-up."""
    for batch in batches[:20]:
        call(batch)
    samples = []
    for batch in batches:
        started = time.perf_counter()
        call(batch)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def floor_reader(client: redis.Redis):
    """Return a function reading the same HMGETs as the store with a plain redis-py pipeline."""
    fields = {view.name: [values_field(view)] for view in (rider_activity, rider_profile)}

    def read(entity_rows: list[dict]) -> list:
        pipeline = client.pipeline(transaction=False)
        for view, names in fields.items():
            for row in entity_rows:
                pipeline.hmget(f"fs:{{i:{row['rider_id']}}}:{view}:v1", names)
        return pipeline.execute()

    return read


def redis_cpu_seconds(client: redis.Redis) -> float:
    """Return the CPU seconds the Redis server has used so far."""
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def encoded_rows(frame: pl.DataFrame, view: FeatureView) -> pl.DataFrame:
    """Return the rows as the store writes them: Redis key, expire-at in ms and the packed field value."""
    ttl_ms = view.ttl // timedelta(milliseconds=1)
    return frame.with_columns(
        _ts=pl.col("event_timestamp").dt.epoch("us"), _ct=pl.col("created_timestamp").dt.epoch("us")
    ).select(
        redis_key_expr("fs", view).alias("key"),
        (pl.col("_ts") // 1000 + ttl_ms).cast(pl.String).alias("expire_at"),
        packed_row_expr(view, "_ts", "_ct").alias("value"),
    )


def floor_publish(client: redis.Redis, frame: pl.DataFrame, view: FeatureView) -> None:
    """Write the encoded rows with a raw redis-py pipeline of HSETs (no guard, no expiry)."""
    field = values_field(view)
    for part in encoded_rows(frame, view).iter_slices(10_000):
        pipeline = client.pipeline(transaction=False)
        for key, _, value in part.iter_rows():
            pipeline.execute_command("HSET", key, field, value)
        pipeline.execute()


def server_floor_publish(client: redis.Redis, frame: pl.DataFrame, view: FeatureView) -> None:
    """Write the encoded rows as HSET + PEXPIREAT commands prepacked as RESP on one connection.

    No guard and no Python object per row: Polars frames the commands and a thread counts the one-line replies.
    """
    field = values_field(view)
    command = pl.concat_str(
        pl.lit("*4\r\n$4\r\nHSET\r\n"),
        resp_bulk_expr("key"),
        pl.lit(f"${len(field)}\r\n{field}\r\n"),
        resp_bulk_expr("value"),
        pl.lit("*3\r\n$9\r\nPEXPIREAT\r\n"),
        resp_bulk_expr("key", "expire_at"),
    )
    connection = client.connection_pool.get_connection()
    replies_expected = 2 * frame.height

    def count_replies() -> None:
        seen = 0
        while seen < replies_expected:
            seen += connection._sock.recv(1 << 20).count(b"\n")

    reader = threading.Thread(target=count_replies)
    reader.start()
    for part in encoded_rows(frame, view).iter_slices(8192):
        connection._sock.sendall(part.select(command.str.join("")).item().encode())
    reader.join()
    connection.disconnect()
    client.connection_pool.release(connection)


@dataclass(frozen=True)
class Timing:
    """One timed publish: wall seconds, the Redis server's CPU seconds, and the Dagster run's seconds if any."""

    seconds: float
    redis_cpu: float
    run_seconds: float = 0.0


def median_timing(timings: list[Timing]) -> Timing:
    """Return the timing with the median wall seconds."""
    return sorted(timings, key=lambda timing: timing.seconds)[len(timings) // 2]


def publish_through_asset(url: str, rows: int, repeats: int) -> dict[str, Timing]:
    """Materialize two days of `publish_target` with Dagster, then publish each day with its online asset.

    The first day goes into an empty store (every key is new); the next day carries newer values of the same
    entities, the steady state of a daily view. Returns for each the median of `repeats` publishes: the asset's
    own seconds (read the partition, keep the newest row per entity, write), Redis CPU seconds and run seconds.
    """
    import dagster as dg

    from feature_assets.demo.main import QUIET_RUN
    from feature_assets.orchestration.online_assets import build_online_asset
    from feature_assets.orchestration.view_assets import build_view_asset
    from resources.offline_store import OfflineStore

    today = datetime.now(UTC).date()
    days = {"asset_first_day": today - timedelta(days=2), "asset_next_day": today - timedelta(days=1)}
    timings: dict[str, list[Timing]] = {name: [] for name in days}
    with tempfile.TemporaryDirectory() as root:
        for seed, day in enumerate(days.values()):
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            events = offline_rows(publish_target, rows, 100 + seed).with_columns(
                event_timestamp=pl.lit(start) + pl.duration(seconds=pl.int_range(pl.len()) % 86_000)
            )
            events.write_parquet(Path(root) / "bench" / "events" / f"{day}.parquet", mkdir=True)
        instance = dg.DagsterInstance.ephemeral()
        resources = {
            "offline_store": OfflineStore(root=root),
            "online_store": RedisOnlineStore(url=url, repository="__main__:repository"),
        }
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        view_asset, online_asset = build_view_asset(publish_target), build_online_asset(publish_target)
        for day in days.values():
            computed = dg.materialize(
                [view_asset], instance=instance, resources=resources, partition_key=str(day), run_config=QUIET_RUN
            )
            assert computed.success
        client = redis.Redis.from_url(url)
        for _ in range(repeats):
            client.flushdb()
            for name, day in days.items():
                cpu_before, started = redis_cpu_seconds(client), time.perf_counter()
                published = dg.materialize(
                    [online_asset], instance=instance, resources=resources, partition_key=str(day), run_config=QUIET_RUN
                )
                run_seconds, redis_cpu = time.perf_counter() - started, redis_cpu_seconds(client) - cpu_before
                assert published.success
                metadata = published.asset_materializations_for_node(online_asset.op.name)[0].metadata
                timings[name].append(Timing(metadata["seconds"].value, redis_cpu, run_seconds))
    return {name: median_timing(runs) for name, runs in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000, help="entities loaded per view (multiple of 1000)")
    parser.add_argument("--publish-rows", type=int, default=1_000_000, help="rows of the publish frame")
    parser.add_argument("--repeats", type=int, default=3, help="publishes of each kind; the median is reported")
    arguments = parser.parse_args()
    entities = max(1000, arguments.entities // 1000 * 1000)
    publish_rows = max(1000, arguments.publish_rows // 1000 * 1000)

    url = os.environ.get("REDIS_URL") or shared_server().url
    client = redis.Redis.from_url(url)
    client.flushdb()
    store = RedisOnlineStore(url=url, repository="__main__:repository")
    for seed, view in enumerate((rider_activity, rider_profile)):
        store.write_batch(view, offline_rows(view, entities, seed))

    rng = random.Random(7)
    results: dict[str, dict[str, float]] = {}
    floor_read = floor_reader(client)
    for size, calls in READ_SIZES.items():
        batches = [[{"rider_id": rng.randrange(entities)} for _ in range(size)] for _ in range(calls)]
        read = lambda rows: store.get_online_features(REQUESTED, rows)  # noqa: E731
        results[f"store_{size}"] = percentiles(time_calls(read, batches))
        results[f"floor_{size}"] = percentiles(time_calls(floor_read, batches))

    frame = offline_rows(publish_target, publish_rows, 99)
    writers = {
        "write_batch": lambda: store.write_batch(publish_target, frame),
        "floor": lambda: floor_publish(client, frame, publish_target),
        "server_floor": lambda: server_floor_publish(client, frame, publish_target),
    }
    runs: dict[str, list[Timing]] = {name: [] for name in writers}
    for _ in range(arguments.repeats):
        for name, write in writers.items():
            client.flushdb()
            cpu_before, started = redis_cpu_seconds(client), time.perf_counter()
            write()
            runs[name].append(Timing(time.perf_counter() - started, redis_cpu_seconds(client) - cpu_before))
    timings = {name: median_timing(timing) for name, timing in runs.items()}
    timings |= publish_through_asset(url, publish_rows, arguments.repeats)
    client.flushdb()
    rate = {name: publish_rows / timing.seconds for name, timing in timings.items()}
    cpu_us = {name: timing.redis_cpu * 1e6 / publish_rows for name, timing in timings.items()}
    version = client.info("server")["redis_version"]

    print(f"online store benchmark: {entities} entities x 2 views x {FEATURES_PER_VIEW} features, redis at {url}")
    print(f"{'read (10 features, 2 views)':<30}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'calls/s':>12}")
    for size in READ_SIZES:
        for side in ("store", "floor"):
            figures = results[f"{side}_{size}"]
            label = f"{side} {size} entit{'y' if size == 1 else 'ies'}"
            print(
                f"{label:<30}{figures['p50']:>10.3f}{figures['p95']:>10.3f}{figures['p99']:>10.3f}"
                f"{1000 / figures['mean']:>12.0f}"
            )
    print(f"{'publish ' + str(publish_rows) + ' entity rows':<44}{'seconds':>10}{'rows/s':>12}{'redis us/row':>14}")
    labels = {
        "asset_first_day": "online asset, first day into an empty store",
        "asset_next_day": "online asset, next day over the first",
        "write_batch": "write_batch of an in-memory frame",
        "floor": "floor: redis-py pipelined HSET (no guard/ttl)",
        "server_floor": "floor: prepacked HSET+PEXPIREAT (no guard)",
    }
    for name, label in labels.items():
        print(f"{label:<44}{timings[name].seconds:>10.2f}{rate[name]:>12,.0f}{cpu_us[name]:>14.2f}")
    run_seconds = f"{timings['asset_first_day'].run_seconds:.2f} s and {timings['asset_next_day'].run_seconds:.2f} s"
    print(f"redis {version}; medians of {arguments.repeats} runs; the online asset's Dagster runs took {run_seconds}")
    print(
        json.dumps(
            {
                "entities": entities,
                "p50_1_entity_ms": round(results["store_1"]["p50"], 4),
                "p95_1_entity_ms": round(results["store_1"]["p95"], 4),
                "p99_1_entity_ms": round(results["store_1"]["p99"], 4),
                "p50_100_entities_ms": round(results["store_100"]["p50"], 4),
                "p99_100_entities_ms": round(results["store_100"]["p99"], 4),
                "p50_1000_entities_ms": round(results["store_1000"]["p50"], 4),
                "p99_1000_entities_ms": round(results["store_1000"]["p99"], 4),
                "floor_p99_1_entity_ms": round(results["floor_1"]["p99"], 4),
                "floor_p50_100_entities_ms": round(results["floor_100"]["p50"], 4),
                "floor_p50_1000_entities_ms": round(results["floor_1000"]["p50"], 4),
                "calls_per_s_1_entity": round(1000 / results["store_1"]["mean"]),
                "redis_version": version,
                "publish_rows": publish_rows,
                "publish_rows_per_s": round(rate["asset_first_day"]),
                "republish_rows_per_s": round(rate["asset_next_day"]),
                "write_batch_rows_per_s": round(rate["write_batch"]),
                "floor_publish_rows_per_s": round(rate["floor"]),
                "server_floor_publish_rows_per_s": round(rate["server_floor"]),
                "publish_redis_cpu_us_per_row": round(cpu_us["asset_first_day"], 2),
                "republish_redis_cpu_us_per_row": round(cpu_us["asset_next_day"], 2),
                "server_floor_redis_cpu_us_per_row": round(cpu_us["server_floor"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
