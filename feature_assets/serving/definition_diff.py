"""The plan: what changes between the applied snapshot and the current one, and which changes need a version bump.

Objects are matched by name (feature views by name and version), as `feast plan` does, and printed the same way:
`Created|Updated|Deleted <kind> <name>`, each update followed by `<field>: <old> -> <new>` lines. A feature view
version whose readers would break (a feature removed or retyped, other join keys or key dtypes, another source, a
changed aggregation, step or transformation) is refused: such a change needs a new version, and the old one stays in
`previous_versions` while clients move. Versions never go down.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["Created", "Updated", "Deleted"]
KINDS: tuple[tuple[str, str], ...] = (
    ("entities", "entity"),
    ("sources", "data source"),
    ("feature_views", "feature view"),
    ("on_demand_feature_views", "on demand feature view"),
    ("feature_services", "feature service"),
)
"""Snapshot section and the word `plan` prints for its objects, in printing order."""


class _Absent:
    """The value of a field that one side does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One field of an updated object: its dotted path, old and new value, and whether the change breaks readers."""

    path: str
    old: Any
    new: Any
    breaking: bool = False

    def render(self) -> str:
        """Return the change as `path: old -> new`, marked when breaking."""
        line = f"{self.path}: {_value(self.old)} -> {_value(self.new)}"
        return f"{line}  (breaking)" if self.breaking else line


@dataclass(frozen=True)
class Change:
    """One created, updated or deleted object, with its field changes and a note for what readers see."""

    action: Action
    kind: str
    name: str
    fields: tuple[FieldChange, ...] = ()
    note: str = ""

    def render(self) -> str:
        """Return the change as `feast plan` prints it: a heading, then one tab-indented line per field."""
        heading = f"{self.action} {self.kind} {self.name}" + (f"  ({self.note})" if self.note else "")
        return "\n".join([heading, *(f"\t{f.render()}" for f in self.fields)])


@dataclass(frozen=True)
class Plan:
    """The changes from the applied definitions to the current ones, and why applying them is refused, if it is."""

    changes: tuple[Change, ...]
    refusals: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        """Return whether some change needs a version bump first."""
        return bool(self.refusals)

    def render(self) -> str:
        """Return the plan as text, `No changes to definitions` when there are none."""
        if not self.changes:
            return "No changes to definitions"
        return "\n".join(change.render() for change in self.changes)

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON data; a value one side does not have is left out."""
        changes = []
        for change in self.changes:
            fields = []
            for f in change.fields:
                values = {key: value for key, value in (("old", f.old), ("new", f.new)) if value is not ABSENT}
                fields.append({"path": f.path, **values, "breaking": f.breaking})
            changes.append(
                {"action": change.action, "kind": change.kind, "name": change.name, "fields": fields}
                | ({"note": change.note} if change.note else {})
            )
        return {"changes": changes, "refused": self.refused, "refusals": list(self.refusals)}


def plan_changes(applied: Mapping[str, Any], current: Mapping[str, Any]) -> Plan:
    """Return the plan that turns the `applied` snapshot into the `current` one."""
    changes: list[Change] = []
    refusals: list[str] = []
    for section, kind in KINDS:
        if section == "feature_views":
            view_changes, view_refusals = _feature_view_changes(applied[section], current[section])
            changes += view_changes
            refusals += view_refusals
            continue
        old, new = applied[section], current[section]
        for name in sorted(set(old) | set(new)):
            if name not in old:
                changes.append(Change("Created", kind, name))
            elif name not in new:
                changes.append(Change("Deleted", kind, name, note=_deleted_note(section, name)))
            elif fields := _field_changes(old[name], new[name]):
                note = _on_demand_note(old[name], new[name]) if section == "on_demand_feature_views" else ""
                changes.append(Change("Updated", kind, name, tuple(fields), note))
    return Plan(tuple(changes), tuple(refusals))


def _feature_view_changes(applied: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[list[Change], list[str]]:
    """Return the changes of every feature view version, and the refusals of breaking ones without a bump."""
    changes: list[Change] = []
    refusals: list[str] = []
    for name in sorted(set(applied) | set(current)):
        old_versions, new_versions = _versions(applied.get(name)), _versions(current.get(name))
        latest_old, latest_new = max(old_versions, default=0), max(new_versions, default=0)
        if latest_new and latest_new < latest_old:
            refusals.append(
                f"FeatureView {name!r}: version went down from {latest_old} to {latest_new}; versions only "
                f"increase, so set version to {latest_old + 1}"
            )
        explicit = any(version != 1 for version in (*old_versions, *new_versions))
        for version in sorted(set(old_versions) | set(new_versions)):
            label = f"{name}@v{version}" if explicit else name
            if version not in old_versions:
                changes.append(Change("Created", "feature view", label))
                continue
            if version not in new_versions:
                note = (
                    f"clients reading version {version} lose it; keep it in previous_versions while they move"
                    if latest_new
                    else f"clients reading {name} fail once this is applied"
                )
                changes.append(Change("Deleted", "feature view", label, note=note))
                continue
            old, new = old_versions[version], new_versions[version]
            reasons = _breaking_reasons(old, new)
            fields = [
                FieldChange(f.path, f.old, f.new, any(_within(f.path, prefix) for prefix, _ in reasons))
                for f in _field_changes(old, new)
            ]
            if fields:
                changes.append(Change("Updated", "feature view", label, tuple(fields)))
            if reasons:
                refusals.append(_refusal(name, version, latest_new, [reason for _, reason in reasons]))
    return changes, refusals


def _versions(entry: Mapping[str, Any] | None) -> dict[int, dict[str, Any]]:
    """Return every version of a snapshot's feature view entry (none for a missing one) by number."""
    if entry is None:
        return {}
    current = {key: value for key, value in entry.items() if key != "previous_versions"}
    return {spec["version"]: dict(spec) for spec in entry["previous_versions"]} | {entry["version"]: current}


def _breaking_reasons(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (field path, reason) for each change of one view version that breaks its readers."""
    reasons = []
    for feature, spec in old["features"].items():
        if feature not in new["features"]:
            reasons.append((f"features.{feature}", f"feature {feature!r} removed"))
        elif spec["dtype"] != new["features"][feature]["dtype"]:
            retyped = f"feature {feature!r} retyped {spec['dtype']} -> {new['features'][feature]['dtype']}"
            reasons.append((f"features.{feature}.dtype", retyped))
    if old["join_keys"] != new["join_keys"]:
        reasons.append(("join_keys", f"join keys {_keys(old)} -> {_keys(new)}"))
    if old["source"] != new["source"]:
        reasons.append(("source", f"source {old['source']!r} -> {new['source']!r}"))
    for name, aggregation in old["aggregations"].items():
        other = new["aggregations"].get(name, aggregation)
        for part in ("column", "function", "window"):
            if aggregation[part] != other[part]:
                reasons.append(
                    (f"aggregations.{name}.{part}", f"aggregation {name!r} {part} {aggregation[part]} -> {other[part]}")
                )
    if old["aggregations"] and old["step"] != new["step"]:
        reasons.append(("step", f"step {old['step']} -> {new['step']}"))
    before, after = old["transformation"], new["transformation"]
    if (before and before["hash"]) != (after and after["hash"]):
        same_kind = before and after and before["kind"] == after["kind"]
        reasons.append(("transformation.hash" if same_kind else "transformation", "transformation changed"))
    return reasons


def _refusal(name: str, version: int, latest: int, reasons: list[str]) -> str:
    """Return the message refusing breaking changes to one version of a view, saying what to do instead."""
    if version == latest:
        return (
            f"FeatureView {name!r}: {', '.join(reasons)} (breaking); bump version to {version + 1} "
            f"(keep version {version} in previous_versions while clients move)"
        )
    return (
        f"FeatureView '{name}@v{version}': {', '.join(reasons)} (breaking); version {version} is a previous version "
        "that clients still read, so restore its applied definition and make the change in the current version"
    )


def _keys(spec: Mapping[str, Any]) -> str:
    return "[" + ", ".join(f"{key['name']}: {key['dtype']}" for key in spec["join_keys"]) + "]"


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _field_changes(old: Any, new: Any, prefix: str = "") -> list[FieldChange]:
    """Return the leaf fields that differ between two snapshot objects, as dotted paths in document order."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                changes.append(FieldChange(path, ABSENT, new[key]))
            elif key not in new:
                changes.append(FieldChange(path, old[key], ABSENT))
            else:
                changes += _field_changes(old[key], new[key], path)
        return changes
    if _value(old) != _value(new):
        return [FieldChange(prefix, old, new)]
    return []


def _value(value: Any) -> str:
    """Return a snapshot value as plan prints it: JSON text (so 1 and 1.0 differ), `(absent)` if missing."""
    return repr(value) if value is ABSENT else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _deleted_note(section: str, name: str) -> str:
    """Return what deleting an object means for its readers."""
    if section == "on_demand_feature_views":
        return f"clients reading {name} fail once this is applied"
    if section == "feature_services":
        return f"clients of the service {name} fail once this is applied"
    return ""


def _on_demand_note(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Return a warning when an on-demand view (which has no versions) changes what its readers get."""
    kept = set(old["features"]) & set(new["features"])
    breaks = (
        len(kept) < len(old["features"])
        or any(old["features"][name]["dtype"] != new["features"][name]["dtype"] for name in kept)
        or old["transformation"]["hash"] != new["transformation"]["hash"]
    )
    return "on demand views have no versions: readers get the new definition at once" if breaks else ""
