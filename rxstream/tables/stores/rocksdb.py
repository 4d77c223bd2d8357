"""The RocksDB store (extra ``rocksdb``): values and changelog offsets on disk; recovery is incremental.

Layout of one database per table: ``b"d" + partition (4 bytes) + key`` holds a value,
``b"o" + partition`` the changelog offset the partition's values reflect and ``b"s" + partition`` (JSON),
per source topic, the last source offset of a change they hold. Keys and values are JSON (never pickle).
Writes made while processing stay in memory until the next checkpoint, which writes them and the offsets in
one atomic batch, so the files always hold exactly a prefix of the changelog: a crash loses nothing the
changelog does not have, and the next recovery replays from the checkpointed offset, unless the checkpoint
holds changes by events the consumer group had not committed (then the partition is replayed whole).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...codecs import decode_value, encode_value
from ...errors import MissingDependencyError, TableError
from .base import MISSING, Store

__all__ = ["RocksDBStore"]

_PART = struct.Struct(">I")
_DATA = b"d"
_OFFSET = b"o"
_SOURCES = b"s"


def _prefix(partition: int) -> bytes:
    return _DATA + _PART.pack(partition)


def hashable(obj: Any) -> Any:
    """Decoded JSON made usable as a dict key: lists become tuples, recursively."""
    if isinstance(obj, list):
        return tuple(hashable(item) for item in obj)
    return obj


class RocksDBStore(Store):
    """A RocksDB database per table under ``path``; needs ``pip install rxstream[rocksdb]``."""

    persistent = True

    def __init__(
        self,
        url: str,
        path: Path,
        *,
        decode_key: Callable[[Any], Any] = hashable,
        value_type: Any = None,
        cache_size: int = 100_000,
    ) -> None:
        self.url = url
        self.path = path
        self._decode_key = decode_key
        self._value_type = value_type
        self._cache_size = cache_size
        self._db: Any = None
        self._owned: set[int] = set()
        self._cache: dict[Any, tuple[int, Any]] = {}
        self._dirty: dict[tuple[int, Any], Any] = {}

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Open (creating) the database directory."""
        if self._db is not None:
            return
        try:
            import rocksdict
        except ImportError as exc:
            raise MissingDependencyError(
                f"store {self.url!r} needs the rocksdict package: pip install 'rxstream[rocksdb]'"
            ) from exc
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = rocksdict.Rdict(str(self.path), options=rocksdict.Options(raw_mode=True))
        except Exception as exc:
            raise TableError(
                f"cannot open RocksDB store {self.path} ({exc}); is another worker of this app using the "
                "same directory? Give each worker its own store path"
            ) from exc

    def close(self) -> None:
        """Close the database (unwritten changes are dropped: the changelog has them)."""
        db, self._db = self._db, None
        self._cache.clear()
        self._dirty.clear()
        self._owned.clear()
        if db is not None:
            db.close()

    @property
    def db(self) -> Any:
        """The open database; a TableError when the store is closed (the app is not running)."""
        if self._db is None:
            raise TableError(
                f"RocksDB store {self.path} is closed: tables on disk are read while the app runs"
            )
        return self._db

    # ------------------------------------------------------------ encoding

    @staticmethod
    def _key_bytes(key: Any) -> bytes:
        data = encode_value(key, "json")
        assert data is not None
        return data

    def _value(self, data: bytes) -> Any:
        return decode_value(data, "json", self._value_type)

    # ------------------------------------------------------------ reading and writing

    def get(self, key: Any) -> Any:
        """The value of ``key`` from the write cache, else from disk in any owned partition."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached[1]
        db = self.db
        raw = self._key_bytes(key)
        for partition in sorted(self._owned):
            data = db.get(_prefix(partition) + raw)
            if data is not None:
                value = self._value(data)
                self._remember(key, partition, value)
                return value
        return MISSING

    def _remember(self, key: Any, partition: int, value: Any) -> None:
        cache = self._cache
        if len(cache) >= self._cache_size:
            dirty = self._dirty
            self._cache = cache = {k: v for k, v in cache.items() if (v[0], k) in dirty}
        cache[key] = (partition, value)

    def set(self, key: Any, value: Any, partition: int) -> None:
        """Store ``value``; it reaches the disk at the next checkpoint."""
        self.db  # noqa: B018 (fail early when closed)
        previous = self._cache.get(key)
        if previous is not None and previous[0] != partition:
            self._dirty[(previous[0], key)] = MISSING
        self._remember(key, partition, value)
        self._dirty[(partition, key)] = value

    def delete(self, key: Any, partition: int) -> None:
        """Remove ``key``; the deletion reaches the disk at the next checkpoint."""
        self._remember(key, partition, MISSING)
        self._dirty[(partition, key)] = MISSING

    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[Any, Any]]:
        """(key, value) of owned partitions: what is on disk, overlaid with writes not checkpointed yet."""
        wanted = sorted(self._owned if partitions is None else set(partitions) & self._owned)
        db = self.db
        out: dict[Any, Any] = {}
        for partition in wanted:
            prefix = _prefix(partition)
            for raw_key, data in db.items(from_key=prefix):
                if not raw_key.startswith(prefix):
                    break
                out[self._decode_key(decode_value(raw_key[len(prefix) :], "json"))] = self._value(data)
        for (partition, key), value in self._dirty.items():
            if partition in wanted:
                if value is MISSING:
                    out.pop(key, None)
                else:
                    out[key] = value
        return iter(list(out.items()))

    def partitions(self) -> frozenset[int]:
        """The partitions served now."""
        return frozenset(self._owned)

    def assign(self, partitions: Iterable[int]) -> None:
        """Serve ``partitions``; a partition never checkpointed is emptied (its replay starts at offset 0)."""
        db = self.db
        for partition in partitions:
            if self.persisted_offset(partition) is None:
                prefix = _prefix(partition)
                db.delete_range(prefix, _prefix(partition + 1))
            self._owned.add(partition)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Stop serving ``partitions``; their files stay for a later incremental recovery."""
        gone = set(partitions)
        self._owned -= gone
        self._cache = {k: v for k, v in self._cache.items() if v[0] not in gone}
        self._dirty = {pk: v for pk, v in self._dirty.items() if pk[0] not in gone}

    def apply_changelog(self, partition: int, records: Iterable[tuple[Any, Any]], next_offset: int) -> int:
        """Write recovered records and the offset after them in one atomic batch."""
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        prefix = _prefix(partition)
        count = 0
        for key, value in records:
            count += 1
            raw = prefix + self._key_bytes(key)
            if value is None:
                batch.delete(raw)
            else:
                data = encode_value(value, "json")
                assert data is not None
                batch.put(raw, data)
            self._cache.pop(key, None)
        batch.put(_OFFSET + _PART.pack(partition), str(next_offset).encode())
        self.db.write(batch)
        return count

    def persisted_offset(self, partition: int) -> int | None:
        """The changelog offset the partition's files reflect, or None if never checkpointed."""
        data = self.db.get(_OFFSET + _PART.pack(partition))
        return int(data) if data is not None else None

    def persisted_sources(self, partition: int) -> dict[str, int] | None:
        """Per source topic, the last source offset of a change the partition's files hold."""
        data = self.db.get(_SOURCES + _PART.pack(partition))
        return {str(k): int(v) for k, v in decode_value(data, "json").items()} if data is not None else None

    def reset(self, partitions: Iterable[int]) -> None:
        """Delete the files' values and offsets of ``partitions`` (their changelog is replayed whole)."""
        db = self.db
        for partition in partitions:
            db.delete_range(_prefix(partition), _prefix(partition + 1))
            db.delete(_OFFSET + _PART.pack(partition))
            db.delete(_SOURCES + _PART.pack(partition))
            self._cache = {k: v for k, v in self._cache.items() if v[0] != partition}
            self._dirty = {pk: v for pk, v in self._dirty.items() if pk[0] != partition}

    def checkpoint(
        self, offsets: Mapping[int, int], sources: Mapping[int, Mapping[str, int]] | None = None
    ) -> None:
        """Write pending changes, the offsets they reflect and their last sources in one atomic batch."""
        import rocksdict

        if self._db is None or (not self._dirty and not offsets):
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for (partition, key), value in self._dirty.items():
            raw = _prefix(partition) + self._key_bytes(key)
            if value is MISSING:
                batch.delete(raw)
            else:
                data = encode_value(value, "json")
                assert data is not None
                batch.put(raw, data)
        for partition, offset in offsets.items():
            batch.put(_OFFSET + _PART.pack(partition), str(offset).encode())
        for partition, last in (sources or {}).items():
            data = encode_value(dict(last), "json")
            assert data is not None
            batch.put(_SOURCES + _PART.pack(partition), data)
        self._db.write(batch)
        self._dirty.clear()
