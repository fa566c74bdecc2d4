"""The `feature-store` command: one console script, one module per noun, each adding its subcommands."""

import argparse
import os
import sys
from collections.abc import Sequence

import redis

from feature_assets.language.errors import FeatureStoreError, OnlineStoreError
from feature_assets.serving.cli import output

DEFAULT_REPOSITORY = "feature_assets.demo.views:repository"
NOUNS: tuple[str, ...] = (
    "catalog",
    "definitions",
    "forget",
    "materialize",
    "online",
    "push",
    "quality",
    "serve",
    "stream",
    "versions",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand; each one's `run(args) -> exit code` is in its defaults."""
    import importlib

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repository",
        default=os.environ.get("FEATURE_REPOSITORY", DEFAULT_REPOSITORY),
        help="FeatureRepository as module:attribute (default: $FEATURE_REPOSITORY or the demo's)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    parser = argparse.ArgumentParser(prog="feature-store", description="Read, change and operate the feature store.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for noun in NOUNS:
        importlib.import_module(f"feature_assets.serving.cli.{noun}").register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code (0 ok, 1 failed, 2 usage, 3 refused, 4 unavailable)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except OnlineStoreError as error:
        return output.fail(str(error), output.UNAVAILABLE)
    except redis.exceptions.ConnectionError as error:
        return output.fail(f"Redis is unreachable ({error}); start it or set REDIS_URL", output.UNAVAILABLE)
    except FeatureStoreError as error:
        return output.fail(str(error))
    except KeyboardInterrupt:
        return output.fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
