"""`push FILE`: rows from a Parquet, CSV or JSON file pushed to a view or to every view on a push source."""

import argparse
from pathlib import Path
from typing import get_args

import polars as pl

from feature_assets.language.errors import PushError
from feature_assets.language.repository import load_repository
from feature_assets.serving.cli import output
from feature_assets.streaming.push import PushResult, PushTarget, push, push_to_source
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

READERS = {
    ".parquet": pl.read_parquet,
    ".csv": lambda path: pl.read_csv(path, try_parse_dates=True),
    ".json": pl.read_json,
    ".jsonl": pl.read_ndjson,
    ".ndjson": pl.read_ndjson,
}


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `push FILE (--view VIEW | --source SOURCE) [--to ...]`."""
    command = commands.add_parser("push", parents=[common], help="push rows from a file (validated; all or nothing)")
    command.add_argument("file", metavar="FILE", type=Path, help=f"rows as {', '.join(READERS)}")
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument("--view", help="the view on a PushSource or StreamSource to push to")
    target.add_argument("--source", help="push to every view on this push source (Feast's push_source_name)")
    command.add_argument("--to", choices=get_args(PushTarget), default="online_and_offline")
    command.set_defaults(run=_run)


def read_rows(path: Path) -> pl.DataFrame:
    """Return the rows of a Parquet, CSV, JSON (list of objects) or JSON-lines file."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PushError(f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(READERS)}")
    if not path.is_file():
        raise PushError(f"{path}: no such file")
    try:
        return reader(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise PushError(f"{path}: cannot read the rows: {str(error).splitlines()[0]}") from None


def _run(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    rows = read_rows(args.file)
    online = RedisOnlineStore.from_env(repository=args.repository) if args.to != "offline" else None
    offline = OfflineStore.from_env() if args.to != "online" else None
    try:
        if args.view:
            results: dict[str, PushResult] = {
                args.view: push(repository.view(args.view), rows, args.to, online_store=online, offline_store=offline)
            }
        else:
            results = push_to_source(repository, args.source, rows, args.to, online_store=online, offline_store=offline)
    finally:
        if online is not None:
            online.close()
    table = [
        {
            "view": view,
            "rows": result.rows,
            "online written": result.online_replaced,
            "offline files": len(result.offline_files),
            "arrival": result.arrival,
        }
        for view, result in results.items()
    ]
    output.print_table(table, ["view", "rows", "online written", "offline files", "arrival"], as_json=args.json)
    return output.OK
