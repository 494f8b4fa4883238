"""The embedded vector store: sqlite-vec in one file, all SQLite work on one worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlean  # type: ignore[import-untyped]
import sqlite_vec  # type: ignore[import-untyped]

from app.config import ConfigError
from app.errors import UNAVAILABLE, AppError
from storage.vectors import MetadataValue, VectorItem, VectorMatch

T = TypeVar("T")

MAX_TOP_K = 4096  # vec0's limit on k
_SqliteError: type[Exception] = sqlean.Error

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    metadata TEXT NOT NULL,
    UNIQUE (namespace, id)
);
CREATE TABLE IF NOT EXISTS item_tags (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    item INTEGER NOT NULL,
    PRIMARY KEY (namespace, key, value, item)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS item_tags_item ON item_tags (item);
"""


def _pack(values: list[float]) -> bytes:
    return struct.pack(f"{len(values)}f", *values)


def _filter_sql(namespace: str, flt: dict[str, str]) -> tuple[str, list[Any]]:
    """SQL selecting the rowids whose string metadata equals every pair of `flt`."""
    parts = []
    params: list[Any] = []
    for key, value in flt.items():
        parts.append("SELECT item FROM item_tags WHERE namespace = ? AND key = ? AND value = ?")
        params += [namespace, key, value]
    return " INTERSECT ".join(parts), params


class SqliteVecStore:
    """Vectors in a vec0 table (cosine distance, namespace partition) plus metadata tables."""

    def __init__(self, path: Path, dimensions: int) -> None:
        self._path = path
        self._dimensions = dimensions
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vectors-sqlite")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._call, fn, *args))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            if self._conn is None:
                self._conn = self._open()
            return fn(self._conn, *args)
        except _SqliteError as exc:
            raise AppError(UNAVAILABLE, f"vector store failed: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn: sqlite3.Connection = sqlean.connect(str(self._path), isolation_level=None)
        try:
            conn.enable_load_extension(True)
            sqlite_vec.load(conn)
            conn.enable_load_extension(False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM store_info WHERE key = 'dimensions'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO store_info (key, value) VALUES ('dimensions', ?)",
                    (str(self._dimensions),),
                )
            elif int(row[0]) != self._dimensions:
                raise ConfigError(
                    f"{self._path} holds {row[0]}-dimension vectors but the embedder makes "
                    f"{self._dimensions}; move the file away to re-ingest documents"
                )
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS vec_items USING vec0("
                "namespace TEXT PARTITION KEY, "
                f"embedding float[{self._dimensions}] distance_metric=cosine)"
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _check(self, values: list[float]) -> None:
        if len(values) != self._dimensions:
            raise ValueError(f"vector has {len(values)} dimensions, expected {self._dimensions}")

    async def upsert(self, namespace: str, items: list[VectorItem]) -> None:
        """Insert or replace `items` in `namespace`."""
        for item in items:
            self._check(item.values)
        if items:
            await self._run(self._upsert_sync, namespace, items)

    @staticmethod
    def _upsert_sync(conn: sqlite3.Connection, namespace: str, items: list[VectorItem]) -> None:
        with _transaction(conn):
            for item in items:
                row = conn.execute(
                    "SELECT rowid FROM items WHERE namespace = ? AND id = ?", (namespace, item.id)
                ).fetchone()
                metadata = json.dumps(item.metadata)
                if row is None:
                    cursor = conn.execute(
                        "INSERT INTO items (namespace, id, metadata) VALUES (?, ?, ?)",
                        (namespace, item.id, metadata),
                    )
                    rowid = cursor.lastrowid
                else:
                    rowid = row[0]
                    conn.execute("DELETE FROM vec_items WHERE rowid = ?", (rowid,))
                    conn.execute("DELETE FROM item_tags WHERE item = ?", (rowid,))
                    conn.execute("UPDATE items SET metadata = ? WHERE rowid = ?", (metadata, rowid))
                conn.execute(
                    "INSERT INTO vec_items (rowid, namespace, embedding) VALUES (?, ?, ?)",
                    (rowid, namespace, _pack(item.values)),
                )
                conn.executemany(
                    "INSERT INTO item_tags (namespace, key, value, item) VALUES (?, ?, ?, ?)",
                    [(namespace, k, v, rowid) for k, v in item.metadata.items()
                     if isinstance(v, str)],
                )

    async def query(
        self,
        namespace: str,
        vector: list[float],
        top_k: int,
        filter: dict[str, str] | None = None,
    ) -> list[VectorMatch]:
        """The `top_k` nearest vectors in `namespace` whose metadata matches `filter`."""
        self._check(vector)
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}")
        return await self._run(self._query_sync, namespace, vector, top_k, filter or {})

    @staticmethod
    def _query_sync(
        conn: sqlite3.Connection, namespace: str, vector: list[float], top_k: int,
        flt: dict[str, str],
    ) -> list[VectorMatch]:
        sql = (
            "WITH knn AS (SELECT rowid, distance FROM vec_items "
            "WHERE embedding MATCH ? AND k = ? AND namespace = ?"
        )
        params: list[Any] = [_pack(vector), top_k, namespace]
        if flt:
            subquery, sub_params = _filter_sql(namespace, flt)
            sql += f" AND rowid IN ({subquery})"
            params += sub_params
        sql += (
            ") SELECT items.id, items.metadata, knn.distance FROM knn "
            "JOIN items ON items.rowid = knn.rowid ORDER BY knn.distance"
        )
        rows = conn.execute(sql, params).fetchall()
        matches = []
        for vid, metadata, distance in rows:
            loaded: dict[str, MetadataValue] = json.loads(metadata)
            matches.append(VectorMatch(vid, 1.0 - float(distance), loaded))
        return matches

    async def delete_ids(self, namespace: str, ids: list[str]) -> None:
        """Delete the given ids from `namespace`; unknown ids are ignored."""
        if ids:
            await self._run(self._delete_ids_sync, namespace, ids)

    @staticmethod
    def _delete_ids_sync(conn: sqlite3.Connection, namespace: str, ids: list[str]) -> None:
        with _transaction(conn):
            rowids = []
            for vid in ids:
                row = conn.execute(
                    "SELECT rowid FROM items WHERE namespace = ? AND id = ?", (namespace, vid)
                ).fetchone()
                if row is not None:
                    rowids.append(row[0])
            _delete_rowids(conn, rowids)

    async def delete_where(self, namespace: str, filter: dict[str, str]) -> None:
        """Delete every vector in `namespace` whose metadata matches `filter` (non-empty)."""
        if not filter:
            raise ValueError("delete_where needs a non-empty filter")
        await self._run(self._delete_where_sync, namespace, filter)

    @staticmethod
    def _delete_where_sync(conn: sqlite3.Connection, namespace: str, flt: dict[str, str]) -> None:
        with _transaction(conn):
            subquery, params = _filter_sql(namespace, flt)
            rowids = [row[0] for row in conn.execute(subquery, params).fetchall()]
            _delete_rowids(conn, rowids)

    async def ping(self) -> None:
        """Open the database if needed and run a trivial query."""
        await self._run(lambda conn: conn.execute("SELECT vec_version()").fetchone())

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_sync)
        self._executor.shutdown(wait=False)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _delete_rowids(conn: sqlite3.Connection, rowids: list[int]) -> None:
    for rowid in rowids:
        conn.execute("DELETE FROM vec_items WHERE rowid = ?", (rowid,))
        conn.execute("DELETE FROM item_tags WHERE item = ?", (rowid,))
        conn.execute("DELETE FROM items WHERE rowid = ?", (rowid,))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
