"""One error hierarchy for rxstream: every error names the thing that was wrong and what to do."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentError",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "GroupPairUsedAsValue",
    "ImproperlyConfigured",
    "MissingDependencyError",
    "ReadOnlyError",
    "RxStreamError",
    "StreamConsumedError",
    "StreamEmptyError",
    "StreamError",
    "TableError",
    "TransactionFencedError",
    "TransportError",
    "ValidationError",
]


class RxStreamError(Exception):
    """Base class of every error rxstream raises."""


class ConfigurationError(RxStreamError, ValueError):
    """An argument or setting has a value rxstream cannot use."""


ImproperlyConfigured = ConfigurationError


class ReadOnlyError(RxStreamError, AttributeError):
    """An attribute that is read-only was assigned; the message names it and what to do instead."""


class StreamError(RxStreamError):
    """A stream was used in a way streams do not support."""


class GroupPairUsedAsValue(StreamError, AttributeError):
    """A (key, substream) pair of group_by was used as a value, as a loop written for Faust would."""


class StreamConsumedError(StreamError):
    """A stream was iterated a second time; a stream has a single consumer (use `tee`)."""


class StreamEmptyError(StreamError):
    """A stream completed before it produced the value that was asked for."""


class ValidationError(RxStreamError, ValueError):
    """A record field has a value of the wrong type or is missing."""


class DecodeError(RxStreamError):
    """A message's key or value could not be decoded; names topic, partition, offset and the reason.

    Re-raise with where it happened: `raise DecodeError(exc.reason, topic=t, partition=p, offset=o) from exc`.
    """

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: Any = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        super().__init__(self._describe())

    def _describe(self) -> str:
        """The message: the context that was given, then the reason."""
        where = []
        if self.topic is not None:
            where.append(f"topic {self.topic!r}")
        if self.partition is not None:
            where.append(f"partition {self.partition}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        if self.key is not None:
            key = repr(self.key)
            where.append(f"key {key if len(key) <= 80 else key[:77] + '...'}")
        return f"cannot decode message ({', '.join(where)}): {self.reason}" if where else self.reason


class EncodeError(RxStreamError):
    """A key or value could not be encoded for sending."""


class TableError(RxStreamError):
    """A table was used in a way tables do not support; the message names the table, key and partition."""


class TransportError(RxStreamError):
    """The broker could not be reached or refused an operation."""


class TransactionFencedError(TransportError):
    """A partition's transaction was refused: another member took the partition (this one is a zombie)."""


class MissingDependencyError(RxStreamError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class AgentError(RxStreamError):
    """An agent failed in a way its supervisor could not recover from."""
