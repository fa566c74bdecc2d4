"""`serve`: the HTTP feature server (Feast's endpoints); `hash-key KEY`: the digest line of an API key's entry."""

import argparse
import sys

from feature_assets.serving.api_keys import hash_key
from feature_assets.serving.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HISTORICAL_ROWS
from feature_assets.serving.cli import output
from feature_assets.serving.server import DEFAULT_HOST, DEFAULT_PORT, serve


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `serve [--host --port --workers --max-body-bytes --api-keys-file ...]` and `hash-key KEY`."""
    command = commands.add_parser(
        "serve", parents=[common], help="run the HTTP feature server (get-online-features, push, materialize, ...)"
    )
    command.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    command.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    command.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    command.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES:,})",
    )
    command.add_argument(
        "--max-historical-rows",
        type=int,
        default=DEFAULT_MAX_HISTORICAL_ROWS,
        help=f"larger entity frames of get-historical-features get 413 (default {DEFAULT_MAX_HISTORICAL_ROWS:,})",
    )
    command.add_argument(
        "--api-keys-file",
        metavar="PATH",
        help="YAML or JSON file of API keys (default: $FEATURE_STORE_API_KEYS[_FILE]; none: the server is open)",
    )
    command.add_argument("--access-log", action="store_true", help="log every request (off by default: it is slow)")
    command.set_defaults(run=_serve)

    hashing = commands.add_parser(
        "hash-key", parents=[common], help="print the sha256 line of an API key for the keys file"
    )
    hashing.add_argument("key", metavar="KEY", help="the API key; '-' reads it from stdin (keeps it out of history)")
    hashing.set_defaults(run=_hash_key)


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        return output.fail(f"--workers must be at least 1, got {args.workers}", output.USAGE)
    serve(
        args.host,
        args.port,
        args.workers,
        args.repository,
        max_body_bytes=args.max_body_bytes,
        max_historical_rows=args.max_historical_rows,
        api_keys_file=args.api_keys_file,
        access_log=args.access_log,
    )
    return output.OK


def _hash_key(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip() if args.key == "-" else args.key
    if not key:
        return output.fail("the key is empty", output.USAGE)
    digest = hash_key(key)
    if args.json:
        output.print_json({"sha256": digest})
    else:
        print(f"sha256: {digest}")
    return output.OK
