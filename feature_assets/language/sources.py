"""Data sources that feature views read from."""

from dataclasses import dataclass

from feature_assets.language.errors import DefinitionError
from feature_assets.language.names import validate_name


@dataclass(frozen=True)
class ParquetSource:
    """Raw rows in Parquet files: a path or glob, local or `s3://`, relative paths under the offline root."""

    name: str
    path: str
    timestamp_field: str
    created_timestamp_field: str | None = None
    description: str = ""
    owner: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.name, "ParquetSource")
        if not self.path:
            raise DefinitionError(f"ParquetSource {self.name!r}: path is empty")
        if not self.timestamp_field:
            raise DefinitionError(f"ParquetSource {self.name!r}: timestamp_field is required")

    @property
    def columns_read(self) -> tuple[str, ...]:
        """Return the timestamp columns the store itself reads from this source."""
        created = (self.created_timestamp_field,) if self.created_timestamp_field else ()
        return (self.timestamp_field, *created)
