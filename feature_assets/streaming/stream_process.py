"""What the stream processes (the worker and the archiver) share: their common options, the views they run, and
the event that stops their loop."""

import argparse
import gc
import signal
import threading

import redis
from redis.cluster import RedisCluster

from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import load_repository


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every stream process takes: the repository, its views and the Redis key prefix."""
    parser.add_argument("--repository", default="feature_assets.demo.views:repository")
    parser.add_argument("--views", default="", help="comma-separated streaming views (default: all of them)")
    parser.add_argument("--key-prefix", default="fs")


def process_views(args: argparse.Namespace) -> list[FeatureView]:
    """Return the views named by `--views`, or every streaming view of `--repository`."""
    repository = load_repository(args.repository)
    names = [name for name in args.views.split(",") if name]
    return [repository.view(name) for name in names] or [v for v in repository.views.values() if v.streaming]


def create_group(client: redis.Redis | RedisCluster, stream: str, group: str) -> None:
    """Create a stream and its consumer group when missing, the group reading from the stream's start."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def stop_event() -> threading.Event:
    """Return an event SIGTERM and SIGINT set, once start-up objects are frozen out of the garbage collector.

    Batches allocate many short-lived lists; without the freeze, each full collection walks everything start-up
    built (Dagster, Polars, the definitions) again.
    """
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    gc.freeze()
    return stop
