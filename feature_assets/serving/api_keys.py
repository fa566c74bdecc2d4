"""API keys of the HTTP feature server: who may read, push, materialize or forget which services and views.

The keys come from `FEATURE_STORE_API_KEYS` (the document itself) or from the file named by
`FEATURE_STORE_API_KEYS_FILE`, in YAML or JSON: a list of entries, each holding the SHA-256 digest of a key,
never the key itself (`feature-store hash-key KEY` prints the digest line)::

    - name: ranking-service                 # shown in audit lines and usage counts as the caller
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      grants:
        services: [trip_ranking]            # feature services it may use ("*": every service)
        views: ["*"]                        # feature views (and on-demand views) it may use ("*": every view)
      actions: [read]                       # any of read, push, materialize, forget

Clients send `Authorization: Bearer <key>` (or `X-API-Key: <key>`). A read of a service needs the service in the
grants, or every view it reads; a read of features, a push (every view the push source feeds) and a materialization
need each view. With no keys configured the server is open. Keys are compared by digest with
`hmac.compare_digest`, and neither keys nor digests are ever logged.
"""

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import yaml

from feature_assets.language.errors import DefinitionError
from feature_assets.serving.http_errors import HttpError

Action = Literal["read", "push", "materialize", "forget"]
ANYTHING = "*"
KEYS_VARIABLE = "FEATURE_STORE_API_KEYS"
KEYS_FILE_VARIABLE = "FEATURE_STORE_API_KEYS_FILE"
_BEARER = b"bearer "
_CHALLENGE = ((b"www-authenticate", b'Bearer realm="feature-store"'),)


def hash_key(key: str) -> str:
    """Return the hex SHA-256 digest of an API key, as written in the keys file."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its caller name, its digest, the services and views it may use, and its actions."""

    name: str
    digest: bytes
    services: frozenset[str]
    views: frozenset[str]
    actions: frozenset[str]

    def may_use_view(self, view: str) -> bool:
        """Return whether the key's grants include `view`."""
        return ANYTHING in self.views or view in self.views

    def require(self, action: Action, views: Iterable[str] = (), service: str | None = None) -> None:
        """Raise 403 unless the key may do `action` on every view (or on `service`, else every view it reads)."""
        if action not in self.actions:
            raise HttpError(403, f"API key {self.name!r} may not {action}; its actions are {sorted(self.actions)}")
        if service is not None and (ANYTHING in self.services or service in self.services):
            return
        refused = sorted({view for view in views if not self.may_use_view(view)})
        if refused:
            what = (
                f"feature service {service!r} (views {refused} are not granted either)"
                if service
                else (f"view(s) {refused}")
            )
            raise HttpError(
                403,
                f"API key {self.name!r} may not {action} {what}; it is granted services {sorted(self.services)} "
                f"and views {sorted(self.views)}",
            )


class ApiKeys:
    """The configured keys, checked against the key a request presents."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        names = [key.name for key in keys]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DefinitionError(f"API keys: names {repeated} appear twice; give each key its own name")
        self.keys = tuple(keys)

    def authenticate(self, presented: bytes | None) -> ApiKey:
        """Return the key whose digest matches the presented key, or raise 401."""
        if not presented:
            message = "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            raise HttpError(401, message, _CHALLENGE)
        digest = hashlib.sha256(presented).digest()
        match = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                match = key
        if match is None:
            raise HttpError(401, "the API key is not valid; ask for a key or check the one you send", _CHALLENGE)
        return match


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """Return the key a request carries in `Authorization: Bearer` or `X-API-Key`, if any."""
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == _BEARER:
            return value[7:].strip()
        if name == b"x-api-key":
            return value.strip()
    return None


def parse_api_keys(text: str, where: str) -> ApiKeys:
    """Return the keys of a YAML or JSON keys document, or raise naming the entry and field that is wrong."""
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DefinitionError(f"{where}: not YAML or JSON ({error})") from error
    if not isinstance(entries, list):
        raise DefinitionError(f"{where}: expected a list of keys, each with name, sha256, grants and actions")
    return ApiKeys([_parse_entry(entry, f"{where}: entry {index}") for index, entry in enumerate(entries)])


def _parse_entry(entry: object, where: str) -> ApiKey:
    if not isinstance(entry, Mapping):
        raise DefinitionError(f"{where}: expected a mapping with name, sha256, grants and actions")
    name, digest = entry.get("name"), entry.get("sha256")
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{where}: 'name' must be a non-empty string")
    where = f"{where} ({name!r})"
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise DefinitionError(f"{where}: 'sha256' must be 64 hex digits; print it with `feature-store hash-key KEY`")
    unknown = sorted(set(entry) - {"name", "sha256", "grants", "actions"})
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {unknown}; use name, sha256, grants, actions")
    grants = entry.get("grants") or {}
    if not isinstance(grants, Mapping) or set(grants) - {"services", "views"}:
        raise DefinitionError(f"{where}: 'grants' must be a mapping with 'services' and/or 'views' lists")
    actions = _names(entry.get("actions"), f"{where} actions")
    wrong = sorted(actions - set(get_args(Action)))
    if wrong:
        raise DefinitionError(f"{where}: unknown action(s) {wrong}; use {list(get_args(Action))}")
    return ApiKey(
        name=name,
        digest=bytes.fromhex(digest),
        services=_names(grants.get("services", []), f"{where} grants.services"),
        views=_names(grants.get("views", []), f"{where} grants.views"),
        actions=actions,
    )


def _names(values: object, where: str) -> frozenset[str]:
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise DefinitionError(f'{where}: expected a list of names ("*" for all)')
    return frozenset(values)


def api_keys_from_env(environ: Mapping[str, str] = os.environ) -> ApiKeys | None:
    """Return the keys from FEATURE_STORE_API_KEYS or the file in FEATURE_STORE_API_KEYS_FILE; None when neither."""
    text = environ.get(KEYS_VARIABLE)
    if text:
        return parse_api_keys(text, KEYS_VARIABLE)
    path = environ.get(KEYS_FILE_VARIABLE)
    if path:
        return load_api_keys(path)
    return None


def load_api_keys(path: str | os.PathLike[str]) -> ApiKeys:
    """Return the keys of a YAML or JSON keys file."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise DefinitionError(f"API keys file {os.fspath(path)!r} cannot be read: {error}") from error
    return parse_api_keys(text, f"API keys file {os.fspath(path)!r}")
