"""psycopg 3 through the proxy: plain queries, transactions, pipeline mode with
an error in the middle, and COPY including a client-side CopyFail.

Usage: python3 psycopg_driver.py DSN. Prints one "ok: <check>" line per check
and exits non-zero on the first failure (or when psycopg is missing).
"""

import sys

try:
    import psycopg
    from psycopg import errors
except ImportError as exc:
    sys.exit(f"missing Python module: {exc}; install it with: pip install 'psycopg[binary]'")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def plain_queries(conn):
    check(conn.execute("select 1").fetchone() == (1,), "select 1")
    row = conn.execute("select %s::int + 1, %s::text, %s::text", [41, "héllo ☃", None]).fetchone()
    check(row == (42, "héllo ☃", None), f"parameters round trip: {row}")
    rows = conn.execute("select g from generate_series(1, 1000) g").fetchall()
    check([r[0] for r in rows] == list(range(1, 1001)), "1000 rows in order")
    print("ok: plain queries")


def transactions(dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("create table tx (id int)")
        conn.commit()
        with conn.transaction():
            conn.execute("insert into tx values (1), (2)")
        try:
            with conn.transaction():
                conn.execute("insert into tx values (3)")
                conn.execute("select 1/0")
        except errors.DivisionByZero:
            pass
        else:
            raise AssertionError("division by zero not raised")
        count = conn.execute("select count(*) from tx").fetchone()[0]
        check(count == 2, f"rolled-back insert is gone: {count}")
        conn.commit()
    print("ok: transactions")


def pipeline(conn):
    conn.execute("create table pl (id int primary key)")
    insert = "insert into pl values (%s)"
    raised = []
    with conn.pipeline() as p:
        conn.execute(insert, [1])
        conn.execute(insert, [2])
        p.sync()
        try:
            conn.execute(insert, [3])
            conn.execute(insert, [1])  # duplicate key: fails mid-segment
            conn.execute(insert, [4])  # skipped by the server until Sync
            p.sync()
        except errors.UniqueViolation as exc:
            raised.append(exc.sqlstate)
            # The error may surface before our Sync went out; make sure it did.
            try:
                p.sync()
            except errors.PipelineAborted:
                pass
        conn.execute(insert, [5])
        cur = conn.execute("select array_agg(id order by id) from pl")
    check(raised == ["23505"], f"unique violation surfaced once: {raised}")
    ids = cur.fetchone()[0]
    # 3 shared the failed implicit transaction, 4 was discarded, 5 ran after Sync.
    check(ids == [1, 2, 5], f"pipeline effects: {ids}")
    print("ok: pipeline with an error in the middle")


def copy(conn):
    conn.execute("create table cp (id int, name text)")
    rows = [(i, f"row {i}, \"quoted\"\n" if i % 3 == 0 else None) for i in range(20000)]
    with conn.cursor() as cur:
        with cur.copy("copy cp from stdin") as cp:
            for r in rows:
                cp.write_row(r)
        with cur.copy("copy (select * from cp order by id) to stdout") as cp:
            cp.set_types(["int4", "text"])
            back = list(cp.rows())
    check(back == rows, "COPY round trip")
    with conn.cursor() as cur:
        try:
            with cur.copy("copy cp from stdin") as cp:
                for r in rows:
                    cp.write_row(r)
                raise RuntimeError("client gives up")  # psycopg sends CopyFail
        except RuntimeError:
            pass
    count = conn.execute("select count(*) from cp").fetchone()[0]
    check(count == len(rows), f"CopyFail left no rows behind: {count}")
    print("ok: copy and CopyFail")


def main():
    dsn = sys.argv[1]
    check(psycopg.Pipeline.is_supported(), "libpq supports pipeline mode")
    with psycopg.connect(dsn, autocommit=True) as conn:
        plain_queries(conn)
        transactions(dsn)
        pipeline(conn)
        copy(conn)
        check(conn.execute("select 'still here'").fetchone() == ("still here",), "session usable")
    print("all checks passed")


if __name__ == "__main__":
    main()
