"""Audit lines: one JSON line per push, materialization or forget (who, what, when, outcome).

Lines go to the `feature_store.audit` logger and, when `FEATURE_STORE_AUDIT_LOG` names a file, are appended to it.
"Who" is the API key's name (or "anonymous" on an open server); the key itself is never written.
"""

import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from feature_assets.serving.http_errors import HttpError, status_of

AUDIT_LOG_VARIABLE = "FEATURE_STORE_AUDIT_LOG"
ANONYMOUS = "anonymous"

logger = logging.getLogger("feature_store.audit")
_files_attached: set[str] = set()
_attach_lock = threading.Lock()


def attach_audit_file(path: str | None = None) -> str | None:
    """Append audit lines to `path` (default: $FEATURE_STORE_AUDIT_LOG) as well; return the file used, if any."""
    path = path or os.environ.get(AUDIT_LOG_VARIABLE)
    if not path:
        return None
    resolved = os.path.abspath(path)
    with _attach_lock:
        if resolved not in _files_attached:
            handler = logging.FileHandler(resolved, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            _files_attached.add(resolved)
    return resolved


def audit(who: str, action: str, target: Mapping[str, object], status: int, outcome: str) -> None:
    """Write one audit line: caller, action, its target (views, source, range), HTTP status and outcome."""
    line = {
        "time": datetime.now(UTC),
        "who": who,
        "action": action,
        "target": target,
        "status": status,
        "outcome": outcome,
    }
    logger.info(orjson.dumps(line, option=orjson.OPT_UTC_Z, default=str).decode())


class Audited:
    """Writes one audit line for a write action when its block ends: ok, or the status and message it failed with."""

    def __init__(self, action: str) -> None:
        self.action, self.who, self.target, self.status = action, ANONYMOUS, {}, 200

    def __enter__(self) -> "Audited":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if error is None:
            audit(self.who, self.action, self.target, self.status, "ok")
            return
        status = status_of(error)
        message = error.message if isinstance(error, HttpError) else str(error)
        outcome = "refused" if status < 500 else "failed"
        audit(self.who, self.action, {**self.target, "error": message}, status, outcome)
