"""Exceptions raised by the feature store, each naming what is wrong and what to do."""


def first_line(error: Exception) -> str:
    """Return the first line of an engine's error message (or its class name), to quote in our own message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class FeatureStoreError(Exception):
    """Base class of every error the feature store raises on purpose."""


class DefinitionError(FeatureStoreError, ValueError):
    """A feature definition (entity, field, view, service) is invalid."""


class FeatureReferenceError(FeatureStoreError, KeyError):
    """A `view:feature` reference names a view or feature that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EntityFrameError(FeatureStoreError, ValueError):
    """An entity frame or entity row lacks a join key, has a wrong dtype or a bad timestamp."""


class SourceSchemaError(FeatureStoreError, ValueError):
    """A source's files lack a column the view needs or hold it with an unusable dtype."""


class TransformationOutputError(FeatureStoreError, ValueError):
    """A view's transformation produced a frame that does not match the declared schema."""


class OnlineStoreError(FeatureStoreError, RuntimeError):
    """The online store could not complete a read or a write."""


class PushError(FeatureStoreError, ValueError):
    """Rows pushed to a view do not fit it (columns, dtypes or checks); nothing was written."""
