"""Benchmark: one partition of the windowed-aggregation view through Dagster vs the bare Polars query.

Generates N trip events for one day, materializes that day of `driver_trip_stats` (validation, statistics,
atomic Parquet write and Dagster bookkeeping included) and, as the floor in the same run, collects the same
aggregation as one lazy Polars query written straight to Parquet. Each side runs in its own process so its
peak RSS is its own. Prints a table, then one JSON line.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feature_assets.demo.calendar import LAST_DAY  # noqa: E402

DAY = LAST_DAY  # a day the demo's driver_trip_stats has a partition for (its views start with its data)


def generate(root: Path, events: int, drivers: int) -> None:
    from feature_assets.demo.data import DemoSize, generate_trips

    size = DemoSize(trips=events, days=1, drivers=drivers, customers=drivers * 4)
    chunk = 1_000_000
    for index, start in enumerate(range(0, events, chunk)):
        frame = generate_trips(size, DAY, min(chunk, events - start), seed=index)
        frame.write_parquet(root / "raw" / "trips" / f"part-{index:03d}.parquet", mkdir=True)


def run_store(root: Path) -> dict:
    import dagster as dg

    from feature_assets.demo.views.drivers import driver_trip_stats
    from feature_assets.orchestration.view_assets import build_view_asset
    from resources.offline_store import OfflineStore

    store = OfflineStore(root=str(root))
    started = time.perf_counter()
    result = dg.materialize(
        [build_view_asset(driver_trip_stats)],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"offline_store": store},
        partition_key=DAY.isoformat(),
    )
    seconds = time.perf_counter() - started
    assert result.success
    rows = store.read_partition(driver_trip_stats, DAY).height
    return {"seconds": seconds, "rows": rows}


def run_floor(root: Path) -> dict:
    from feature_assets.compute.source_frames import normalize_source
    from feature_assets.compute.windowed_aggregation import aggregate_windows
    from feature_assets.demo.views.drivers import driver_trip_stats
    from resources.offline_store import OfflineStore, day_bounds

    store = OfflineStore(root=str(root))
    started = time.perf_counter()
    start, end = day_bounds(DAY, driver_trip_stats.lookback)
    events = normalize_source(driver_trip_stats, store.scan_source(driver_trip_stats.source, start, end))
    frame = aggregate_windows(events, driver_trip_stats, DAY).collect()
    frame.write_parquet(root / "floor.parquet")
    return {"seconds": time.perf_counter() - started, "rows": frame.height}


def measure(mode: str, root: Path) -> dict:
    """Run one side in a child process and return its figures with the child's peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--root", str(root)], check=True, capture_output=True, text=True
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    figures["peak_rss_mb"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return figures


def main() -> None:
    """Generate, measure both sides, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--drivers", type=int, default=50_000)
    parser.add_argument("--child", choices=["store", "floor"])
    parser.add_argument("--root")
    arguments = parser.parse_args()
    if arguments.child:
        run = run_store if arguments.child == "store" else run_floor
        print(json.dumps(run(Path(arguments.root))))
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        generate(root, arguments.events, arguments.drivers)
        generated = time.perf_counter() - started
        floor = measure("floor", root)
        store = measure("store", root)
    figures = {
        "events": arguments.events,
        "drivers": arguments.drivers,
        "output_rows": store["rows"],
        "seconds": round(store["seconds"], 3),
        "events_per_s": round(arguments.events / store["seconds"]),
        "floor_seconds": round(floor["seconds"], 3),
        "ratio": round(store["seconds"] / floor["seconds"], 3),
        "peak_rss_mb": round(store["peak_rss_mb"], 1),
        "floor_peak_rss_mb": round(floor["peak_rss_mb"], 1),
    }
    print(f"generated {arguments.events:,} events in {generated:.1f} s")
    print(f"{'case':<44}{'seconds':>10}{'events/s':>14}{'peak RSS MB':>14}{'rows':>12}")
    print(
        f"{'driver_trip_stats via Dagster (store)':<44}{store['seconds']:>10.2f}"
        f"{arguments.events / store['seconds']:>14,.0f}{store['peak_rss_mb']:>14.0f}{store['rows']:>12,}"
    )
    print(
        f"{'same aggregation, bare Polars query (floor)':<44}{floor['seconds']:>10.2f}"
        f"{arguments.events / floor['seconds']:>14,.0f}{floor['peak_rss_mb']:>14.0f}{floor['rows']:>12,}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
