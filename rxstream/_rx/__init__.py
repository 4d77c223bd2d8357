"""The one place that knows reactivex: batches of values flow through Rx operators on the asyncio loop.

Values travel in micro-batches (``Batch``) so that per-value work is a C-level loop over a list and the Rx and
asyncio machinery is paid once per batch, not once per value. A batch keeps, beside its values, the
references its values came from (messages) and whoever delivered them (the acknowledger), so events are
materialised only when asked for and acknowledgments find their way back to the transport.

Modules: ``batch`` (Batch, its references and failures; the reference types and their acknowledgers are
``rxstream._core.refs``), ``flow`` (Context, backpressure), ``sources``, ``operators`` (map, filter, side
effects; which references a filter acknowledges when is ``rxstream._core.sift``), ``expand`` (flat_map),
``timing`` (take, buffer, rate_limit), ``joins``, ``pipe`` (raw reactivex operators), ``grouping``
(group_by), ``sink`` (async iteration, collect, subscribe), ``fencing`` (batches of partitions a rebalance
is deciding on wait, and what it revoked is dropped: ``rxstream._core.fence``).
"""

from reactivex import Observable
from reactivex.abc import DisposableBase, SchedulerBase

from .._core.refs import Ref, describe_ref, sources_of
from .batch import ACK_EVERY, BATCH_SIZE, Batch, Failure, failed, failure_of
from .expand import flat_map_values
from .flow import Context, Flow, Operator, now
from .grouping import GroupDealer, GroupSubject, grouped
from .joins import joined, lookup_join
from .operators import enumerate_values, filter_values, is_async, map_values, rerouted, side_effect, transform
from .pipe import describe_operator, with_values_operators
from .sink import Cursor, collect, events_of, iterate, subscribe_values
from .sources import (
    batch_of,
    chunks_of,
    chunks_of_async,
    concatenated,
    deferred,
    from_values_observable,
    merged,
    on_end,
    pump,
)
from .timing import rate_limited, stopping_after, take_batches

__all__ = [
    "ACK_EVERY",
    "BATCH_SIZE",
    "Batch",
    "Context",
    "Cursor",
    "DisposableBase",
    "Failure",
    "Flow",
    "GroupDealer",
    "GroupSubject",
    "Observable",
    "Operator",
    "Ref",
    "SchedulerBase",
    "batch_of",
    "chunks_of",
    "chunks_of_async",
    "collect",
    "concatenated",
    "deferred",
    "describe_operator",
    "describe_ref",
    "enumerate_values",
    "events_of",
    "failed",
    "failure_of",
    "filter_values",
    "flat_map_values",
    "from_values_observable",
    "grouped",
    "is_async",
    "iterate",
    "joined",
    "lookup_join",
    "map_values",
    "merged",
    "now",
    "on_end",
    "pump",
    "rate_limited",
    "rerouted",
    "side_effect",
    "sources_of",
    "stopping_after",
    "subscribe_values",
    "take_batches",
    "transform",
    "with_values_operators",
]
