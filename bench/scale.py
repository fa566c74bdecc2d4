"""Benchmark: the store at scale within its memory budget, each case against a floor measured in the same run.

Cases (full size; `--scale F` divides every row and entity count by F, keeping spans of time and the 1,000 features):
- pit: get_historical_features against historical.py's hand DuckDB FLOOR_SQL over the same Parquet, for entity
  frames of 1M and 10M rows against an hourly view of 10M rows (10k drivers x 1000 hours) and of 100M rows (100k
  drivers x 1000 hours), each with historical.py's daily customer view (25k customers x 40 days) in the request:
  1m_x_10m, 10m_x_10m, 1m_x_100m, 10m_x_100m.
- agg: one partition of the demo's driver_trip_stats from 100M trip events (50k drivers), materialized through
  Dagster, against offline_compute.py's bare Polars query.
- wide: a view of 1,000 Float64 features (10k entities x 30 daily rows, ttl 7d) joined for 100k entity rows
  requesting every feature, against one hand DuckDB ASOF query with the ttl on each column.
Data is generated under `--root` (one subfolder per dataset, reused when complete), and first a child process checks
that ours equals the floor on the wide case and the smallest point-in-time case. Every side of every case then runs
in a fresh child process (`--rounds` of them, `--repeat` calls each): best wall and CPU seconds, largest peak RSS
(VmHWM). The store gets `--memory-budget`; the floors run unconstrained. Prints a table (case, side, seconds, CPU s,
peak MB), then one JSON line.
"""

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import historical  # noqa: E402
import offline_compute  # noqa: E402

HOURS = 1_000
CUSTOMERS = 25_000
CUSTOMER_DAYS = 40
PIT_VIEWS = {"10m": 10_000, "100m": 100_000}
"""Hourly view label -> drivers (x HOURS rows each)."""
PIT_ENTITIES = {"1m": 1_000_000, "10m": 10_000_000}
PIT_CASES = [(rows, view) for view in PIT_VIEWS for rows in PIT_ENTITIES]
AGG_EVENTS = 100_000_000
AGG_DRIVERS = 50_000
WIDE_FEATURES = 1_000
WIDE_ENTITIES = 10_000
WIDE_DAYS = 30
WIDE_ROWS = 100_000
WIDE_TTL_DAYS = 7
COMPLETE = "complete.json"
SIDES = {"pit": ("pit_ours", "pit_floor"), "agg": ("agg_ours", "agg_floor"), "wide": ("wide_ours", "wide_floor")}


def wide_view():
    """Return the repository and the view of WIDE_FEATURES Float64 features."""
    import polars as pl

    from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource

    view = FeatureView(
        "wide_daily",
        entities=[Entity("driver", ["driver_id"])],
        source=ParquetSource("wide_events", "raw/wide/*.parquet", "ts"),
        ttl=f"{WIDE_TTL_DAYS}d",
        schema=[Field(name, pl.Float64) for name in wide_features()],
    )
    return FeatureRepository([view]), view


def wide_features() -> list[str]:
    """Return the wide view's feature names, f0000 on."""
    return [f"f{index:04d}" for index in range(WIDE_FEATURES)]


def generate_wide(folder: Path, entities: int, rows: int) -> None:
    """Write WIDE_DAYS daily partitions of one row per entity, and an entity frame reaching past the ttl."""
    import numpy as np
    import polars as pl

    from resources.offline_store import OfflineStore

    _, view = wide_view()
    store = OfflineStore(root=str(folder / "store"))
    rng = np.random.default_rng(11)
    start_us = int(historical.START.timestamp()) * 1_000_000
    day_us = 24 * historical.HOUR_US
    for day in range(WIDE_DAYS):
        event = start_us + day * day_us + rng.integers(0, day_us, entities)
        keys = pl.DataFrame(
            {
                "driver_id": np.arange(entities, dtype=np.int64),
                "event_timestamp": event,
                "created_timestamp": event + rng.integers(0, 600_000_000, entities),
            }
        ).with_columns(pl.col("event_timestamp", "created_timestamp").cast(pl.Datetime("us", "UTC")))
        values = pl.DataFrame(rng.random((entities, WIDE_FEATURES)), schema=wide_features())
        store.write_partition(view, (historical.START + timedelta(days=day)).date(), keys.hstack(values.get_columns()))
    span_us = (WIDE_DAYS + 2 * WIDE_TTL_DAYS) * day_us
    pl.DataFrame(
        {
            "driver_id": rng.integers(0, entities + entities // 100 + 1, rows),
            "event_timestamp": start_us + rng.integers(0, span_us, rows),
            "label": rng.random(rows),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(folder / "entities.parquet")


def wide_floor_sql() -> str:
    """Return one ASOF query on (event, created) with the ttl on each feature, in entity row order."""
    ttl = f"v.event_timestamp >= e.event_timestamp - INTERVAL {WIDE_TTL_DAYS} DAY"
    features = wide_features()
    cases = ",\n       ".join(f"CASE WHEN {ttl} THEN v.{name} END AS {name}" for name in features)
    return f"""
SELECT e.* EXCLUDE (rn, o),
       {cases}
FROM (SELECT *, (epoch_us(event_timestamp)::HUGEINT + 1) << 64 AS o FROM entities) e
ASOF LEFT JOIN (
    SELECT driver_id, event_timestamp, {", ".join(features)},
           (epoch_us(event_timestamp)::HUGEINT << 64) + epoch_us(created_timestamp) + 9223372036854775808 AS o
    FROM read_parquet($files)) v
  ON e.driver_id = v.driver_id AND e.o > v.o
ORDER BY e.rn
"""


def pit_ours(folder: Path, rows: int, budget: str):
    """Return a call of get_historical_features for one point-in-time case, within `budget`."""
    import polars as pl

    from feature_assets.retrieval.point_in_time import get_historical_features
    from resources.offline_store import OfflineStore

    repository, _, _ = historical.repository_and_views()
    store = OfflineStore(root=str(folder / "store"), memory_budget=budget)
    entities = pl.read_parquet(folder / f"entities_{rows}.parquet")
    features = historical.DRIVER_FEATURES + historical.CUSTOMER_FEATURES
    return lambda: get_historical_features(entities, features, repository=repository, offline_store=store)


def pit_floor(folder: Path, rows: int, budget: str):
    """Return a call of historical.py's FLOOR_SQL for one point-in-time case."""
    return historical.run_sql(folder, rows, historical.FLOOR_SQL)


def agg_ours(folder: Path, rows: int, budget: str):
    """Return a call materializing one driver_trip_stats partition through Dagster, within `budget`."""
    import dagster as dg
    import polars as pl

    from feature_assets.demo.views.drivers import driver_trip_stats
    from feature_assets.orchestration.view_assets import build_view_asset
    from resources.offline_store import OfflineStore

    store = OfflineStore(root=str(folder), memory_budget=budget)
    asset = build_view_asset(driver_trip_stats)

    def call():
        result = dg.materialize(
            [asset],
            instance=dg.DagsterInstance.ephemeral(),
            resources={"offline_store": store},
            partition_key=offline_compute.DAY.isoformat(),
        )
        assert result.success
        files = store.partition_files(driver_trip_stats, offline_compute.DAY, offline_compute.DAY)
        return {"rows": pl.scan_parquet(files).select(pl.len()).collect().item()}

    return call


def agg_floor(folder: Path, rows: int, budget: str):
    """Return a call of offline_compute.py's bare Polars query, its modules imported beforehand."""
    for module in ("feature_assets.compute.windowed_aggregation", "feature_assets.demo.views.drivers"):
        importlib.import_module(module)
    return lambda: offline_compute.run_floor(folder)


def wide_ours(folder: Path, rows: int, budget: str):
    """Return a call of get_historical_features for every wide feature, within `budget`."""
    import polars as pl

    from feature_assets.retrieval.point_in_time import get_historical_features
    from resources.offline_store import OfflineStore

    repository, view = wide_view()
    store = OfflineStore(root=str(folder / "store"), memory_budget=budget)
    entities = pl.read_parquet(folder / "entities.parquet")
    features = [f"{view.name}:{name}" for name in wide_features()]
    return lambda: get_historical_features(entities, features, repository=repository, offline_store=store)


def wide_floor(folder: Path, rows: int, budget: str):
    """Return a call of the hand wide ASOF query."""
    import duckdb
    import polars as pl

    from resources.offline_store import OfflineStore

    _, view = wide_view()
    files = OfflineStore(root=str(folder / "store")).partition_files(view)
    entities = pl.read_parquet(folder / "entities.parquet")
    sql = wide_floor_sql()

    def call() -> pl.DataFrame:
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("entities", entities.with_row_index("rn").to_arrow())
        result = connection.sql(sql, params={"files": files}).pl()
        connection.close()
        return result

    return call


def child(mode: str, folder: Path, rows: int, budget: str, repeat: int) -> None:
    """Time one side of one case in this process and print its figures as JSON."""
    call = globals()[mode](folder, rows, budget)
    seconds, cpu_seconds, result = historical.timed_runs(call, repeat)
    rows_out = result["rows"] if isinstance(result, dict) else result.height
    figures = {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows_out, "peak_mb": historical.peak_rss_mb()}
    print(json.dumps(figures))


def check(pit_folder: Path | None, pit_rows: int, wide_folder: Path | None, budget: str) -> None:
    """Assert that ours equals the floor on the smallest point-in-time case and on the wide case (those given)."""
    from polars.testing import assert_frame_equal

    for ours_call, floor_call, folder, rows in (
        (pit_ours, pit_floor, pit_folder, pit_rows),
        (wide_ours, wide_floor, wide_folder, 0),
    ):
        if folder is None:
            continue
        ours = ours_call(folder, rows, budget)()
        floor = floor_call(folder, rows, budget)()
        assert_frame_equal(ours, floor.select(ours.columns), check_dtypes=False)
        del ours, floor
    print(json.dumps({"equal": True}))


def run_child(arguments: list[str]) -> dict:
    """Run this script with `arguments` in a fresh process and return the JSON of its last line."""
    process = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True)
    if process.returncode:
        sys.exit(f"child {' '.join(arguments)} failed:\n{process.stderr}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def dataset(folder: Path, identity: dict, generate) -> Path:
    """Return `folder` holding the data `identity` describes, generating it unless a complete copy is there."""
    marker = folder / COMPLETE
    if marker.exists() and json.loads(marker.read_text()) == identity:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    generate(folder)
    marker.write_text(json.dumps(identity))
    print(f"generated {folder.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


def sizes(scale: float) -> dict:
    """Return every row and entity count divided by `scale`."""

    def scaled(count: int) -> int:
        return max(1, round(count / scale))

    return {
        "pit_views": {label: scaled(drivers) for label, drivers in PIT_VIEWS.items()},
        "pit_entities": {label: scaled(rows) for label, rows in PIT_ENTITIES.items()},
        "customers": scaled(CUSTOMERS),
        "agg_events": scaled(AGG_EVENTS),
        "agg_drivers": scaled(AGG_DRIVERS),
        "wide_entities": scaled(WIDE_ENTITIES),
        "wide_rows": scaled(WIDE_ROWS),
    }


def prepare(root: Path, cases: list[str], size: dict) -> dict[str, Path]:
    """Return the dataset folder of each case key, generating what is missing."""
    folders: dict[str, Path] = {}
    entity_rows = sorted(size["pit_entities"].values())
    if "pit" in cases:
        for label, drivers in size["pit_views"].items():
            identity = {"drivers": drivers, "hours": HOURS, "customers": size["customers"], "entities": entity_rows}
            folders[f"pit_{label}"] = dataset(
                root / f"pit_{drivers * HOURS}",
                identity,
                lambda f, d=drivers: historical.generate(f, d, HOURS, size["customers"], CUSTOMER_DAYS, entity_rows),
            )
    if "agg" in cases:
        identity = {
            "events": size["agg_events"],
            "drivers": size["agg_drivers"],
            "day": offline_compute.DAY.isoformat(),
        }
        folders["agg"] = dataset(
            root / f"agg_{size['agg_events']}",
            identity,
            lambda f: offline_compute.generate(f, size["agg_events"], size["agg_drivers"]),
        )
    if "wide" in cases:
        identity = {"entities": size["wide_entities"], "rows": size["wide_rows"], "features": WIDE_FEATURES}
        folders["wide"] = dataset(
            root / f"wide_{size['wide_entities'] * WIDE_DAYS}",
            identity,
            lambda f: generate_wide(f, size["wide_entities"], size["wide_rows"]),
        )
    return folders


def measure(mode: str, folder: Path, rows: int, args: argparse.Namespace) -> dict:
    """Run one side `args.rounds` times in fresh processes: best seconds and CPU seconds, largest peak RSS."""
    best: dict = {}
    for _ in range(args.rounds):
        command = ["--child", mode, "--folder", str(folder), "--rows", str(rows), "--repeat", str(args.repeat)]
        figures = run_child([*command, "--memory-budget", args.memory_budget])
        for key in ("seconds", "cpu_seconds"):
            best[key] = min(best.get(key, figures[key]), figures[key])
        best["peak_mb"] = max(best.get("peak_mb", 0.0), figures["peak_mb"])
        best["rows"] = figures["rows"]
    return best


def run_cases(cases: list[str], folders: dict[str, Path], size: dict, args: argparse.Namespace) -> dict:
    """Measure every selected case, print its table rows and return the JSON figures."""
    plan = []
    if "pit" in cases:
        for rows, view in PIT_CASES:
            plan.append((f"pit_{rows}_x_{view}", "pit", folders[f"pit_{view}"], size["pit_entities"][rows]))
    if "agg" in cases:
        plan.append(("agg_100m", "agg", folders["agg"], 0))
    if "wide" in cases:
        plan.append((f"wide_{WIDE_FEATURES}", "wide", folders["wide"], 0))
    header = f"{'case':<16}{'side':>6}{'seconds':>10}{'CPU s':>10}{'peak MB':>10}{'rows':>12}"
    print(header, flush=True)
    summary: dict[str, float] = {}
    for name, kind, folder, rows in plan:
        for side, mode in zip(("ours", "floor"), SIDES[kind], strict=True):
            figures = measure(mode, folder, rows, args)
            print(
                f"{name:<16}{side:>6}{figures['seconds']:>10.2f}{figures['cpu_seconds']:>10.2f}"
                f"{figures['peak_mb']:>10.0f}{figures['rows']:>12,}",
                flush=True,
            )
            prefix = name if side == "ours" else f"{name}_floor"
            summary[f"{prefix}_seconds"] = figures["seconds"]
            summary[f"{prefix}_cpu_seconds"] = figures["cpu_seconds"]
            summary[f"{prefix}_peak_mb"] = figures["peak_mb"]
    if "pit" in cases:
        summary["pit_ratio_to_floor"] = max(
            summary[f"pit_{r}_x_{v}_seconds"] / summary[f"pit_{r}_x_{v}_floor_seconds"] for r, v in PIT_CASES
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="reuse generated data here (each dataset generated if missing)")
    parser.add_argument("--cases", default="pit,agg,wide", help="comma-separated subset of pit,agg,wide")
    parser.add_argument("--scale", type=float, default=1.0, help="divide every row and entity count by this")
    parser.add_argument("--memory-budget", default="2GiB", help="OfflineStore.memory_budget of the store's side")
    parser.add_argument("--repeat", type=int, default=1, help="calls per child process")
    parser.add_argument("--rounds", type=int, default=1, help="child processes per side of each case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--wide-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "check":
        check(args.folder, args.rows, args.wide_folder, args.memory_budget)
        return
    if args.child:
        child(args.child, args.folder, args.rows, args.memory_budget, args.repeat)
        return
    from feature_assets.language.byte_sizes import parse_byte_size

    budget_bytes = parse_byte_size(args.memory_budget, "--memory-budget")
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = set(cases) - set(SIDES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {sorted(SIDES)}")
    size = sizes(args.scale)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as scratch:
        root = args.root or Path(scratch)
        folders = prepare(root, cases, size)
        if "pit" in cases or "wide" in cases:
            smallest = min(size["pit_entities"].values())
            command = ["--child", "check", "--rows", str(smallest), "--memory-budget", args.memory_budget]
            command += ["--folder", str(folders["pit_10m"])] if "pit" in cases else []
            run_child(command + (["--wide-folder", str(folders["wide"])] if "wide" in cases else []))
            checked = [f"pit_1m_x_10m ({smallest:,} entity rows)"] if "pit" in cases else []
            print(f"check: ours == floor on {', '.join(checked + (['wide'] if 'wide' in cases else []))}")
        summary = run_cases(cases, folders, size, args)
    summary["memory_budget_mb"] = budget_bytes / 2**20
    summary["scale"] = args.scale
    print(json.dumps({key: round(value, 3) for key, value in summary.items()}))


if __name__ == "__main__":
    main()
