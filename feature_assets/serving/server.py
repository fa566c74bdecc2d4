"""Running the HTTP feature server: uvicorn with uvloop and httptools, in one process or in N worker processes.

Each worker builds its app with `app_from_env`, from these variables (`serve` sets the first three):

| variable | meaning |
|---|---|
| `FEATURE_REPOSITORY` | the FeatureRepository served, `module:attribute` (default: the demo's) |
| `FEATURE_STORE_MAX_BODY_BYTES` | larger request bodies get 413 (default 16 MiB) |
| `FEATURE_STORE_MAX_HISTORICAL_ROWS` | larger entity frames get 413 (default 100,000) |
| `FEATURE_STORE_API_KEYS` / `FEATURE_STORE_API_KEYS_FILE` | the API keys (see `api_keys`); unset: the server is open |
| `FEATURE_STORE_AUDIT_LOG` | a file audit lines are appended to, besides the `feature_store.audit` logger |
| `REDIS_URL`, `OFFLINE_ROOT`, `S3_*`, `AWS_*`, `DAGSTER_HOME` | the stores and the Dagster instance, as everywhere |
"""

import logging
import os
import shutil
import sys
import tempfile

import uvicorn

from feature_assets.language.repository import load_repository
from feature_assets.serving.api_keys import KEYS_FILE_VARIABLE, api_keys_from_env
from feature_assets.serving.app import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HISTORICAL_ROWS,
    FeatureServer,
    build_app,
)
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from resources.project_redis import embedded_url
from resources.read_usage import ReadUsage, UsageCounts, usage_counts

DEFAULT_REPOSITORY = "feature_assets.demo.views:repository"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6566
REPOSITORY_VARIABLE = "FEATURE_REPOSITORY"
MAX_BODY_VARIABLE = "FEATURE_STORE_MAX_BODY_BYTES"
MAX_ROWS_VARIABLE = "FEATURE_STORE_MAX_HISTORICAL_ROWS"
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
APP_FACTORY = "feature_assets.serving.server:app_from_env"


def _server_logging() -> None:
    """Send the server's own log lines (not audit lines, which have their own file) to stderr."""
    logger = logging.getLogger("feature_store")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _flushed_totals(usage: ReadUsage, online_store: RedisOnlineStore) -> UsageCounts:
    """Return the usage totals in Redis after adding this worker's pending counts."""
    usage.flush()
    return usage_counts(online_store.client, key_prefix=online_store.key_prefix)


def app_from_env() -> FeatureServer:
    """Return the app over the stores configured by the environment (the factory each uvicorn worker calls)."""
    _server_logging()
    repository_path = os.environ.get(REPOSITORY_VARIABLE, DEFAULT_REPOSITORY)
    repository = load_repository(repository_path)
    # The app counts reads itself, under each API key's name; the store's own counting would count them twice.
    online_store = RedisOnlineStore.from_env(repository=repository_path, count_usage=False)
    usage = ReadUsage(online_store.client, key_prefix=online_store.key_prefix)
    return build_app(
        online_store,
        repository,
        OfflineStore.from_env(),
        api_keys=api_keys_from_env(),
        usage=usage,
        usage_totals=lambda: _flushed_totals(usage, online_store),
        max_body_bytes=int(os.environ.get(MAX_BODY_VARIABLE, DEFAULT_MAX_BODY_BYTES)),
        max_historical_rows=int(os.environ.get(MAX_ROWS_VARIABLE, DEFAULT_MAX_HISTORICAL_ROWS)),
    )


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    repository: str = DEFAULT_REPOSITORY,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_historical_rows: int = DEFAULT_MAX_HISTORICAL_ROWS,
    api_keys_file: str | None = None,
    access_log: bool = False,
) -> None:
    """Serve the repository's features over HTTP until interrupted (uvicorn, uvloop, httptools).

    With `workers` > 1 uvicorn runs that many processes, each building its app from the environment; they share
    one Redis (the embedded server is started here when REDIS_URL is unset) and, through
    PROMETHEUS_MULTIPROC_DIR, their request metrics.
    """
    _server_logging()
    load_repository(repository)
    os.environ[REPOSITORY_VARIABLE] = repository
    os.environ[MAX_BODY_VARIABLE] = str(max_body_bytes)
    os.environ[MAX_ROWS_VARIABLE] = str(max_historical_rows)
    if api_keys_file:
        os.environ[KEYS_FILE_VARIABLE] = api_keys_file
    api_keys_from_env()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = embedded_url()
    metrics_folder = None
    if workers > 1 and not os.environ.get(MULTIPROCESS_VARIABLE):
        metrics_folder = tempfile.mkdtemp(prefix="feature-server-metrics-")
        os.environ[MULTIPROCESS_VARIABLE] = metrics_folder
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=access_log,
            timeout_keep_alive=30,
        )
    finally:
        if metrics_folder is not None:
            shutil.rmtree(metrics_folder, ignore_errors=True)
