"""Helpers for tests: `AgentTestContext` (an agent without a broker) and, in `rxstream.testing.conformance`,
the transport conformance suite every transport (memory, Kafka, yours) must pass (it needs pytest; see its
docstring for how to run it against a transport)."""

from __future__ import annotations

from typing import Any

from .agent_context import AgentTestContext

__all__ = [
    "AgentTestContext",
    "ConsumerProbe",
    "RebalanceRecorder",
    "TransportConformance",
    "fresh_name",
    "poll_until",
]

_CONFORMANCE = frozenset(__all__) - {"AgentTestContext"}


def __getattr__(name: str) -> Any:
    """The conformance suite's names, imported on first use (they need pytest; AgentTestContext does not)."""
    if name in _CONFORMANCE:
        from . import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
