"""Ask and reply: the worker's reply topic, the asks waiting on it by correlation id, and sending replies."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, cast

from ._core.rows import Rows
from ._rx import Batch, sources_of
from .consumer import Conductor
from .events import HEADERS, Event, Headers, headers_of, is_row

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._core.refs import Ref
    from .app import App
    from .events import Row
    from .subscriptions import Subscription
    from .transport.base import Transport

__all__ = ["CORRELATION_ID", "REPLY_TO", "Replies", "asks_in"]

REPLY_TO = "rxstream-reply-to"
CORRELATION_ID = "rxstream-correlation-id"


class Replies:
    """One worker's asks and answers: ``ask`` waits here for a reply; an agent sends its replies from here."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.conductor: Conductor | None = None
        """The consumer of the reply topic, started by the first ask (None until then)."""
        self._starting: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    async def topic(self) -> str:
        """The topic replies to this worker's asks arrive on (its consumer starts on first use)."""
        app = self.app
        if self.conductor is None:
            starting = self._starting
            if starting is None or (starting.done() and (starting.cancelled() or starting.exception())):
                starting = self._starting = asyncio.get_running_loop().create_task(self._start())
            await asyncio.shield(starting)  # concurrent first asks wait for the same start
        return app.reply_topic_name

    async def _start(self) -> None:
        """Create the reply topic and start its consumer; the conductor is set only once it runs."""
        app = self.app
        topic = app.topic(app.reply_topic_name, partitions=1)
        topic.internal = True
        subscription = topic.subscription()
        conductor = app.conductor(f"{app.id}-replies-{uuid.uuid4().hex[:12]}", monitored=False)
        conductor.add(topic, subscription)
        await (await app.producer()).create_topics(topic.specs(1))
        await conductor.start()
        self.conductor = conductor
        app.spawn(self._collect(subscription), "reply collector")

    async def _collect(self, subscription: Subscription) -> None:
        async for event in subscription.stream().events():
            waiter = self._waiting.get(_text(event.key))
            if waiter is not None and not waiter.done():
                waiter.set_result(event.value)

    def expect(self, correlation_id: str) -> asyncio.Future[Any]:
        """A future the reply with ``correlation_id`` completes."""
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = waiter
        return waiter

    def forget(self, correlation_id: str) -> None:
        """Stop waiting for the reply with ``correlation_id`` (answered, timed out or cancelled)."""
        self._waiting.pop(correlation_id, None)

    async def send(self, reply_to: str, correlation_id: str, value: Any) -> None:
        """Send ``value`` as the reply with ``correlation_id`` to the topic ``reply_to``."""
        app = self.app
        topic = app.topics.get(reply_to) or app.topic(reply_to, partitions=1)
        await topic.send(key=correlation_id, value=value)

    async def answer(self, batch: Batch, index: int, value: Any) -> None:
        """Reply with ``value`` to each ask behind value ``index`` of ``batch``.

        A value made of several inputs (``take``, a join, an item of an inner stream) answers each of them;
        an ask takes the first answer it gets.
        """
        refs = batch.refs
        if refs is None:
            return
        ref = refs[index]
        if ref is None:
            ref = batch.ref_at(index)
        for source in sources_of(ref):
            headers = _headers(source)
            if headers:
                reply_to = headers.get(REPLY_TO)
                if reply_to is not None:
                    await self.send(_text(reply_to), _text(headers.get(CORRELATION_ID)), value)

    def release(self, transport: Transport | None) -> None:
        """Let go of the stopped reply consumer (memory:// forgets its group, which would hold the topic)."""
        if self.conductor is not None:
            forget = getattr(transport, "delete_group", None)
            if forget is not None:
                forget(self.conductor.group_id)
        self.conductor = None
        self._starting = None

    def cancel(self) -> None:
        """Cancel every ask still waiting (the worker stopped)."""
        for waiter in self._waiting.values():
            waiter.cancel()


def asks_in(refs: Sequence[Ref] | None) -> bool:
    """Whether any message of a batch has headers (only those can be asks waiting for a reply)."""
    if refs is None:
        return False
    if type(refs) is Rows:
        return refs.with_headers()
    try:
        # C-level when every reference is a message; any other kind of reference raises TypeError
        return any(map(headers_of, cast("Sequence[Row]", refs)))
    except TypeError:  # grouped values, events or None among them
        return any(_headers(source) for ref in refs for source in sources_of(ref))


def _headers(ref: Any) -> Headers | None:
    """The headers of a reference that is a message or an event (None for anything else)."""
    if is_row(ref):
        headers: Headers | None = ref[HEADERS]
        return headers
    return ref.headers if isinstance(ref, Event) else None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
