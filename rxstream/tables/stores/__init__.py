"""Table stores chosen by URL: ``memory://`` (default) and ``rocksdb://[path]`` (extra ``rocksdb``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError
from .base import MISSING, Store
from .memory import MemoryStore

__all__ = ["MISSING", "MemoryStore", "Store", "store_for"]

DEFAULT_ROCKSDB_DIR = "rxstream-data"


def store_for(
    url: str, *, app_id: str, table: str, decode_key: Callable[[Any], Any], value_type: Any = None
) -> Store:
    """The store a URL names: ``memory://``, or ``rocksdb://DIR`` (files in ``DIR/{app_id}/{table}``).

    ``rocksdb://`` alone uses ``./rxstream-data``; ``rocksdb:///abs/path`` an absolute directory.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "rocksdb":
        from .rocksdb import RocksDBStore

        base = Path(rest or DEFAULT_ROCKSDB_DIR)
        return RocksDBStore(url, base / app_id / table, decode_key=decode_key, value_type=value_type)
    raise ConfigurationError(
        f"table {table!r}: unsupported store URL {url!r}; use memory:// or rocksdb://DIRECTORY"
    )
