"""Benchmark: get_historical_features against one hand-written DuckDB ASOF query over the same Parquet.

Generates an hourly view (10k drivers x 1000 hours = 10M rows, ttl 2d) and a daily view (25k customers x 40 days
= 1M rows, no ttl) as offline-store partitions in a temp dir, and entity frames of 100k and 1M rows. Each case
runs in fresh processes, interleaved with the other cases; the best wall and CPU time of all its calls and the
largest peak RSS of its processes are reported. The floor is one SQL statement with the same answer (ASOF on
(event, created), ttl, input order); `bare` is the plain ASOF on event time alone, which can pick the wrong row
on ties. Prints a table, then one JSON line.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = datetime(2025, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
DRIVER_FEATURES = ["driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_hourly:trips"]
CUSTOMER_FEATURES = ["customer_daily:lifetime_orders", "customer_daily:segment"]

MODES = ("ours", "floor", "bare")
T = TypeVar("T")

FLOOR_SQL = """
SELECT e.* EXCLUDE (rn),
       CASE WHEN d.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY THEN d.conv_rate END AS conv_rate,
       CASE WHEN d.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY THEN d.acc_rate END AS acc_rate,
       CASE WHEN d.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY THEN d.trips END AS trips,
       c.lifetime_orders, c.segment
FROM (SELECT *, (epoch_us(event_timestamp)::HUGEINT + 1) << 64 AS o FROM entities) e
ASOF LEFT JOIN (
    SELECT driver_id, event_timestamp, conv_rate, acc_rate, trips,
           (epoch_us(event_timestamp)::HUGEINT << 64) + epoch_us(created_timestamp) + 9223372036854775808 AS o
    FROM read_parquet($driver_files)) d
  ON e.driver_id = d.driver_id AND e.o > d.o
ASOF LEFT JOIN (
    SELECT customer_id, lifetime_orders, segment,
           (epoch_us(event_timestamp)::HUGEINT << 64) + epoch_us(created_timestamp) + 9223372036854775808 AS o
    FROM read_parquet($customer_files)) c
  ON e.customer_id = c.customer_id AND e.o > c.o
ORDER BY e.rn
"""

BARE_SQL = """
SELECT e.* EXCLUDE (rn),
       CASE WHEN d.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY THEN d.conv_rate END AS conv_rate,
       CASE WHEN d.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY THEN d.acc_rate END AS acc_rate,
       CASE WHEN d.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY THEN d.trips END AS trips,
       c.lifetime_orders, c.segment
FROM entities e
ASOF LEFT JOIN read_parquet($driver_files) d
  ON e.driver_id = d.driver_id AND e.event_timestamp >= d.event_timestamp
ASOF LEFT JOIN read_parquet($customer_files) c
  ON e.customer_id = c.customer_id AND e.event_timestamp >= c.event_timestamp
ORDER BY e.rn
"""


def repository_and_views():
    import polars as pl

    from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource

    source = ParquetSource("bench_events", "raw/bench/*.parquet", "ts")
    driver_hourly = FeatureView(
        "driver_hourly",
        entities=[Entity("driver", ["driver_id"])],
        source=source,
        ttl="2d",
        schema=[Field("conv_rate", pl.Float64), Field("acc_rate", pl.Float32), Field("trips", pl.Int64)],
    )
    customer_daily = FeatureView(
        "customer_daily",
        entities=[Entity("customer", ["customer_id"])],
        source=source,
        schema=[Field("lifetime_orders", pl.Int64), Field("segment", pl.String)],
    )
    return FeatureRepository([driver_hourly, customer_daily]), driver_hourly, customer_daily


def generate(root: Path, drivers: int, hours: int, customers: int, days: int, sizes: list[int]) -> None:
    """Write both views as daily partitions and one entity frame per size."""
    import numpy as np
    import polars as pl

    from resources.offline_store import OfflineStore

    _, driver_hourly, customer_daily = repository_and_views()
    store = OfflineStore(root=str(root / "store"))
    rng = np.random.default_rng(7)
    start_us = int(START.timestamp()) * 1_000_000
    for day in range((hours + 23) // 24):
        first, last = day * 24, min(hours, day * 24 + 24)
        count = (last - first) * drivers
        event = start_us + np.repeat(np.arange(first, last, dtype=np.int64), drivers) * HOUR_US
        frame = pl.DataFrame(
            {
                "driver_id": np.tile(np.arange(drivers, dtype=np.int64), last - first),
                "event_timestamp": event,
                "created_timestamp": event + rng.integers(0, 600_000_000, count),
                "conv_rate": rng.random(count),
                "acc_rate": rng.random(count, dtype=np.float32),
                "trips": rng.integers(0, 50, count),
            }
        ).with_columns(pl.col("event_timestamp", "created_timestamp").cast(pl.Datetime("us", "UTC")))
        store.write_partition(driver_hourly, (START + timedelta(days=day)).date(), frame)
    segments = pl.Series(["bronze", "silver", "gold"])
    for day in range(days):
        event = start_us + day * 24 * HOUR_US + rng.integers(0, 24 * HOUR_US, customers)
        frame = pl.DataFrame(
            {
                "customer_id": np.arange(customers, dtype=np.int64),
                "event_timestamp": event,
                "created_timestamp": event + 60_000_000,
                "lifetime_orders": rng.integers(0, 1000, customers),
                "segment": segments.gather(rng.integers(0, 3, customers)),
            }
        ).with_columns(pl.col("event_timestamp", "created_timestamp").cast(pl.Datetime("us", "UTC")))
        store.write_partition(customer_daily, (START + timedelta(days=day)).date(), frame)
    for size in sizes:
        pl.DataFrame(
            {
                "driver_id": rng.integers(0, drivers, size),
                "customer_id": rng.integers(0, customers, size),
                "event_timestamp": start_us + rng.integers(0, hours * HOUR_US, size),
                "label": rng.random(size),
            }
        ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(
            root / f"entities_{size}.parquet"
        )


def run_ours(root: Path, size: int):
    import polars as pl

    from feature_assets.retrieval.point_in_time import get_historical_features
    from resources.offline_store import OfflineStore

    repository, _, _ = repository_and_views()
    store = OfflineStore(root=str(root / "store"))
    entities = pl.read_parquet(root / f"entities_{size}.parquet")

    def call() -> pl.DataFrame:
        return get_historical_features(
            entities, DRIVER_FEATURES + CUSTOMER_FEATURES, repository=repository, offline_store=store
        )

    return call


def run_sql(root: Path, size: int, sql: str):
    import duckdb
    import polars as pl

    from resources.offline_store import OfflineStore

    _, driver_hourly, customer_daily = repository_and_views()
    store = OfflineStore(root=str(root / "store"))
    params = {
        "driver_files": store.partition_files(driver_hourly),
        "customer_files": store.partition_files(customer_daily),
    }
    entities = pl.read_parquet(root / f"entities_{size}.parquet")

    def call() -> pl.DataFrame:
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("entities", entities.with_row_index("rn").to_arrow())
        result = connection.sql(sql, params=params).pl()
        connection.close()
        return result

    return call


def peak_rss_mb() -> float:
    """Return this process's peak resident set size (VmHWM: unlike ru_maxrss, not inherited across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_runs(call: Callable[[], T], repeat: int) -> tuple[float, float, T]:
    """Run `call` `repeat` times; return the least wall and CPU seconds and the last result."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu), result


def child(mode: str, root: Path, size: int, repeat: int) -> None:
    """Time one case in this process and print its figures as JSON."""
    call = {
        "ours": lambda: run_ours(root, size),
        "floor": lambda: run_sql(root, size, FLOOR_SQL),
        "bare": lambda: run_sql(root, size, BARE_SQL),
    }[mode]()
    rss_after_setup = peak_rss_mb()
    seconds, cpu_seconds, result = timed_runs(call, repeat)
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows": result.height,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_setup_mb": rss_after_setup,
    }
    print(json.dumps(figures))


def check(root: Path, size: int) -> None:
    """Assert that the floor query and get_historical_features give the same frame."""
    from polars.testing import assert_frame_equal

    ours = run_ours(root, size)()
    floor = run_sql(root, size, FLOOR_SQL)()
    assert_frame_equal(ours, floor.select(ours.columns), check_dtypes=False)
    print(json.dumps({"equal": True}))


def measure(mode: str, root: Path, size: int, repeat: int) -> dict:
    """Run one case in a fresh child process and return its figures."""
    command = [sys.executable, __file__, "--child", mode, "--root", str(root), "--sizes", str(size)]
    output = subprocess.run([*command, "--repeat", str(repeat)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drivers", type=int, default=10_000, help="entities of the hourly view")
    parser.add_argument("--hours", type=int, default=1_000, help="hours of the hourly view")
    parser.add_argument("--customers", type=int, default=25_000, help="entities of the daily view")
    parser.add_argument("--days", type=int, default=40, help="days of the daily view")
    parser.add_argument("--sizes", default="100000,1000000", help="entity-frame sizes, the last one is '1m'")
    parser.add_argument("--repeat", type=int, default=2, help="calls per child process")
    parser.add_argument("--rounds", type=int, default=3, help="child processes per case, interleaved across cases")
    parser.add_argument("--root", type=Path, help="reuse generated data here (generated if missing)")
    parser.add_argument("--child", choices=["ours", "floor", "bare", "check"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child == "check":
        check(args.root, sizes[0])
        return
    if args.child:
        child(args.child, args.root, sizes[0], args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="bench_historical_") as scratch:
        root = args.root or Path(scratch)
        if not (root / "store").exists():
            started = time.perf_counter()
            generate(root, args.drivers, args.hours, args.customers, args.days, sizes)
            rows = args.drivers * args.hours, args.customers * args.days
            print(f"generated {rows[0]:,} + {rows[1]:,} view rows in {time.perf_counter() - started:.1f} s")
        subprocess.run(
            [sys.executable, __file__, "--child", "check", "--root", str(root), "--sizes", str(sizes[0])],
            check=True,
            capture_output=True,
        )
        print(f"check: get_historical_features == floor query on {sizes[0]:,} entity rows")
        header = ["entity rows", "case", "seconds", "CPU seconds", "peak RSS MB", "RSS after setup MB"]
        print(" ".join(f"{h:>{max(len(h), 12)}}" for h in header))
        results: dict[tuple[int, str], dict] = {}
        for size in sizes:
            for _ in range(args.rounds):
                for mode in MODES:
                    figures = measure(mode, root, size, args.repeat)
                    best = results.setdefault((size, mode), figures)
                    for key in ("seconds", "cpu_seconds", "rss_after_setup_mb"):
                        best[key] = min(best[key], figures[key])
                    best["peak_rss_mb"] = max(best["peak_rss_mb"], figures["peak_rss_mb"])
            for mode in MODES:
                best = results[size, mode]
                row = [f"{size:,}", mode, f"{best['seconds']:.3f}", f"{best['cpu_seconds']:.3f}"]
                row += [f"{best['peak_rss_mb']:.0f}", f"{best['rss_after_setup_mb']:.0f}"]
                print(" ".join(f"{v:>{max(len(h), 12)}}" for v, h in zip(row, header, strict=True)))
        small, large = sizes[0], sizes[-1]
        summary = {
            "seconds_100k": results[small, "ours"]["seconds"],
            "floor_seconds_100k": results[small, "floor"]["seconds"],
            "ratio_100k": results[small, "ours"]["seconds"] / results[small, "floor"]["seconds"],
            "seconds_1m": results[large, "ours"]["seconds"],
            "floor_seconds_1m": results[large, "floor"]["seconds"],
            "ratio_1m": results[large, "ours"]["seconds"] / results[large, "floor"]["seconds"],
            "peak_rss_mb_1m": results[large, "ours"]["peak_rss_mb"],
            "floor_peak_rss_mb_1m": results[large, "floor"]["peak_rss_mb"],
            "bare_asof_seconds_1m": results[large, "bare"]["seconds"],
            "ratio_to_bare_1m": results[large, "ours"]["seconds"] / results[large, "bare"]["seconds"],
            "cpu_ratio_100k": results[small, "ours"]["cpu_seconds"] / results[small, "floor"]["cpu_seconds"],
            "cpu_ratio_1m": results[large, "ours"]["cpu_seconds"] / results[large, "floor"]["cpu_seconds"],
        }
        print(json.dumps({key: round(value, 3) for key, value in summary.items()}))


if __name__ == "__main__":
    main()
