"""Quality: each check's verdict on a partition, statistics, drift, the gate and alerts; no asset is defined here."""

from feature_assets.quality.check_outcome import CheckOutcome
from feature_assets.quality.gate import QUARANTINED, GateStatus, passed_materialization, schema_check_status
from feature_assets.quality.schema_validation import ValidationReport, pandera_schema, validate_partition

__all__ = [
    "CheckOutcome",
    "GateStatus",
    "QUARANTINED",
    "ValidationReport",
    "pandera_schema",
    "passed_materialization",
    "schema_check_status",
    "validate_partition",
]
