"""The Responses API's state (stored responses, their input items and their conversations) in
a database that every frontend replica shares: SQLite by default (a file in the cache folder,
no set-up), PostgreSQL for several replicas, chosen by one URL (`--responses-store`).

SQLAlchemy's async Core speaks to both (aiosqlite, asyncpg); the SQL is the common subset.
A record is one row: the response object, its own input items and the chat messages of its
whole conversation (what a later `previous_response_id` continues), all JSON text.

Migrations: `MIGRATIONS[i]` takes a database from version i to i + 1, and `schema_version`
says where one is, so a new frontend brings an old database up to date when it opens it.
Two replicas opening one PostgreSQL at once take turns (an advisory lock).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS: list[list[str]] = [
    [  # 1: the responses
        "CREATE TABLE responses (id VARCHAR(80) PRIMARY KEY, created_at BIGINT NOT NULL,"
        " response TEXT NOT NULL, input_items TEXT NOT NULL, messages TEXT NOT NULL)",
    ],
    [  # 2: a status of its own (background responses: another replica cancels), and retention's index
        "ALTER TABLE responses ADD COLUMN status VARCHAR(20) NOT NULL DEFAULT 'completed'",
        "CREATE INDEX responses_created_at ON responses (created_at)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
# Statuses a response can still leave (a background response's).
UNFINISHED = ("queued", "in_progress")
_LOCK_ID = 290_029  # PostgreSQL advisory lock of the migrations (any constant of ours)


def default_url() -> str:
    """A SQLite file in the cache folder: $TRITON_LLM_CACHE, the checkout's .cache, or ./.cache."""
    if os.environ.get("TRITON_LLM_CACHE"):
        cache = Path(os.environ["TRITON_LLM_CACHE"])
    else:
        checkout = Path(__file__).resolve().parents[1]
        cache = checkout / ".cache" if (checkout / "pyproject.toml").is_file() else Path.cwd() / ".cache"
    return f"sqlite:///{cache / 'responses.sqlite'}"


def engine_url(url: str) -> str:
    """The URL with the async driver: sqlite:/// -> aiosqlite, postgresql:// -> asyncpg."""
    for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://"),
                          ("postgres://", "postgresql+asyncpg://")):  # fmt: skip
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ValueError(f"responses store {url!r}: expected sqlite:///<file> or postgresql://...")


@dataclass
class Record:
    id: str
    status: str
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    messages: list[dict[str, Any]]


class StoreFull(Exception):
    """A record over the size cap."""


class ResponseStore:
    def __init__(self, engine: AsyncEngine, retention_s: float, max_bytes: int):
        self.engine, self.retention_s, self.max_bytes = engine, retention_s, max_bytes
        self._next_sweep = 0.0

    @classmethod
    async def open(cls, url: str, retention_s: float, max_bytes: int) -> ResponseStore:
        async_url = engine_url(url)
        if async_url.startswith("sqlite"):
            path = async_url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLite: one writer at a time; waits out another process's write instead of failing.
        args = {"connect_args": {"timeout": 30}} if async_url.startswith("sqlite") else {"pool_pre_ping": True}
        store = cls(create_async_engine(async_url, **args), retention_s, max_bytes)
        await store.migrate()
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def version(self) -> int:
        async with self.engine.connect() as conn:
            return await _version(conn)

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            await conn.execute(text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
            current = await _version(conn)
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"responses store: schema version {current} is newer than this frontend's")
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    await conn.execute(text(statement))
            await conn.execute(text("DELETE FROM schema_version"))
            await conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": SCHEMA_VERSION})

    def encode(self, record: Record) -> dict[str, Any]:
        """The row's values; StoreFull when the record is over the cap."""
        values = {
            "id": record.id,
            "status": record.status,
            "response": json.dumps(record.response, ensure_ascii=False),
            "input_items": json.dumps(record.input_items, ensure_ascii=False),
            "messages": json.dumps(record.messages, ensure_ascii=False),
        }
        size = sum(len(values[k].encode()) for k in ("response", "input_items", "messages"))
        if size > self.max_bytes:
            raise StoreFull(f"the stored response would be {size} bytes; this server stores at most {self.max_bytes}")
        return values

    async def put(self, record: Record) -> None:
        """Insert the record, or replace the one with its id."""
        values = self.encode(record)
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM responses WHERE id = :id"), {"id": record.id})
            await conn.execute(
                text(
                    "INSERT INTO responses (id, created_at, status, response, input_items, messages)"
                    " VALUES (:id, :created_at, :status, :response, :input_items, :messages)"
                ),
                {**values, "created_at": int(record.response.get("created_at") or time.time())},
            )
        await self._sweep()

    async def finish(self, record: Record) -> bool:
        """Store an unfinished response's outcome, unless it was cancelled (or deleted) meanwhile."""
        return await self._settle(self.encode(record), ("status", "response", "input_items", "messages"))

    async def get(self, response_id: str) -> Record | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, status, response, input_items, messages FROM responses"
                        " WHERE id = :id AND created_at >= :oldest"
                    ),
                    {"id": response_id, "oldest": self._oldest()},
                )
            ).first()
        if row is None:
            return None
        return Record(
            row.id, row.status, json.loads(row.response), json.loads(row.input_items), json.loads(row.messages)
        )

    async def status(self, response_id: str) -> str | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(text("SELECT status FROM responses WHERE id = :id"), {"id": response_id})).first()
        return None if row is None else row.status

    async def delete(self, response_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(text("DELETE FROM responses WHERE id = :id"), {"id": response_id})
            return result.rowcount == 1

    async def cancel(self, record: Record) -> bool:
        """Mark an unfinished response cancelled (its runner, on any replica, sees it and stops)."""
        return await self._settle({**self.encode(record), "status": "cancelled"}, ("status", "response"))

    async def _settle(self, values: dict, columns: tuple[str, ...]) -> bool:
        """Write `columns` of a response that is still unfinished; False when it no longer is (one
        UPDATE: a finish and a cancel racing on two replicas leave exactly one of them)."""
        assignments = ", ".join(f"{c} = :{c}" for c in columns)  # our own column names, never a client's
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(f"UPDATE responses SET {assignments} WHERE id = :id AND status IN ('queued', 'in_progress')"),
                {"id": values["id"], **{c: values[c] for c in columns}},
            )
            return result.rowcount == 1

    def _oldest(self) -> int:
        return int(time.time() - self.retention_s) if self.retention_s > 0 else 0

    async def _sweep(self) -> None:
        """Delete the responses past retention, at most once a minute (on a write)."""
        now = time.monotonic()
        if self.retention_s <= 0 or now < self._next_sweep:
            return
        self._next_sweep = now + 60
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM responses WHERE created_at < :oldest"), {"oldest": self._oldest()})


async def _version(conn) -> int:
    exists = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "schema_version"))
    if not exists:
        return 0
    row = (await conn.execute(text("SELECT MAX(version) AS v FROM schema_version"))).first()
    return int(row.v or 0)
