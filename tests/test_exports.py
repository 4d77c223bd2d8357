"""The public API is the flat list `rxstream/__init__.py` exports; this pins it."""

import rxstream

EXPECTED = [
    "Agent",
    "App",
    "Channel",
    "Event",
    "GlobalTable",
    "Message",
    "Record",
    "RxStreamError",
    "SASLCredentials",
    "SSLCredentials",
    "SetTable",
    "Stream",
    "Table",
    "Topic",
    "WindowSet",
    "WindowedTable",
    "current_event",
]


def test_public_names_are_pinned_and_sorted() -> None:
    assert rxstream.__all__ == EXPECTED
    assert sorted(rxstream.__all__) == rxstream.__all__


def test_every_public_name_resolves() -> None:
    for name in rxstream.__all__:
        assert getattr(rxstream, name) is not None, name
