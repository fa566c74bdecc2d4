"""The verdict of one check on one partition, before orchestration turns it into a Dagster evaluation."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckOutcome:
    """A check's verdict on one partition, its one-line summary and metadata."""

    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)
