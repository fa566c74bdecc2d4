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


@dataclass(frozen=True)
class PushSource:
    """Rows pushed to the store as they happen, beside a Parquet `batch_source` holding the same columns' history.

    A view on a push source takes `push(view, rows)`: rows go online at once and, offline, to the view's event log,
    which its daily partitions include next to the batch rows. The source's timestamp columns are the batch source's.
    """

    name: str
    batch_source: ParquetSource
    description: str = ""
    owner: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.name, "PushSource")
        if not isinstance(self.batch_source, ParquetSource):
            raise DefinitionError(
                f"PushSource {self.name!r}: batch_source must be a ParquetSource holding the view's history, "
                f"got {type(self.batch_source).__name__}"
            )

    @property
    def path(self) -> str:
        """Return the batch source's path."""
        return self.batch_source.path

    @property
    def timestamp_field(self) -> str:
        """Return the batch source's event time column."""
        return self.batch_source.timestamp_field

    @property
    def created_timestamp_field(self) -> str | None:
        """Return the batch source's created time column, if any."""
        return self.batch_source.created_timestamp_field

    @property
    def columns_read(self) -> tuple[str, ...]:
        """Return the timestamp columns the store itself reads from the batch source."""
        return self.batch_source.columns_read


@dataclass(frozen=True)
class StreamSource(PushSource):
    """Events arriving on Redis Streams, beside a Parquet `batch_source` holding their history.

    A view on a stream source keeps windowed aggregations fresh online: events pushed to it (or appended by
    producers to its `partitions` Redis Streams, chosen by entity hash) are applied by stream workers to per-entity
    tiles, while its daily partitions aggregate the batch source and the pushed events with the same definitions.
    """

    partitions: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.partitions, int) or not 1 <= self.partitions <= 1024:
            raise DefinitionError(
                f"StreamSource {self.name!r}: partitions must be an integer from 1 to 1024, got {self.partitions!r}"
            )


Source = ParquetSource | PushSource | StreamSource
