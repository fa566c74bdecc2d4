"""What the command line prints: aligned tables for people, JSON for scripts, and the exit codes scripts rely on."""

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from rich.console import Console
from rich.table import Table

OK = 0
FAILED = 1
USAGE = 2
REFUSED = 3
UNAVAILABLE = 4


def _plain(value: object) -> object:
    """Return `value` as something JSON can hold (times as ISO text, durations in seconds)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def _text(value: object) -> str:
    """Return `value` as one table cell."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    plain = _plain(value)
    return plain if isinstance(plain, str) else str(plain)


def _console() -> Console:
    """Return a console for stdout; piped output is not cut to 80 columns."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000)


def print_json(data: object) -> None:
    """Print `data` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(_plain(data), indent=2, default=str) + "\n")


def print_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], *, as_json: bool, title: str | None = None
) -> None:
    """Print rows as an aligned table, or as a JSON list of objects with `as_json`."""
    if as_json:
        print_json([{column: row.get(column) for column in columns} for row in rows])
        return
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_text(row.get(column)) for column in columns))
    _console().print(table)


def print_record(record: Mapping[str, object], *, as_json: bool) -> None:
    """Print one object as aligned `field  value` lines, or as a JSON object with `as_json`."""
    if as_json:
        print_json(record)
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in record.items():
        table.add_row(name, _text(value))
    _console().print(table)


def fail(message: str, code: int = FAILED) -> int:
    """Print `error: message` on stderr and return the exit code to end with."""
    sys.stderr.write(f"error: {message}\n")
    return code
