//! psql through the proxy: simple queries, `\\copy` in CSV, text and binary,
//! an error in the middle of COPY IN, and large objects over FunctionCall.

use crate::common::tools::*;
use crate::common::*;
use indexpilot::pg::PgOptions;

/// psql: simple queries, an error, and a CSV `\copy` round trip that must
/// come back byte for byte; the text format goes out and in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_csv_copy_round_trip() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let out = run_ok(
        psql(&pg, proxy.port()).args(["-c", "select 1; select 'héllo ☃', 2 + 2"]),
        "psql -c",
    )
    .await;
    assert_eq!(out, "1\nhéllo ☃|4\n");
    let failed = run_within(
        psql(&pg, proxy.port()).args(["-c", "select 1/0"]),
        TOOL_DEADLINE,
        "psql 1/0",
    )
    .await;
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("division by zero"));

    let dir = Scratch::new("csv");
    let csv = csv_fixture(5000);
    let input = dir.write("in.csv", &csv);
    let (out_csv, out_txt) = (dir.path("out.csv"), dir.path("out.txt"));
    let script = format!(
        "create table t (id int primary key, name text, amount numeric, note text);\n\
         create table t_text (like t);\n\
         \\copy t from '{input}' csv\n\
         \\copy (select * from t order by id) to '{}' csv\n\
         \\copy t to '{}'\n\
         \\copy t_text from '{}'\n\
         select count(*) from t;\n\
         select (select md5(string_agg(t::text, '|' order by id)) from t)\n\
              = (select md5(string_agg(x::text, '|' order by id)) from t_text x);\n",
        out_csv.display(),
        out_txt.display(),
        out_txt.display()
    );
    let script = dir.write("copy.sql", script);
    let out = run_ok(psql(&pg, proxy.port()).args(["-f", &script]), "psql \\copy").await;
    assert_eq!(out, "5000\nt\n");
    let back = std::fs::read_to_string(&out_csv).expect("read exported CSV");
    assert!(
        back == csv,
        "CSV round trip differs ({} vs {} bytes)",
        back.len(),
        csv.len()
    );
}

/// `COPY ... TO STDOUT (FORMAT binary)` out, `\copy ... (format binary)` in,
/// and out again: the two binary streams must be identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_round_trip() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let setup =
        "create table b (id int, f float8, ts timestamptz, data bytea, arr int[], j jsonb, n text);
        insert into b select g, g / 3.0, '2024-01-01'::timestamptz + g * interval '1 minute',
            decode(md5(g::text), 'hex'), array[g, g + 1], jsonb_build_object('g', g),
            case when g % 5 = 0 then null else repeat('z', g % 50) end
        from generate_series(1, 20000) g;
        create table b2 (like b);";
    run_ok(psql(&pg, proxy.port()).args(["-c", setup]), "setup").await;
    let copy_out = |table: &str| {
        let sql = format!("copy (select * from {table} order by id) to stdout (format binary)");
        let mut cmd = psql(&pg, proxy.port());
        cmd.args(["-c", &sql]);
        cmd
    };
    let first = run_within(&mut copy_out("b"), TOOL_DEADLINE, "copy b out").await;
    assert!(first.status.success(), "{}", describe(&first));
    assert!(
        first.stdout.starts_with(b"PGCOPY\n\xff\r\n\0"),
        "binary COPY header"
    );
    let dir = Scratch::new("bin");
    let file = dir.write("b.bin", &first.stdout);
    let copy_in = format!("\\copy b2 from '{file}' (format binary)");
    let count = run_ok(
        psql(&pg, proxy.port()).args(["-c", &copy_in, "-c", "select count(*) from b2"]),
        "\\copy from binary",
    )
    .await;
    assert_eq!(count, "20000\n");
    let second = run_within(&mut copy_out("b2"), TOOL_DEADLINE, "copy b2 out").await;
    assert!(second.status.success(), "{}", describe(&second));
    assert!(
        first.stdout == second.stdout,
        "binary COPY round trip differs ({} vs {} bytes)",
        first.stdout.len(),
        second.stdout.len()
    );
}

/// A bad row in the middle of a `\copy`: the server errors during COPY IN
/// while psql keeps sending; the same session then carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_error_leaves_session_usable() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let dir = Scratch::new("copyfail");
    let rows = |range: std::ops::Range<u32>| -> String {
        range.map(|i| format!("{i},row {i}\n")).collect()
    };
    let bad = dir.write(
        "bad.csv",
        format!(
            "{}oops,not a number\n{}",
            rows(0..20000),
            rows(20000..40000)
        ),
    );
    let good = dir.write("good.csv", rows(0..100));
    let script = dir.write(
        "s.sql",
        format!(
            "create table t (id int, name text);\n\
             select pg_backend_pid() as pid \\gset\n\
             \\set ON_ERROR_STOP off\n\
             \\copy t from '{bad}' csv\n\
             \\set ON_ERROR_STOP on\n\
             select count(*) from t;\n\
             select pg_backend_pid() = :pid;\n\
             \\copy t from '{good}' csv\n\
             select count(*) from t;\n"
        ),
    );
    let out = run_within(
        psql(&pg, proxy.port()).args(["-v", "VERBOSITY=verbose", "-f", &script]),
        TOOL_DEADLINE,
        "psql copy error",
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\nt\n100\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR:  22P02: invalid input syntax") && stderr.contains("line 20001"),
        "{stderr}"
    );
}

/// `\lo_import` / `\lo_export` use the FunctionCall message (lo_open,
/// lo_write, lo_read...): a 3 MB file must come back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_round_trip() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let dir = Scratch::new("lo");
    let data = pseudo_random_bytes((3 << 20) + 7);
    let input = dir.write("in.bin", &data);
    let output = dir.path("out.bin");
    let script = dir.write(
        "lo.sql",
        format!(
            "\\lo_import '{input}'\n\
             \\set oid :LASTOID\n\
             \\lo_export :oid '{}'\n\
             select octet_length(lo_get(:oid));\n\
             \\lo_unlink :oid\n\
             select count(*) from pg_largeobject_metadata where oid = :oid;\n",
            output.display()
        ),
    );
    let out = run_ok(psql(&pg, proxy.port()).args(["-f", &script]), "psql lo").await;
    assert_eq!(out, format!("{}\n0\n", data.len()));
    let back = std::fs::read(&output).expect("read exported large object");
    assert!(
        back == data,
        "large object differs ({} bytes back)",
        back.len()
    );
}

/// `n` rows in the exact form PostgreSQL writes CSV: fields quoted only when
/// they hold a delimiter, quote or newline, or are empty strings; NULL is an
/// empty unquoted field. Ordered by id, so an ordered export must match.
fn csv_fixture(n: u32) -> String {
    fn field(v: Option<&str>) -> String {
        match v {
            None => String::new(),
            Some(s) if s.is_empty() || s.contains([',', '"', '\n', '\r']) => {
                format!("\"{}\"", s.replace('"', "\"\""))
            }
            Some(s) => s.to_string(),
        }
    }
    let mut out = String::new();
    for i in 1..=n {
        let name = match i % 7 {
            0 => Some(format!("plain{i}")),
            1 => Some(format!("comma, {i}")),
            2 => Some(format!("quote \"{i}\"")),
            3 => Some(format!("line\nbreak {i}")),
            4 => Some(String::new()),
            5 => None,
            _ => Some(format!("ünïcødé ☃ {i}")),
        };
        let amount = format!("{}.{:02}", i * 7 % 1000, i % 100);
        let note = match i % 3 {
            0 => None,
            _ if i % 500 == 0 => Some("w".repeat(20_000)),
            _ => Some(format!("n{i}")),
        };
        let fields = [
            i.to_string(),
            field(name.as_deref()),
            amount,
            field(note.as_deref()),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Deterministic incompressible-looking bytes (xorshift64).
fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
