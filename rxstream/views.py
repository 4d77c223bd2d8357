"""Web views an app adds to the worker's web server: ``@app.page(path)`` and ``@app.table_route(...)``.

>>> @app.page("/count/{word}/")
... @app.table_route(table=word_counts, match_info="word")
... async def get_count(web, request, word):
...     return web.json({word: word_counts[word]})

A page is an ``async def (web, request, **match_info)`` answering GET, or a `View` subclass with ``get``,
``post``, ``put``, ``patch`` and ``delete`` methods. A table route answers only on the worker that holds
the key's partition; any other worker answers 421 (Misdirected Request) naming the partition, instead of
forwarding the request as Faust does, so a client or load balancer retries where the key lives. Pages
are served with ``rxstream worker --web-port N`` (the ``web`` extra).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .errors import ConfigurationError
from .migration import FAUST_GUIDE
from .transport.partitioner import partition_for

if TYPE_CHECKING:
    from .app import App

__all__ = ["METHODS", "View", "Views", "dumps", "page", "table_route", "topic_route"]

F = TypeVar("F", bound=Callable[..., Any])


def page(app: App, path: str) -> Callable[[F], F]:
    """``@app.page(path)``: serve the decorated view at ``path`` on the worker's web server."""
    return app.views.page(path)


def table_route(app: App, table: Any, **where: Any) -> Callable[[F], F]:
    """``@app.table_route(table, match_info=...)``: answer only where ``table`` holds the request's key."""
    return app.views.table_route(table, **where)


def topic_route(app: App, topic: Any, **where: Any) -> Callable[[F], F]:
    """``@app.topic_route(topic, match_info=...)``: answer only where this worker reads the partition of
    ``topic`` the request's key goes to."""
    return app.views.topic_route(topic, **where)

METHODS = ("get", "post", "put", "patch", "delete")


class View:
    """A web view: the app, response builders, and one method per HTTP verb it answers."""

    def __init__(self, app: App) -> None:
        self.app = app

    def json(self, data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        """A JSON response (records become their fields)."""
        from aiohttp import web

        return web.json_response(data, status=status, headers=headers, dumps=dumps)

    def text(self, text: str, *, status: int = 200, content_type: str = "text/plain") -> Any:
        """A text response."""
        from aiohttp import web

        return web.Response(text=text, status=status, content_type=content_type)

    def html(self, html: str, *, status: int = 200) -> Any:
        """An HTML response."""
        return self.text(html, status=status, content_type="text/html")

    def bytes(self, body: bytes, *, status: int = 200, content_type: str = "application/octet-stream") -> Any:
        """A response of raw bytes."""
        from aiohttp import web

        return web.Response(body=body, status=status, content_type=content_type)

    def error(self, status: int, reason: str, **fields: Any) -> Any:
        """A JSON error response: ``{"error": reason, ...fields}``."""
        return self.json({"error": reason, **fields}, status=status)

    def notfound(self, reason: str = "not found", **fields: Any) -> Any:
        """A 404 JSON response."""
        return self.error(404, reason, **fields)


def _function_view(fun: Callable[..., Any]) -> type[View]:
    """A View answering GET with ``fun(view, request, **match_info)``."""

    async def get(self: View, request: Any, **params: Any) -> Any:
        return await fun(self, request, **params)

    return type(getattr(fun, "__name__", "page"), (View,), {"get": get, "__doc__": fun.__doc__})


class Views:
    """The pages an app declared, served by the worker's web server."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.pages: dict[str, type[View]] = {}

    def page(self, path: str) -> Callable[[F], F]:
        """Declare the view at ``path`` (aiohttp's ``{name}`` placeholders become keyword arguments)."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"@app.page: the path must start with '/', got {path!r}")

        def decorate(view: F) -> F:
            if isinstance(view, type) and issubclass(view, View):
                self.pages[path] = view
            elif inspect.iscoroutinefunction(view):
                self.pages[path] = _function_view(view)
            else:
                raise ConfigurationError(
                    f"@app.page({path!r}) decorates an async def (web, request) or a View class, got {view!r}"
                )
            return view

        return decorate

    def table_route(self, table: Any, **where: Any) -> Callable[[F], F]:
        """Answer only where ``table`` holds the key the request names (see `route`)."""
        return self.route(f"table {table.name!r}", table.partitions, table.store.partitions, **where)

    def topic_route(self, topic: Any, **where: Any) -> Callable[[F], F]:
        """Answer only where this worker reads the partition of ``topic`` the request's key goes to."""
        app = self.app

        def held() -> set[int]:
            return {
                tp.partition
                for conductor in app.conductors()
                if conductor.consumer is not None
                for tp in conductor.consumer.assignment()
                if tp.topic == topic.name
            }

        partitions = topic.partitions or app.topic_partitions
        return self.route(f"topic {topic.name!r}", partitions, held, **where)

    def route(
        self,
        what: str,
        partitions: int,
        held: Callable[[], Any],
        *,
        shard_param: str | None = None,
        query_param: str | None = None,
        match_info: str | None = None,
        exact_key: str | None = None,
    ) -> Callable[[F], F]:
        """Answer only where partition ``partition_for(key)`` is ``held()``; the key is taken from the URL
        (``match_info``), the query string (``query_param``, or Faust's older ``shard_param``) or given
        (``exact_key``); elsewhere 421 names the partition."""
        names = [n for n in (shard_param, query_param, match_info, exact_key) if n is not None]
        if len(names) != 1:
            raise ConfigurationError(
                f"{what}: a route takes one of match_info=, query_param=, shard_param= or exact_key=, "
                f"got {len(names)}"
            )

        def key_of(request: Any) -> Any:
            if exact_key is not None:
                return exact_key
            if match_info is not None:
                return request.match_info[match_info]
            return request.query[query_param or shard_param]

        def decorate(fun: F) -> F:
            @functools.wraps(fun)
            async def routed(view: View, request: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    key = key_of(request)
                except KeyError:
                    return view.error(400, f"{what}: the request names no key ({names[0]!r})")
                partition = partition_for(key, partitions)
                if partition not in held():
                    return view.error(
                        421,
                        f"{what}: key {key!r} belongs to partition {partition}, which another worker holds: "
                        f"ask it (rxstream answers where the key lives, it does not forward; {FAUST_GUIDE})",
                        partition=partition,
                    )
                return await fun(view, request, *args, **kwargs)

            return cast(F, routed)

        return decorate

    def add_to(self, router: Any) -> None:
        """Register every page on an aiohttp router, one route per verb its view defines."""
        for path, view_class in self.pages.items():
            for method in METHODS:
                if callable(getattr(view_class, method, None)):
                    answer = functools.partial(self._answer, view_class, method)
                    router.add_route(method.upper(), path, answer)

    async def _answer(self, view_class: type[View], method: str, request: Any) -> Any:
        view = view_class(self.app)
        return await getattr(view, method)(request, **dict(request.match_info))


def dumps(data: Any) -> str:
    """JSON text of ``data``; records become their fields, sets sorted lists, anything else its repr."""
    return json.dumps(data, default=_jsonable)


def _jsonable(value: Any) -> Any:
    for attr in ("to_representation", "asdict", "_asdict"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)
