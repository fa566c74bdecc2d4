"""`stream run` and `stream archive`: a stream worker keeping streaming views fresh online, and the archiver copying
producers' events to the offline event log."""

import argparse

from feature_assets.streaming import archiver, worker


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `stream run [worker options]` and `stream archive [archiver options]`: the streaming processes."""
    command = commands.add_parser("stream", help="run a stream worker or archiver (see `feature-store stream --help`)")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="consume the views' Redis Streams until SIGTERM or Ctrl-C")
    worker.add_arguments(run)
    run.set_defaults(run=worker.run_worker)
    archive = actions.add_parser("archive", help="copy producers' events to the offline event log until SIGTERM")
    archiver.add_arguments(archive)
    archive.set_defaults(run=archiver.run_archiver)
