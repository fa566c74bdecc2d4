"""Export of the definitions as YAML for other tools, and import of such YAML as a snapshot to plan against.

Python stays the source of truth: an imported document is only compared with the Python definitions; nothing
writes code from it. The document's shape is the snapshot's (`definition_schema`): top-level `format_version`,
`entities`, `sources`, `feature_views`, `on_demand_feature_views` and `feature_services`.
"""

from typing import Any

import yaml

from feature_assets.language.errors import DefinitionError
from feature_assets.serving.definition_schema import validate_snapshot

HEADER = (
    "# Feature store definitions, exported by `feature-store export`. The Python definitions are the source of\n"
    "# truth; `feature-store import FILE` shows how a document like this differs from them and changes nothing.\n"
)


def export_yaml(snapshot: dict[str, Any]) -> str:
    """Return the snapshot as a YAML document with sorted keys, under a header saying where it came from."""
    return HEADER + yaml.safe_dump(snapshot, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def import_yaml(text: str, where: str) -> dict[str, Any]:
    """Return the snapshot a YAML document holds, or raise naming the line or the path inside it that is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise DefinitionError(f"{where} is not valid YAML{place}: {problem}") from None
    return validate_snapshot(document, where)
