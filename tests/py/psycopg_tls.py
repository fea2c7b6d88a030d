"""psycopg 3 over client TLS through the proxy: a binary COPY streamed from
one connection into another, thirty times (psycopg waits on its socket, so
a TLS record larger than libpq's free buffer space can leave data it never
sees: issue 17 saw this hang in 14 of 30 loops; it did not hang on the
machine this was written on, so tests/protocol/tls.rs checks the record
size itself), and a cancel over TLS (libpq 17+ negotiates TLS for it and
reports a connection closed without close_notify as a failed cancel).

Usage: python3 psycopg_tls.py DSN (with sslmode=require). Prints one
"ok: <check>" line per check and exits non-zero on the first failure, or
with status 3 when a step hangs.
"""

import os
import sys
import threading
import time

try:
    import psycopg
    from psycopg import errors
except ImportError as exc:
    sys.exit(f"missing Python module: {exc}; install it with: pip install 'psycopg[binary]'")

# A step that takes longer than this is taken for a hang.
STEP_DEADLINE = 60


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def watchdog(what):
    def hang():
        print(f"hang: {what}", flush=True)
        os._exit(3)

    timer = threading.Timer(STEP_DEADLINE, hang)
    timer.daemon = True
    timer.start()
    return timer


def binary_copy_between_connections(dsn):
    with psycopg.connect(dsn) as src, psycopg.connect(dsn) as dst:
        dst.execute("create temporary table copied (id int, payload text)")
        for loop in range(30):
            timer = watchdog(f"binary COPY loop {loop}")
            dst.execute("truncate copied")
            out = "copy (select g, repeat('x', 200) from generate_series(1, 20000) g) to stdout (format binary)"
            with src.cursor().copy(out) as reader:
                with dst.cursor().copy("copy copied from stdin (format binary)") as writer:
                    for chunk in reader:
                        writer.write(chunk)
            count = dst.execute("select count(*) from copied").fetchone()[0]
            check(count == 20000, f"loop {loop}: {count} rows copied")
            timer.cancel()
    print("ok: binary copy between connections, 30 loops")


def cancel_over_tls(dsn):
    with psycopg.connect(dsn) as conn:
        failed = []

        def cancel():
            time.sleep(0.5)
            try:
                conn.cancel_safe()
            except Exception as exc:  # the report of a failed cancel
                failed.append(exc)

        timer = watchdog("cancel over TLS")
        canceller = threading.Thread(target=cancel)
        canceller.start()
        try:
            conn.execute("select pg_sleep(30)")
        except errors.QueryCanceled:
            pass
        else:
            raise AssertionError("the query was not cancelled")
        canceller.join()
        timer.cancel()
        check(not failed, f"cancel_safe reported: {failed}")
    print("ok: cancel over TLS")


def main():
    dsn = sys.argv[1]
    with psycopg.connect(dsn) as conn:
        ssl = conn.execute("select 1").fetchone() and conn.pgconn.ssl_in_use
        check(ssl, "the connection to the proxy is TLS")
    binary_copy_between_connections(dsn)
    cancel_over_tls(dsn)
    print("all checks passed")


if __name__ == "__main__":
    main()
