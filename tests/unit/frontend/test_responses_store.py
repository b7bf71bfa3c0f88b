"""The Responses API's store on both databases: SQLite (a file) and a real PostgreSQL server
(tests/postgres.py, started once for the session): records round-trip, a database written by
the first schema is migrated when a new frontend opens it, retention hides and deletes old
responses, the size cap refuses, and a cancelled background response is not overwritten."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import text

from openai_frontend.responses_store import MIGRATIONS, SCHEMA_VERSION, Record, ResponseStore, StoreFull, engine_url

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=ENGINES)
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'responses.sqlite'}"
    server_url = request.getfixturevalue("postgres")
    asyncio.run(_drop_all(server_url))  # each test on an empty database
    return server_url


async def _drop_all(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(engine_url(url))
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS responses"))
        await conn.execute(text("DROP TABLE IF EXISTS schema_version"))
    await engine.dispose()


def record(rid: str, status: str = "completed", created: float | None = None, text_: str = "hi") -> Record:
    return Record(rid, status, {"id": rid, "created_at": int(created or time.time()), "status": status}, [],
                  [{"role": "user", "content": text_}])  # fmt: skip


def run(coro):
    return asyncio.run(coro)


def test_a_record_round_trips_and_is_deleted(url):
    async def go():
        store = await ResponseStore.open(url, retention_s=3600, max_bytes=1 << 20)
        assert await store.version() == SCHEMA_VERSION
        await store.put(record("resp_a", text_="héllo ✓"))
        got = await store.get("resp_a")
        assert got.messages == [{"role": "user", "content": "héllo ✓"}] and got.status == "completed"
        assert await store.delete("resp_a") and await store.get("resp_a") is None
        assert not await store.delete("resp_a")
        await store.close()

    run(go())


def test_a_database_of_the_first_schema_is_migrated(url):
    async def go():
        # What a frontend of schema 1 wrote, by its own statements.
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(engine_url(url))
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
            for statement in MIGRATIONS[0]:
                await conn.execute(text(statement))
            await conn.execute(text("INSERT INTO schema_version VALUES (1)"))
            await conn.execute(
                text("INSERT INTO responses VALUES ('resp_old', :t, '{\"id\": \"resp_old\"}', '[]', '[]')"),
                {"t": int(time.time())},
            )
        await engine.dispose()
        store = await ResponseStore.open(url, retention_s=3600, max_bytes=1 << 20)
        assert await store.version() == SCHEMA_VERSION
        old = await store.get("resp_old")
        assert old.response == {"id": "resp_old"} and old.status == "completed"
        await store.close()
        again = await ResponseStore.open(url, retention_s=3600, max_bytes=1 << 20)  # idempotent
        assert (await again.get("resp_old")).id == "resp_old"
        await again.close()

    run(go())


def test_retention_hides_and_then_deletes_old_responses(url):
    async def go():
        store = await ResponseStore.open(url, retention_s=60, max_bytes=1 << 20)
        await store.put(record("resp_old", created=time.time() - 3600))
        assert await store.get("resp_old") is None
        store._next_sweep = 0.0
        await store.put(record("resp_new"))  # a write sweeps
        async with store.engine.connect() as conn:
            ids = [r.id for r in await conn.execute(text("SELECT id FROM responses"))]
        assert ids == ["resp_new"]
        await store.close()

    run(go())


def test_the_size_cap_and_a_cancelled_response_kept_cancelled(url):
    async def go():
        store = await ResponseStore.open(url, retention_s=0, max_bytes=200)
        with pytest.raises(StoreFull):
            await store.put(record("resp_big", text_="x" * 300))
        await store.put(record("resp_bg", status="queued"))
        cancelled = record("resp_bg", status="cancelled")
        assert await store.cancel(cancelled)
        assert not await store.finish(record("resp_bg", status="completed"))  # the runner's late result
        assert (await store.get("resp_bg")).status == "cancelled"
        await store.close()

    run(go())


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(RuntimeError, match="newer"):
        run(ResponseStore.open(f"sqlite:///{path}", 0, 1 << 20))


def test_urls():
    assert engine_url("sqlite:////x/y.db") == "sqlite+aiosqlite:////x/y.db"
    assert engine_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    with pytest.raises(ValueError, match="expected"):
        engine_url("mysql://x")
