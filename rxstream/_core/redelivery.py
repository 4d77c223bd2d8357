"""Redelivery and the error policy: failures counted per message, their back-off, and when to give up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple, cast

from ..errors import ConfigurationError
from ..events import OFFSET, PARTITION, TOPIC, Row

__all__ = ["Decision", "ErrorPolicy", "Redeliveries"]

OnError = Literal["dead_letter", "skip", "crash"]
ON_ERROR_CHOICES: tuple[str, ...] = ("dead_letter", "skip", "crash")

Action = Literal["redeliver", "retry", "dead_letter", "skip", "crash"]
"""What a failure leads to: a redelivery after a back-off (a rejected message), a retry by the reader that
raised (it gets the message back when it restarts), or, once redeliveries ran out, the policy's action."""


class ErrorPolicy(NamedTuple):
    """What happens to a message that cannot be processed: redeliveries first, then this."""

    on_error: OnError = "dead_letter"
    dead_letter: str | None = None
    max_redeliveries: int = 3
    backoff: float = 0.05

    @classmethod
    def make(
        cls, on_error: str, dead_letter: str | None, max_redeliveries: int, backoff: float = 0.05
    ) -> ErrorPolicy:
        """Validate the user's settings."""
        if on_error not in ON_ERROR_CHOICES:
            raise ConfigurationError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if (
            isinstance(max_redeliveries, bool)
            or not isinstance(max_redeliveries, int)
            or max_redeliveries < 0
        ):
            raise ConfigurationError(f"max_redeliveries must be an integer >= 0, got {max_redeliveries!r}")
        return cls(cast(OnError, on_error), dead_letter, max_redeliveries, backoff)

    def delay(self, attempts: int) -> float:
        """The wait before redelivering a message rejected ``attempts`` times: doubling from ``backoff``."""
        return self.backoff * 2.0 ** (attempts - 1)


class Decision(NamedTuple):
    """What one more failure of a message leads to, after how many failures, and (to redeliver) when."""

    action: Action
    attempts: int
    delay: float = 0.0


class Redeliveries:
    """How often each message (by topic, partition and offset) failed, and what its next failure leads to.

    A redelivered copy has the offset of its original, so their failures add up; an acknowledgment of
    either clears them.
    """

    __slots__ = ("attempts",)

    def __init__(self) -> None:
        self.attempts: dict[tuple[str, int, int], int] = {}
        """Failures per (topic, partition, offset) of messages not yet done; empty in the common case."""

    def failed(self, message: Row, policy: ErrorPolicy, *, rejected: bool) -> Decision:
        """Count one more failure of ``message`` (``rejected`` by its reader, else raised) and decide."""
        key = (message[TOPIC], message[PARTITION], message[OFFSET])
        attempts = self.attempts[key] = self.attempts.get(key, 0) + 1
        if attempts <= policy.max_redeliveries:
            if rejected:
                return Decision("redeliver", attempts, policy.delay(attempts))
            return Decision("retry", attempts)
        return Decision(policy.on_error, attempts)

    def clear(self, messages: Iterable[Row]) -> None:
        """Forget the failures of messages that are done."""
        pop = self.attempts.pop
        for message in messages:
            pop((message[TOPIC], message[PARTITION], message[OFFSET]), None)

    def forget(self, gone: set[tuple[str, int]]) -> None:
        """Drop the counts of partitions that moved away."""
        attempts = self.attempts
        for key in [k for k in attempts if (k[0], k[1]) in gone]:
            del attempts[key]
