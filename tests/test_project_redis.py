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
