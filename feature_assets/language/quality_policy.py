"""Thresholds of a feature view's warning checks: null rate, row count, drift, online/offline consistency, freshness."""

from dataclasses import dataclass

from feature_assets.language.errors import DefinitionError


@dataclass(frozen=True)
class QualityPolicy:
    """When a view's non-blocking checks warn; a Field's `max_null_pct` overrides `max_null_pct` for that field."""

    max_null_pct: float = 5.0
    baseline_partitions: int = 7
    max_row_count_change: float = 0.5
    max_psi: float = 0.2
    max_ks: float = 0.2
    freshness_deadline_cron: str = "0 3 * * *"
    consistency_sample: int = 200
    max_mismatch_rate: float = 0.01
    max_stream_age_minutes: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_null_pct <= 100:
            raise DefinitionError(f"QualityPolicy: max_null_pct must be within 0..100, got {self.max_null_pct}")
        if self.baseline_partitions < 2:
            raise DefinitionError("QualityPolicy: baseline_partitions must be at least 2")
        for name in ("max_row_count_change", "max_psi", "max_ks", "max_mismatch_rate", "max_stream_age_minutes"):
            if getattr(self, name) < 0:
                raise DefinitionError(f"QualityPolicy: {name} must not be negative")
        if self.consistency_sample < 1:
            raise DefinitionError("QualityPolicy: consistency_sample must be at least 1")
