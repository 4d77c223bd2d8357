"""The public API is the flat list `rxstream/__init__.py` exports; this pins it."""

import rxstream

EXPECTED = [
    "Agent",
    "AgentT",
    "App",
    "Channel",
    "ChannelT",
    "Event",
    "EventT",
    "FieldDescriptor",
    "GlobalTable",
    "KeyValue",
    "Message",
    "Record",
    "RxStreamError",
    "SASLCredentials",
    "SSLCredentials",
    "SetTable",
    "Stream",
    "StreamT",
    "Table",
    "Topic",
    "WindowSet",
    "WindowedTable",
    "__version__",
    "current_event",
]


def test_public_names_are_pinned_and_sorted() -> None:
    assert rxstream.__all__ == EXPECTED
    assert sorted(rxstream.__all__) == rxstream.__all__


def test_every_public_name_resolves() -> None:
    for name in rxstream.__all__:
        assert getattr(rxstream, name) is not None, name


def test_version_is_the_one_pyproject_declares() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert rxstream.__version__ == pyproject["project"]["version"]
