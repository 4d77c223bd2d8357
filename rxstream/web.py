"""The worker's web endpoints: Prometheus ``/metrics``, ``/stats`` JSON, ``/health``, table lookups, and
the pages the app declared with ``@app.page`` (`rxstream.views`; ``Request``, ``Response`` and ``View`` are
importable from here, as in Faust).

>>> server = WebServer(app, port=6066)        # rxstream worker -A shop:app --web-port 6066
>>> await server.start()

Needs the ``web`` extra (``pip install 'rxstream[web]'``: aiohttp and prometheus_client).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .monitor import Histogram, Monitor, PartitionStats
from .tables.stores.base import MISSING
from .transport.partitioner import partition_for
from .views import View, dumps

try:
    from aiohttp import web
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        f"the worker's web endpoints need the 'web' extra: pip install 'rxstream[web]' ({exc})"
    ) from exc

if TYPE_CHECKING:
    from .app import App

__all__ = ["Request", "Response", "View", "WebServer", "metrics_text"]

Request = web.Request
Response = web.Response

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DESTINATION = ["messaging_destination_name", "messaging_destination_partition_id"]
_GROUP = "messaging_consumer_group_name"


class _MonitorCollector:
    """Turns a monitor's counters into Prometheus metric families at each scrape."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        group = monitor.app.id
        labels = [*_DESTINATION, _GROUP]

        def family(kind: type[Any], name: str, doc: str, extra: list[str] | None = None) -> Any:
            return kind(name, doc, labels=extra if extra is not None else labels)

        consumed = family(
            CounterMetricFamily,
            "messaging_client_consumed_messages",
            "Messages fetched and handed to readers.",
        )
        acknowledged = family(
            CounterMetricFamily, "rxstream_acknowledged_messages", "Messages every reader acknowledged."
        )
        errors = family(CounterMetricFamily, "rxstream_processing_errors", "Messages an agent raised on.")
        redelivered = family(
            CounterMetricFamily, "rxstream_redeliveries", "Messages redelivered after a reject."
        )
        dead = family(CounterMetricFamily, "rxstream_dead_letters", "Messages sent to a dead-letter topic.")
        lag = family(GaugeMetricFamily, "rxstream_consumer_lag", "End offset minus committed offset.")
        committed = family(GaugeMetricFamily, "rxstream_committed_offset", "The offset last committed.")
        acks = monitor.acknowledged()
        redeliveries = monitor.redeliveries()
        for tp in sorted(set(monitor.partitions) | set(redeliveries)):
            stats = monitor.partitions.get(tp) or PartitionStats()
            values = [tp.topic, str(tp.partition), group]
            consumed.add_metric(values, stats.received)
            acknowledged.add_metric(values, acks.get(tp, 0))
            errors.add_metric(values, stats.errors)
            redelivered.add_metric(values, redeliveries.get(tp, 0))
            dead.add_metric(values, stats.dead_lettered)
            if stats.lag is not None:
                lag.add_metric(values, stats.lag)
            if stats.committed is not None:
                committed.add_metric(values, stats.committed)
        yield from (consumed, acknowledged, errors, redelivered, dead, lag, committed)

        sent = family(
            CounterMetricFamily,
            "messaging_client_sent_messages",
            "Values stored in a topic.",
            ["messaging_destination_name"],
        )
        for topic, count in sorted(monitor.sent.items()):
            sent.add_metric([topic], count)
        yield sent

        agent_labels = ["rxstream_agent", _GROUP]
        duration = family(
            HistogramMetricFamily,
            "messaging_process_duration_seconds",
            "Seconds an agent spent on a batch.",
            agent_labels,
        )
        events = family(
            CounterMetricFamily, "rxstream_agent_events", "Events an agent went through.", agent_labels
        )
        yielded = family(
            CounterMetricFamily, "rxstream_agent_yielded_values", "Values an agent yielded.", agent_labels
        )
        failures = family(
            CounterMetricFamily, "rxstream_agent_errors", "Times an agent raised.", agent_labels
        )
        for name, agent in sorted(monitor.agents.items()):
            _histogram(duration, [name, group], agent.processing)
            events.add_metric([name, group], agent.events)
            yielded.add_metric([name, group], agent.yielded)
            failures.add_metric([name, group], agent.errors)
        yield from (duration, events, yielded, failures)

        commits = family(CounterMetricFamily, "rxstream_commits", "Offset commits.", [_GROUP])
        commits.add_metric([group], monitor.commits)
        commit_failures = family(
            CounterMetricFamily, "rxstream_commit_failures", "Offset commits that failed.", [_GROUP]
        )
        commit_failures.add_metric([group], monitor.commit_failures)
        commit_seconds = family(
            HistogramMetricFamily, "rxstream_commit_duration_seconds", "Seconds a commit took.", [_GROUP]
        )
        _histogram(commit_seconds, [group], monitor.commit_latency)
        rebalances = family(CounterMetricFamily, "rxstream_rebalances", "Rebalances handled.", [_GROUP])
        rebalances.add_metric([group], monitor.rebalance_count)
        rebalance_seconds = family(
            HistogramMetricFamily,
            "rxstream_rebalance_duration_seconds",
            "Seconds handling a rebalance took (table recovery included).",
            [_GROUP],
        )
        _histogram(rebalance_seconds, [group], monitor.rebalance_latency)
        yield from (commits, commit_failures, commit_seconds, rebalances, rebalance_seconds)

        table_labels = ["rxstream_table", "messaging_destination_partition_id"]
        done = family(
            GaugeMetricFamily, "rxstream_recovery_records", "Changelog records recovered.", table_labels
        )
        total = family(
            GaugeMetricFamily,
            "rxstream_recovery_records_target",
            "Changelog records to recover.",
            table_labels,
        )
        rate = family(
            GaugeMetricFamily,
            "rxstream_recovery_rate",
            "Changelog records recovered per second.",
            table_labels,
        )
        eta = family(
            GaugeMetricFamily, "rxstream_recovery_eta_seconds", "Seconds left to recover.", table_labels
        )
        for table, progress in sorted(monitor.recoveries.items()):
            for partition, p in progress.as_dict().items():
                values = [table, partition]
                done.add_metric(values, p["done"])
                total.add_metric(values, p["total"])
                rate.add_metric(values, p["rate"])
                if p["eta"] is not None:
                    eta.add_metric(values, p["eta"])
        yield from (done, total, rate, eta)

        keys = family(
            GaugeMetricFamily, "rxstream_table_keys", "Keys a table holds here.", ["rxstream_table"]
        )
        late = family(
            CounterMetricFamily,
            "rxstream_late_events",
            "Events that arrived after their window closed.",
            ["rxstream_table", "messaging_destination_partition_id"],
        )
        for table, counts in sorted(monitor.tables().items()):
            keys.add_metric([table], counts["keys"])
            for partition, n in counts["late_by_partition"].items():
                late.add_metric([table, partition], n)
        yield from (keys, late)

        ready = family(
            GaugeMetricFamily, "rxstream_worker_ready", "1 once joined and recovered, else 0.", [_GROUP]
        )
        ready.add_metric([group], 1.0 if monitor.state == "running" else 0.0)
        yield ready


def _histogram(family: Any, values: list[str], histogram: Histogram) -> None:
    buckets = [("+Inf" if bound == float("inf") else repr(bound), n) for bound, n in histogram.cumulative()]
    family.add_metric(values, buckets, histogram.sum)


def metrics_text(monitor: Monitor) -> bytes:
    """The monitor's counters in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_MonitorCollector(monitor))
    return bytes(generate_latest(registry))


class WebServer:
    """Serves ``/metrics``, ``/stats``, ``/health`` and ``/tables/{name}/{key}`` of one app over HTTP."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", port: int = 6066) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def routes(self) -> web.Application:
        """The aiohttp application with the endpoints."""
        application = web.Application()
        application.router.add_get("/metrics", self.metrics)
        application.router.add_get("/stats", self.stats)
        application.router.add_get("/health", self.health)
        application.router.add_get("/tables/{name}/{key}", self.table_value)
        self.app.views.add_to(application.router)
        return application

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, then ``port`` tells which)."""
        runner = web.AppRunner(self.routes(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigurationError(f"--web-port {self.port}: cannot listen on {self.host}: {exc}") from exc
        self._runner = runner
        if self.port == 0 and runner.addresses:
            self.port = int(runner.addresses[0][1])
        logger.info("app %s: web endpoints at http://%s:%d/", self.app.id, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _refreshed(self) -> Monitor:
        monitor = self.app.monitor
        try:
            await monitor.refresh()
        except Exception as exc:  # lag is then left as last read; the counters are still served
            logger.warning("app %s: reading end offsets for lag failed: %r", self.app.id, exc)
        return monitor

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text exposition of the monitor."""
        monitor = await self._refreshed()
        return web.Response(body=metrics_text(monitor), headers={"Content-Type": CONTENT_TYPE})

    async def stats(self, request: web.Request) -> web.Response:
        """The monitor's snapshot as JSON."""
        monitor = await self._refreshed()
        return web.json_response(monitor.snapshot())

    async def health(self, request: web.Request) -> web.Response:
        """200 once the worker joined its group and recovered its tables; 503 otherwise."""
        state = self.app.monitor.state
        return web.json_response({"state": state}, status=200 if state == "running" else 503)

    async def table_value(self, request: web.Request) -> web.Response:
        """The value of a key in a table this worker holds; 404 naming the partition when it does not."""
        name, text = request.match_info["name"], request.match_info["key"]
        table = self.app.tables.get(name)
        if table is None:
            return _error(404, f"app {self.app.id!r} has no table {name!r}", table=name)
        store = table.store
        for key in _key_candidates(text):
            try:
                value = store.get(key)
            except TypeError:  # an unhashable candidate
                continue
            if value is not MISSING:
                return web.json_response({"table": name, "key": key, "value": value}, dumps=dumps)
        partition = partition_for(text, table.partitions)
        if partition in store.partitions():
            return _error(
                404, f"table {name!r} has no key {text!r} (partition {partition}, held here)", table=name
            )
        return _error(
            404,
            f"table {name!r}: key {text!r} belongs to partition {partition}, which another worker owns",
            table=name,
            partition=partition,
            owner="another worker",
        )


def _key_candidates(text: str) -> list[Any]:
    """The URL's key as text, then as the JSON it may spell (a number, a list)."""
    candidates: list[Any] = [text]
    try:
        parsed = json.loads(text)
    except ValueError:
        return candidates
    candidates.append(tuple(parsed) if isinstance(parsed, list) else parsed)
    return candidates


def _error(status: int, message: str, **fields: Any) -> web.Response:
    return web.json_response({"error": message, **fields}, status=status)
