"""`stream run`: a stream worker keeping streaming views' windowed aggregations fresh online."""

import argparse

from feature_assets.streaming import worker


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `stream run [worker options]`, the same process as `python -m feature_assets.streaming.worker`."""
    command = commands.add_parser("stream", help="run a stream worker (see `feature-store stream run --help`)")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="consume the views' Redis Streams until SIGTERM or Ctrl-C")
    worker.add_arguments(run)
    run.set_defaults(run=worker.run_worker)
