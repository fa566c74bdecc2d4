"""A seeded generator of the demo domain's raw sources: driver and customer snapshots and trip events."""

import argparse
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from feature_assets.demo.calendar import DEMO_DAYS, HISTORY_DAYS, demo_days
from resources.offline_store import OfflineStore

SIGNUP_REFERENCE = date(2025, 1, 1)


@dataclass(frozen=True)
class DemoSize:
    """How much raw data to generate."""

    trips: int = 100_000
    days: int = DEMO_DAYS
    drivers: int = 500
    customers: int = 2_000


def generate_trips(size: DemoSize, day: date, trips: int, seed: int) -> pl.DataFrame:
    """Return one day of trip requests with fares, distances and outcomes (a few nulls included)."""
    rng = np.random.default_rng(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, 86_400_000_000, trips))
    distance = np.round(rng.gamma(2.0, 3.0, trips), 2)
    fare = np.round(2.5 + distance * rng.uniform(0.8, 1.6, trips), 2)
    return pl.DataFrame(
        {
            "trip_id": np.arange(trips, dtype=np.int64) + seed * 10_000_000,
            "driver_id": rng.integers(1, size.drivers + 1, trips),
            "customer_id": rng.integers(1, size.customers + 1, trips),
            "requested_at": pl.Series(offsets).cast(pl.Duration("us")) + start,
            "distance_km": pl.Series(distance).scatter(rng.integers(0, trips, trips // 200), None),
            "fare": fare,
            "completed": rng.random(trips) < 0.9,
        }
    )


def generate_driver_snapshots(size: DemoSize, day: date, seed: int) -> pl.DataFrame:
    """Return each driver's profile as exported on `day` (export time varies, loaded a few minutes later)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, size.drivers + 1)
    base = np.random.default_rng(7).uniform(3.2, 5.0, size.drivers)
    snapshot = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=2)
    jitter = pl.Series(rng.integers(0, 3_600_000_000, size.drivers)).cast(pl.Duration("us"))
    acceptance = pl.Series(np.round(rng.uniform(0.5, 1.0, size.drivers), 3)).scatter(
        rng.integers(0, size.drivers, max(1, size.drivers // 50)), None
    )
    return pl.DataFrame(
        {
            "driver_id": ids,
            "snapshot_at": jitter + snapshot,
            "loaded_at": jitter + snapshot + timedelta(minutes=5),
            "rating": np.round(np.clip(base + rng.normal(0, 0.05, size.drivers), 1.0, 5.0), 2),
            "acceptance_rate": acceptance,
            "vehicle_type": np.random.default_rng(11).choice(["economy", "comfort", "xl"], size.drivers),
            "years_active": np.random.default_rng(13).integers(0, 12, size.drivers),
        }
    )


def generate_customer_snapshots(size: DemoSize, day: date, seed: int) -> pl.DataFrame:
    """Return each customer's lifetime totals and segment as exported on `day`."""
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(17)
    days_since_start = (day - SIGNUP_REFERENCE).days
    trips = fixed.integers(0, 200, size.customers) + days_since_start * rng.integers(0, 2, size.customers)
    spend = np.round(trips * fixed.uniform(8.0, 30.0, size.customers), 2)
    signup = np.datetime64(SIGNUP_REFERENCE, "D") - fixed.integers(30, 2_000, size.customers).astype("timedelta64[D]")
    return pl.DataFrame(
        {
            "customer_id": np.arange(1, size.customers + 1),
            "snapshot_at": datetime(day.year, day.month, day.day, 3, tzinfo=UTC),
            "signup_date": pl.Series(signup).cast(pl.Date),
            "lifetime_trips": trips,
            "lifetime_spend": spend,
            "segment": fixed.choice(["new", "regular", "premium"], size.customers, p=[0.2, 0.6, 0.2]),
        }
    )


def write_demo_sources(offline_store: OfflineStore, size: DemoSize, start: date) -> dict[str, int]:
    """Write the raw sources for `size.days` days from `start` under the offline root; return row counts.

    Trips also cover the `HISTORY_DAYS` before `start` at the same daily rate, so the trip windows are full from the
    first day on; the labels (`trip_outcomes`) and the snapshots cover only the demo's days.
    """
    per_day = np.full(size.days, size.trips // size.days)
    per_day[: size.trips % size.days] += 1
    counts = {"trips": 0, "trip_outcomes": 0, "driver_snapshots": 0, "customer_snapshots": 0}
    for index in range(-HISTORY_DAYS, size.days):
        day = start + timedelta(days=index)
        seed = 1_000 + index
        stamp = day.isoformat()
        trips = generate_trips(size, day, int(per_day[index % size.days]), seed)
        frames = {"trips": trips}
        if index >= 0:
            frames["trip_outcomes"] = trips
            frames["driver_snapshots"] = generate_driver_snapshots(size, day, seed)
            frames["customer_snapshots"] = generate_customer_snapshots(size, day, seed)
        for name, frame in frames.items():
            offline_store.write_file(f"raw/{name}/{stamp}.parquet", frame)
            counts[name] += frame.height
    return counts


def main() -> None:
    """Generate the demo's raw sources under OFFLINE_ROOT (default ./data)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=DemoSize.trips, help="trip events")
    parser.add_argument("--days", type=int, default=DemoSize.days)
    arguments = parser.parse_args()
    first, _ = demo_days(arguments.days)
    counts = write_demo_sources(OfflineStore.from_env(), DemoSize(trips=arguments.rows, days=arguments.days), first)
    print(counts)


if __name__ == "__main__":
    main()
