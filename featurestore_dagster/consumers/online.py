"""Latest values (online lookup): each feature's newest value per entity, and its timestamp.

Each publish maintains ``_latest.<feature>`` (one row per entity) in the same lake
transaction; a lookup reads only that. The latest tables are copied once into memory (Arrow,
with a hash index per entity key) and reused while the lake's snapshot stays the same, so a
warm lookup of a thousand entities is a thousand dictionary probes and a few Arrow ``take``s.
Values older than the TTL (the request's, else the feature's ``ttl:``) are NULL, as are
entities the feature does not have.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from featurestore_dagster.consumers.manifest import ttl_seconds
from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import quote_identifier as q
from featurestore_dagster.definitions.sql import quote_table
from featurestore_dagster.errors import TrainingSetError

LATEST_SCHEMA = "_latest"
TIMESTAMP_SUFFIX = "__timestamp"


class OnlineFeatures:
    """Result of ``get_online_features``: one row per entity row, in the order given, with the
    entity columns, then per feature its value and ``<feature>__timestamp``."""

    def __init__(self, table: pa.Table, features: Sequence[str]):
        self._table = table
        self.features = list(features)

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"OnlineFeatures({len(self)} rows; {', '.join(self.features)})"

    def to_arrow(self) -> pa.Table:
        return self._table

    def to_pandas(self):
        return self._table.to_pandas()

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self._table)

    def to_dict(self) -> list[dict[str, Any]]:
        """One plain dict per entity row (``None`` where missing or expired)."""
        return self._table.to_pylist()


def entity_table(entity_rows: Any) -> pa.Table:
    """Entity rows (list of dicts, pandas/polars DataFrame, Arrow table) as one Arrow table."""
    if isinstance(entity_rows, pa.Table):
        table = entity_rows
    elif type(entity_rows).__module__.split(".")[0] == "pandas":
        table = pa.Table.from_pandas(entity_rows, preserve_index=False)
    elif type(entity_rows).__module__.split(".")[0] == "polars":
        table = entity_rows.to_arrow()
    elif isinstance(entity_rows, Mapping):
        table = pa.Table.from_pylist([dict(entity_rows)])
    elif isinstance(entity_rows, Iterable) and not isinstance(entity_rows, str | bytes):
        table = _rows_table(list(entity_rows))
    else:
        raise TrainingSetError(
            "entity_rows must be a list of dicts or a DataFrame of entity key columns, got"
            f" {type(entity_rows).__name__}"
        )
    if table.num_rows == 0:
        raise TrainingSetError("entity_rows is empty: ask for at least one entity")
    return table


# A lookup of at most this many entities probes a dictionary of one key (built on first use,
# for latest tables up to DICT_INDEX_ROWS rows): pyarrow.compute.index_in hashes the whole
# stored key column on every call (~50 us at 1,000 entities, most of a small lookup).
SMALL_LOOKUP_ROWS = 64
DICT_INDEX_ROWS = 200_000


@dataclass
class _Latest:
    """One feature's latest table in memory, with a hash index from entity key to row."""

    stamp: Any
    table: pa.Table
    index: dict | None  # key tuple -> row (several keys); {} for one key; None: global
    keys: tuple[str, ...] = ()

    def single_index(self) -> dict:
        """Key -> row for a feature of one key (built once, on first use)."""
        if not self.index:
            self.index = _key_index(self.table, self.keys)
        return self.index


def _key_index(table: pa.Table, keys: Sequence[str]) -> dict:
    values = [table[k].to_pylist() for k in keys]
    keys_of = values[0] if len(values) == 1 else zip(*values, strict=True)
    return {key: row for row, key in enumerate(keys_of)}


def _key_family(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_string_view(arrow_type):
        return "string"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    return str(arrow_type)


def catalog_signature(lake_catalog: str):
    """A probe of a SQLite catalog's files (sizes and change times): equal answers mean no
    commit happened in between. None for catalogs without files here (PostgreSQL)."""
    if not lake_catalog.startswith("sqlite:"):
        return None
    path = lake_catalog[len("sqlite:") :]

    def probe():
        found = []
        for suffix in ("", "-wal", "-journal"):
            try:
                stat = os.stat(path + suffix)
            except OSError:
                found.append(None)
                continue
            found.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(found)

    return probe


def _rows_table(rows: list) -> pa.Table:
    """Dicts of entity keys as columns (a column per key of the first row)."""
    if not rows:
        raise TrainingSetError("entity_rows is empty: ask for at least one entity")
    first = rows[0]
    if not isinstance(first, Mapping):
        raise TrainingSetError("entity_rows must be dicts of entity key columns")
    names = list(first)
    try:
        columns = {name: [row[name] for row in rows] for name in names}
    except (KeyError, TypeError):
        raise TrainingSetError(
            f"every entity row must be a dict with the same keys ({', '.join(names)})"
        ) from None
    if any(len(row) != len(names) for row in rows):
        raise TrainingSetError(
            f"every entity row must be a dict with the same keys ({', '.join(names)})"
        )
    try:
        return pa.table(columns)
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise TrainingSetError(f"entity_rows cannot be read as a table: {error}") from None


class LatestCache:
    """In-memory copies of latest tables, keyed by the lake snapshot they were read at.

    Owns one long-lived read-only lake connection (``open_reader()`` opens it): outside a
    transaction it sees each new commit, and an unchanged snapshot id means the copies are
    current. A lookup is then a dictionary probe per entity and an Arrow ``take`` per column,
    without a query. Thread-safe: one lock around a lookup (a DuckDB connection is not shared
    between threads).
    """

    def __init__(self, open_reader, signature=None):
        self._open_reader = open_reader
        self._signature = signature  # cheap "did the catalog change?" probe, or None
        self._seen: tuple[Any, Any] | None = None  # (signature, snapshot) last checked
        self._reader = None
        self._loaded: dict[str, _Latest] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def in_memory(self, names: Sequence[str]) -> bool:
        """Whether a lookup of ``names`` now would read nothing from the lake: each one's
        latest table is loaded at the snapshot the catalog still has (catalogs with a cheap
        probe only; a guess without the lock, which ``lookup`` checks again)."""
        seen = self._seen
        if self._signature is None or seen is None or self._signature() != seen[0]:
            return False
        loaded = self._loaded
        return all(n in loaded and loaded[n].stamp == seen[1] for n in names)

    def lookup(
        self,
        entities: pa.Table,
        definitions: Sequence[FeatureDefinition],
        ttl: Any = None,
        now: datetime | None = None,
    ) -> OnlineFeatures:
        """Latest values of ``definitions`` for ``entities`` (``now`` for the TTL)."""
        from featurestore_dagster.consumers.resolve import lake_snapshot

        names = [d.feature_name for d in definitions]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise TrainingSetError(f"requested more than once: {', '.join(repeated)}")
        missing = {}
        for definition in definitions:
            absent = [c for c in definition.entity_columns if c not in entities.column_names]
            if absent:
                missing[definition.feature_name] = absent
        if missing:
            detail = "; ".join(f"{n} needs {', '.join(c)}" for n, c in missing.items())
            raise TrainingSetError(f"entity_rows lack key column(s): {detail}")
        ttls = {d.feature_name: _ttl(d, ttl) for d in definitions}
        now = now or datetime.now(UTC)
        with self._lock:
            if self._reader is None:
                self._reader = self._open_reader()
            stamp = self._stamp(lake_snapshot)
            latest = {}
            for definition in definitions:
                loaded = self._loaded.get(definition.feature_name)
                if stamp is None or loaded is None or loaded.stamp != stamp:
                    loaded = self._load(self._reader, definition, stamp)
                latest[definition.feature_name] = loaded
        return _lookup(entities, definitions, latest, ttls, now)

    def _stamp(self, lake_snapshot) -> Any:
        """The lake's snapshot id; asked of the catalog only when its files changed (a query
        of the catalog is most of a warm lookup otherwise)."""
        signature = self._signature() if self._signature is not None else None
        if signature is not None and self._seen is not None and self._seen[0] == signature:
            return self._seen[1]
        stamp = lake_snapshot(self._reader)
        self._seen = (signature, stamp) if signature is not None else None
        return stamp

    def _load(
        self, conn: duckdb.DuckDBPyConnection, definition: FeatureDefinition, stamp: Any
    ) -> _Latest:
        name = definition.feature_name
        keys = [q(k) for k in definition.entity_columns]
        columns = ", ".join([*keys, q(definition.timestamp_column), q(name)])
        latest = f"{q(LATEST_SCHEMA)}.{q(name)}"
        try:
            table = conn.execute(f"SELECT {columns} FROM {latest}").to_arrow_table()
        except duckdb.Error:
            # No latest table (published before they existed): the newest row per entity.
            partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
            try:
                table = conn.execute(
                    f"SELECT {columns} FROM {quote_table(definition.table_name)} QUALIFY"
                    f" row_number() OVER ({partition}ORDER BY {q(definition.timestamp_column)}"
                    " DESC) = 1"
                ).to_arrow_table()
            except duckdb.Error as error:
                first = str(error).strip().splitlines()[0]
                raise TrainingSetError(
                    f"feature '{name}' has no published data to read ({first}); materialize it"
                ) from None
        table = table.combine_chunks()
        keys = tuple(definition.entity_columns)
        index = None
        if len(keys) == 1:
            index = {}  # index_in, or single_index() for small lookups
        elif keys:
            index = _key_index(table, keys)
        self._loaded[name] = _Latest(stamp, table, index, keys)
        return self._loaded[name]


def _lookup(entities: pa.Table, definitions, latest: dict[str, _Latest], ttls, now):
    columns = {name: entities[name] for name in entities.column_names}
    keys_cache: dict[tuple[str, ...], list] = {}
    for definition in definitions:
        name = definition.feature_name
        item = latest[name]
        for key in definition.entity_columns:
            given, stored = entities.schema.field(key).type, item.table.schema.field(key).type
            if entities[key].null_count < entities.num_rows and _key_family(given) != _key_family(
                stored
            ):
                raise TrainingSetError(
                    f"feature '{name}': entity column '{key}' is {given} but the feature's key"
                    f" is {stored}"
                )
        keys = tuple(definition.entity_columns)
        if item.index is None:
            rows = [0 if item.table.num_rows else None] * entities.num_rows
        elif len(keys) == 1 and (
            entities.num_rows > SMALL_LOOKUP_ROWS or item.table.num_rows > DICT_INDEX_ROWS
        ):
            # One key, many entities: Arrow's hash lookup, vectorized (null where unknown).
            stored = item.table[keys[0]]
            given = entities[keys[0]]
            if given.type != stored.type:
                given = given.cast(stored.type)
            positions = pc.index_in(given, value_set=stored)
            rows = None
        else:
            if keys not in keys_cache:
                values = [entities[k].to_pylist() for k in keys]
                joined = values[0] if len(values) == 1 else list(zip(*values, strict=True))
                keys_cache[keys] = joined
            index = item.single_index() if len(keys) == 1 else item.index
            rows = [index.get(k) for k in keys_cache[keys]]
        if rows is not None:
            positions = pa.array(rows, type=pa.int64())
        values = item.table[name].take(positions)
        stamps = item.table[definition.timestamp_column].take(positions)
        seconds = ttls[name]
        if seconds is not None:
            fresh = _fresh(stamps, now, seconds)
            values = pc.if_else(fresh, values, pa.scalar(None, values.type))
            stamps = pc.if_else(fresh, stamps, pa.scalar(None, stamps.type))
        columns[name] = values
        columns[name + TIMESTAMP_SUFFIX] = stamps
    return OnlineFeatures(pa.table(columns), [d.feature_name for d in definitions])


def _fresh(stamps, now: datetime, seconds: float):
    """True where a timestamp is within ``seconds`` of ``now`` (a DATE counts as midnight)."""
    oldest = now.astimezone(UTC) - timedelta(seconds=seconds)
    kind = stamps.type
    if pa.types.is_timestamp(kind) and kind.tz:
        as_utc = pc.cast(stamps, pa.timestamp("us", tz="UTC"))
        return pc.greater_equal(as_utc, pa.scalar(oldest, type=pa.timestamp("us", tz="UTC")))
    naive = pc.cast(stamps, pa.timestamp("us"))
    limit = pa.scalar(oldest.replace(tzinfo=None), type=pa.timestamp("us"))
    return pc.greater_equal(naive, limit)


def _ttl(definition: FeatureDefinition, ttl: Any) -> float | None:
    value = ttl.get(definition.feature_name) if isinstance(ttl, Mapping) else ttl
    if value is None:
        return definition.ttl_seconds
    return ttl_seconds(value, f"ttl of feature '{definition.feature_name}'")
