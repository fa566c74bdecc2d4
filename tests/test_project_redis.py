"""The project's background Redis: shared while it answers, persistent across restarts, stopped on request."""

import redis

from resources.project_redis import ensure_project_redis, stop_project_redis


def test_the_project_redis_is_reused_and_keeps_its_data_across_a_restart(tmp_path):
    folder = tmp_path / "redis"
    url = ensure_project_redis(folder)
    try:
        assert ensure_project_redis(folder) == url, "a running server is reused, not started twice"
        redis.Redis.from_url(url).hset("fs:{i:1}:driver_profile:v1", mapping={"rating": "4.5", "_ts": "1"})
        assert stop_project_redis(folder)
        assert not stop_project_redis(folder)
        restarted = ensure_project_redis(folder)
        assert redis.Redis.from_url(restarted).hget("fs:{i:1}:driver_profile:v1", "rating") == b"4.5"
    finally:
        stop_project_redis(folder)


def test_run_processes_without_redis_url_share_the_project_redis(tmp_path):
    """Dagster runs each run (and step) in its own process; they must all see one Redis."""
    import os
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    environment["DAGSTER_HOME"] = str(tmp_path)
    write = (
        "from datetime import UTC, datetime\n"
        "import polars as pl\n"
        "from resources.online_store import RedisOnlineStore\n"
        "from tests.publishing_views import driver_quality\n"
        "now = datetime.now(UTC)\n"
        "rows = pl.DataFrame({'driver_id': [5], 'event_timestamp': [now], 'created_timestamp': [now],"
        " 'rating': [4.25], 'city': ['oslo']}).cast({'event_timestamp': pl.Datetime('us', 'UTC'),"
        " 'created_timestamp': pl.Datetime('us', 'UTC')})\n"
        "RedisOnlineStore().write_batch(driver_quality, rows)\n"
    )
    read = (
        "from resources.online_store import RedisOnlineStore\n"
        "store = RedisOnlineStore(repository='tests.publishing_views:repository')\n"
        "print(store.get_online_features(['driver_quality:rating'], [{'driver_id': 5}]).to_dict()['rating'])\n"
    )
    try:
        for script in (write, read):
            done = subprocess.run(
                [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
            )
        assert done.stdout.strip() == "[4.25]"
    finally:
        stop_project_redis(tmp_path / "redis")
