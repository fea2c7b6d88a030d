"""asyncpg through the proxy: ParameterStatus (server_version, SET), prepared
statements (Parse/Describe/Flush without Sync), parameters, executemany,
copy_records_to_table, cursors with prefetch (Execute with a row limit, then
PortalSuspended) and recovery after an error.

Usage: python3 asyncpg_driver.py DSN. Prints one "ok: <check>" line per check
and exits non-zero on the first failure (or when asyncpg is missing).
"""

import asyncio
import sys

try:
    import asyncpg
except ImportError as exc:
    sys.exit(f"missing Python module: {exc}; install it with: pip install asyncpg")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def parameter_status(conn):
    version = conn.get_server_version()
    num = await conn.fetchval("select current_setting('server_version_num')::int")
    check(version.major == num // 10000, f"server_version {version} vs {num}")
    check(conn.get_settings().server_version.startswith(str(version.major)), "settings")
    await conn.execute("set application_name = 'asyncpg-through-proxy'")
    name = conn.get_settings().application_name
    check(name == "asyncpg-through-proxy", f"ParameterStatus after SET: {name}")
    print("ok: server_version and ParameterStatus")


async def prepared(conn):
    stmt = await conn.prepare("select $1::int * 2, $2::text")
    for i in range(300):
        row = await stmt.fetchrow(i, f"v{i}")
        check(tuple(row) == (i * 2, f"v{i}"), f"prepared execution {i}: {row}")
    other = await conn.prepare("select g from generate_series(1, $1::int) g")
    check([r[0] for r in await other.fetch(5)] == [1, 2, 3, 4, 5], "second statement")
    check(await stmt.fetchval(21, "x") == 42, "first statement still prepared")
    print("ok: prepared statements")


async def parameters(conn):
    rows = await conn.fetch(
        "select g, $2::text || g from generate_series(1, $1::int) g", 100, "n"
    )
    check([(r[0], r[1]) for r in rows] == [(g, f"n{g}") for g in range(1, 101)], "fetch")
    check(await conn.fetchval("select $1::bytea", b"\x00\xff" * 1000) == b"\x00\xff" * 1000, "bytea")
    try:
        await conn.fetchval("select 1 / $1::int", 0)
    except asyncpg.DivisionByZeroError:
        pass
    else:
        raise AssertionError("division by zero not raised")
    check(await conn.fetchval("select $1::int", 7) == 7, "usable after an error")
    print("ok: fetch with parameters")


async def copy_and_executemany(conn):
    await conn.execute("create table rec (id int primary key, name text)")
    records = [(i, f"name {i}") for i in range(20000)]
    status = await conn.copy_records_to_table("rec", records=records)
    check(status == "COPY 20000", f"copy status {status}")
    await conn.executemany("insert into rec values ($1, $2)", [(i, "m") for i in range(20000, 20500)])
    count, total = await conn.fetchrow("select count(*), sum(id) from rec")
    check((count, total) == (20500, sum(range(20500))), f"rows: {count}, {total}")
    print("ok: copy_records_to_table and executemany")


async def cursors(conn):
    async with conn.transaction():
        total = 0
        async for row in conn.cursor("select g from generate_series(1, 1000) g", prefetch=50):
            total += row[0]
        check(total == 500500, f"prefetch cursor sum {total}")
        cur = await conn.cursor("select g from generate_series(1, $1::int) g", 100)
        first = [r[0] for r in await cur.fetch(10)]
        nxt = await cur.fetchrow()
        check(first == list(range(1, 11)) and nxt[0] == 11, f"cursor fetch {first} {nxt}")
    print("ok: cursors with prefetch")


async def main():
    conn = await asyncpg.connect(sys.argv[1])
    try:
        await parameter_status(conn)
        await prepared(conn)
        await parameters(conn)
        await copy_and_executemany(conn)
        await cursors(conn)
    finally:
        await conn.close()
    print("all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
