"""The demo's streaming step: a stream worker process, a burst of pushed trip events and the fresh values it serves."""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import polars as pl

from feature_assets.demo.views import repository
from feature_assets.streaming.push import push
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from resources.project_redis import embedded_url

VIEW = "driver_activity_live"
FEATURES = [f"{VIEW}:trips_10m", f"{VIEW}:trips_1h", f"{VIEW}:fare_sum_1h", f"{VIEW}:distance_last_1h"]
DRIVERS = (1, 2, 3)
BURST = 300
WAIT_SECONDS = 60.0


def burst_events(now: datetime, seed: int = 7) -> pl.DataFrame:
    """Return BURST trip events of the demo drivers over the last four minutes (within the allowed lateness)."""
    rng = random.Random(seed)
    return pl.DataFrame(
        {
            "driver_id": [rng.choice(DRIVERS) for _ in range(BURST)],
            "requested_at": [now - timedelta(seconds=rng.randrange(1, 240)) for _ in range(BURST)],
            "fare": [round(rng.uniform(4.0, 40.0), 2) for _ in range(BURST)],
            "distance_km": [round(rng.uniform(0.5, 20.0), 1) for _ in range(BURST)],
        },
        schema_overrides={"requested_at": pl.Datetime("us", "UTC")},
    )


def read(online_store: RedisOnlineStore) -> pl.DataFrame:
    """Return the live features of the demo drivers, with the newest event's time and age."""
    response = online_store.get_online_features(FEATURES, [{"driver_id": d} for d in DRIVERS], include_timestamps=True)
    return response.to_polars(include_ages=True)


def stream_burst(online_store: RedisOnlineStore, offline_store: OfflineStore) -> list[str]:
    """Start a stream worker process, push a burst of trip events and return report lines with the fresh values."""
    view = repository.view(VIEW)
    env = {**os.environ, "REDIS_URL": os.environ.get("REDIS_URL") or embedded_url()}
    command = [sys.executable, "-m", "feature_assets.streaming.worker", "--views", VIEW, "--observe-every", "0"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        before = read(online_store)
        now = datetime.now(UTC)
        events = burst_events(now)
        started = time.perf_counter()
        result = push(view, events, to="online_and_offline", online_store=online_store, offline_store=offline_store)
        expected = events.height
        deadline = time.monotonic() + WAIT_SECONDS
        after = read(online_store)
        while sum(after["trips_1h"].fill_null(0)) < expected and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the stream worker exited: {worker.stderr.read().decode()[-2000:]}")
            time.sleep(0.01)
            after = read(online_store)
        seconds = time.perf_counter() - started
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    lines = [
        f"5. streaming: a stream worker process applied {result.rows} pushed trip events "
        f"(also appended to the offline event log) and served them {seconds:.2f} s after the push "
        "(including the worker's start-up)",
        f"   online {VIEW} before the burst:",
        *(
            "   " + line
            for line in str(
                before.drop("driver_activity_live__event_timestamp", "driver_activity_live__age_seconds")
            ).splitlines()
        ),
        "   and after:",
        *("   " + line for line in str(after).splitlines()),
    ]
    if sum(after["trips_1h"].fill_null(0)) < expected:
        raise RuntimeError(f"the stream worker did not apply the burst within {WAIT_SECONDS:.0f} s")
    return lines
