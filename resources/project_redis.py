"""The project's own background Redis for `./dev demo` and `./dev ui`: one server shared by every run process.

Dagster launches each run in its own process, so a per-process embedded server would lose what a run published.
This server lives in a folder (by default `$DAGSTER_HOME/redis`), keeps its data in an append-only file so it
survives restarts, and is reused while it answers; `stop` shuts it down.
"""

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from resources.embedded_redis import (
    COMPACT_HASHES,
    STARTUP_TIMEOUT_S,
    EmbeddedRedisError,
    free_port,
    redis_server_executable,
    shared_server,
)

STATE_FILE = "server.json"


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def ensure_project_redis(directory: str | Path) -> str:
    """Return the URL of the project Redis in `directory`, starting it in the background when it is not running."""
    folder = Path(directory).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = folder / STATE_FILE
        if state.exists():
            url = json.loads(state.read_text())["url"]
            if _answers(url):
                return url
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        subprocess.Popen(
            [
                redis_server_executable(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                "--logfile",
                str(folder / "redis.log"),
                *COMPACT_HASHES,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(url):
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"the project Redis did not answer on {url}; see {folder / 'redis.log'}")
            time.sleep(0.05)
        state.write_text(json.dumps({"url": url}))
        return url


def stop_project_redis(directory: str | Path) -> bool:
    """Shut down the project Redis in `directory` (saving its data); return whether one was running."""
    state = Path(directory).resolve() / STATE_FILE
    if not state.exists():
        return False
    url = json.loads(state.read_text())["url"]
    state.unlink()
    if not _answers(url):
        return False
    client = redis.Redis.from_url(url)
    try:
        client.shutdown()
    except redis.ConnectionError:
        pass
    return True


def main(argv: list[str] | None = None) -> int:
    """`start DIR` prints the URL of the project Redis (starting it if needed); `stop DIR` shuts it down."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory", nargs="?", default=os.path.join(os.environ.get("DAGSTER_HOME", "."), "redis"))
    arguments = parser.parse_args(argv)
    if arguments.action == "start":
        print(ensure_project_redis(arguments.directory))
    else:
        print("stopped" if stop_project_redis(arguments.directory) else "not running")
    return 0


def embedded_url() -> str:
    """Return the URL of the Redis used when none is configured.

    Under a Dagster instance (DAGSTER_HOME set) every run and step process shares the project's background server
    in `$DAGSTER_HOME/redis`; elsewhere (a notebook, a script) the process starts a private server.
    """
    home = os.environ.get("DAGSTER_HOME")
    return ensure_project_redis(os.path.join(home, "redis")) if home else shared_server().url


if __name__ == "__main__":
    sys.exit(main())
