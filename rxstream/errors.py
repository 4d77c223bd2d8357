"""One error hierarchy for rxstream: every error names the thing that was wrong and what to do."""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "ImproperlyConfigured",
    "RxStreamError",
    "StreamConsumedError",
    "StreamError",
    "TransportError",
    "ValidationError",
]


class RxStreamError(Exception):
    """Base class of every error rxstream raises."""


class ConfigurationError(RxStreamError, ValueError):
    """An argument or setting has a value rxstream cannot use."""


ImproperlyConfigured = ConfigurationError


class StreamError(RxStreamError):
    """A stream was used in a way streams do not support."""


class StreamConsumedError(StreamError):
    """A stream was iterated a second time; a stream has a single consumer (use `tee`)."""


class ValidationError(RxStreamError, ValueError):
    """A record field has a value of the wrong type or is missing."""


class DecodeError(RxStreamError):
    """A message's key or value could not be decoded; names topic, partition, offset and the reason."""


class EncodeError(RxStreamError):
    """A key or value could not be encoded for sending."""


class TransportError(RxStreamError):
    """The broker could not be reached or refused an operation."""


class AgentError(RxStreamError):
    """An agent failed in a way its supervisor could not recover from."""
