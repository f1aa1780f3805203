"""`@app.job(concurrency=N)` and `_concurrency_key` (docs/control.md):
checked at declaration and at enqueue, carried in the record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bananas import Bananas
from bananas.concurrency import bucket_of, bucket_parts
from bananas.config import Settings
from bananas.errors import BananasError

app = Bananas(settings=Settings())


@app.job(concurrency=2)
def capped(n: int) -> int:
    return n


@app.job
def free(n: int) -> int:
    return n


@pytest.mark.parametrize("bad", [0, -1, "2", 2.0, True, 10**7])
def test_concurrency_must_be_a_positive_whole_number(bad: Any) -> None:
    other = Bananas(settings=Settings())
    with pytest.raises(BananasError, match="concurrency="):

        @other.job(concurrency=bad)
        def f() -> None: ...


def test_the_definition_carries_the_limit() -> None:
    assert app.handlers["capped"].concurrency == 2
    assert app.handlers["free"].concurrency is None


def test_the_record_carries_the_key() -> None:
    [keyed, plain] = app.build_jobs(
        [capped.options(concurrency_key="customer-7").spec(n=1), capped.spec(n=2)]
    )
    assert orjson.loads(keyed.record)["concurrency_key"] == "customer-7"
    assert "concurrency_key" not in orjson.loads(plain.record)
    [raw] = app.build_jobs([app.spec("capped", _concurrency_key="c-8", n=3)])
    assert orjson.loads(raw.record)["concurrency_key"] == "c-8"


def test_a_key_on_a_type_without_a_limit_is_refused_at_enqueue() -> None:
    with pytest.raises(BananasError, match="no concurrency limit"):
        app.spec("free", _concurrency_key="customer-7", n=1)
    with pytest.raises(BananasError, match="no concurrency limit"):
        free.options(concurrency_key="customer-7").spec(n=1)


@pytest.mark.parametrize("bad", ["", 7, "x" * 201])
def test_a_bad_key_is_refused(bad: Any) -> None:
    with pytest.raises(BananasError, match="_concurrency_key="):
        app.spec("capped", _concurrency_key=bad, n=1)


def test_buckets_cannot_collide() -> None:
    assert bucket_of("a:b", None) != bucket_of("a", "b")
    assert bucket_parts(bucket_of("a", "b")) == ("a", "b")
    assert bucket_parts(bucket_of("a", None)) == ("a", None)


def test_usage_of_a_sqlite_file_without_the_slot_tables_is_empty(tmp_path: Any) -> None:
    """`bananas status` on a file no worker of this version has written yet (the
    read opens it for writing first, which adds the tables)."""
    import asyncio
    import sqlite3

    from bananas.brokers import from_url

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE unrelated (a)")
    conn.commit()
    conn.close()

    async def usage() -> list[Any]:
        broker = from_url(f"sqlite:///{path}")
        try:
            return await broker.slot_usage()  # type: ignore[attr-defined, no-any-return]
        finally:
            await broker.close()

    assert asyncio.run(usage()) == []
