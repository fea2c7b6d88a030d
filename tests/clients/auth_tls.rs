//! Authentication and TLS through the proxy: md5 and SCRAM relayed, client
//! TLS terminated at the proxy (with SCRAM channel binding), TLS upstream.

use std::time::{Duration, Instant};

use crate::common::tools::*;
use crate::common::*;
use indexpilot::pg::{AuthMethod, PgOptions};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_authentication_is_relayed() {
    password_authentication(AuthMethod::Md5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_authentication_is_relayed() {
    password_authentication(AuthMethod::Scram).await;
}

/// The right password logs in (tokio-postgres and psql); a wrong one gets
/// the server's 28P01.
async fn password_authentication(method: AuthMethod) {
    let pg = start_pg(PgOptions {
        auth: method,
        ..PgOptions::default()
    });
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.expect("right password");
    let row = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), pg.user());
    let wrong = format!(
        "host=127.0.0.1 port={} user={} password=wrong dbname={}",
        proxy.port(),
        pg.user(),
        pg.dbname()
    );
    let Err(err) = connect(&wrong).await else {
        panic!("wrong password accepted");
    };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");

    let out = run_ok(psql(&pg, proxy.port()).args(["-c", "select 'in'"]), "psql").await;
    assert_eq!(out, "in\n");
    let refused = run_within(
        psql(&pg, proxy.port())
            .env("PGPASSWORD", "wrong")
            .args(["-c", "select 1"]),
        TOOL_DEADLINE,
        "psql wrong password",
    )
    .await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
}

/// Client TLS terminated at the proxy with an rcgen certificate: `require`
/// and `verify-full` (against that certificate) both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_is_terminated_at_the_proxy() {
    let pg = start_pg(PgOptions::default());
    let dir = Scratch::new("tls");
    let (cert, key) = proxy_certificate(&dir);
    let proxy = start_proxy(&pg, &[("tls.cert", &cert), ("tls.key", &key)]).await;
    let out = run_ok(
        psql(&pg, proxy.port()).env("PGSSLMODE", "require").args([
            "-c",
            "select 1",
            "-c",
            "\\conninfo",
        ]),
        "psql sslmode=require",
    )
    .await;
    assert!(
        out.starts_with("1\n") && out.contains("SSL connection"),
        "{out}"
    );
    let out = run_ok(
        psql(&pg, proxy.port())
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &cert)
            .env("PGHOST", "localhost")
            .env("PGHOSTADDR", "127.0.0.1")
            .args(["-c", "select 'verified'"]),
        "psql sslmode=verify-full",
    )
    .await;
    assert_eq!(out, "verified\n");
}

/// psycopg 3 (libpq 17+) over TLS through the proxy: thirty binary COPYs
/// from one connection into another without a hang, and a cancel over TLS
/// that psycopg reports as successful (`tests/py/psycopg_tls.py`). The
/// cancel failed before the proxy closed TLS cleanly; the COPYs did not
/// hang here even with 16 KiB records (tests/protocol/tls.rs checks those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3_over_client_tls() {
    let pg = start_pg(PgOptions::default());
    let dir = Scratch::new("pytls");
    let (cert, key) = proxy_certificate(&dir);
    let proxy = start_proxy(&pg, &[("tls.cert", &cert), ("tls.key", &key)]).await;
    let dsn = format!("{}?sslmode=require", proxy.url(&pg));
    let out = run_python("psycopg_tls.py", &[&dsn]).await;
    for check in [
        "ok: binary copy between connections, 30 loops",
        "ok: cancel over TLS",
        "all checks passed",
    ] {
        assert!(
            out.lines().any(|l| l == check),
            "missing {check:?} in:\n{out}"
        );
    }
}

/// Client TLS ends at the proxy, so SCRAM channel binding cannot reach the
/// server: `channel_binding=prefer` logs in without it and
/// `channel_binding=require` fails promptly instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_channel_binding_with_client_tls() {
    scram_channel_binding(false).await;
}

/// As above with TLS upstream too: the server then offers
/// SCRAM-SHA-256-PLUS, which the proxy strips (its certificate is not the
/// server's), and the login must still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_channel_binding_with_tls_on_both_legs() {
    scram_channel_binding(true).await;
}

async fn scram_channel_binding(upstream_tls: bool) {
    let pg = start_pg(PgOptions {
        auth: AuthMethod::Scram,
        ssl: upstream_tls,
        ..PgOptions::default()
    });
    if upstream_tls {
        // The server itself does offer channel binding.
        run_ok(
            psql(&pg, pg.port())
                .env("PGSSLMODE", "require")
                .env("PGCHANNELBINDING", "require")
                .args(["-c", "select 'direct'"]),
            "psql directly with channel_binding=require",
        )
        .await;
    }
    let dir = Scratch::new("cb");
    let (cert, key) = proxy_certificate(&dir);
    let mut overrides = vec![("tls.cert", cert.as_str()), ("tls.key", key.as_str())];
    if upstream_tls {
        overrides.push(("upstream_tls.mode", "require"));
    }
    let proxy = start_proxy(&pg, &overrides).await;
    // With TLS on both legs the server supports binding on its leg, so a
    // client that could bind (libpq's default `prefer`) but was not offered
    // -PLUS is refused by the server as a downgrade; such clients must set
    // channel_binding=disable (documented in proxy.toml and README).
    let binding = if upstream_tls { "disable" } else { "prefer" };
    if upstream_tls {
        let refused = run_within(
            psql(&pg, proxy.port())
                .env("PGSSLMODE", "require")
                .env("PGCHANNELBINDING", "prefer")
                .args(["-c", "select 1"]),
            Duration::from_secs(30),
            "psql channel_binding=prefer, TLS on both legs",
        )
        .await;
        assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("channel binding"), "{stderr}");
    }
    let out = run_ok(
        psql(&pg, proxy.port())
            .env("PGSSLMODE", "require")
            .env("PGCHANNELBINDING", binding)
            .args([
                "-c",
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            ])
            .args(["-c", "\\conninfo"]),
        "psql with channel binding prefer (plain upstream) or disable (TLS upstream)",
    )
    .await;
    let upstream_ssl = if upstream_tls { "t\n" } else { "f\n" };
    assert!(
        out.starts_with(upstream_ssl) && out.contains("SSL connection"),
        "{out}"
    );
    let start = Instant::now();
    let refused = run_within(
        psql(&pg, proxy.port())
            .env("PGSSLMODE", "require")
            .env("PGCHANNELBINDING", "require")
            .args(["-c", "select 1"]),
        Duration::from_secs(30),
        "psql channel_binding=require",
    )
    .await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("channel binding"), "{stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "refusal took {:?}",
        start.elapsed()
    );
}

/// A plain-text client, TLS upstream, SCRAM: the server offers
/// SCRAM-SHA-256-PLUS on its TLS leg, which a plain client cannot use (libpq
/// refuses a PLUS offer over a non-SSL connection), so the client must see
/// the same offer as from a server it reaches in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_with_plain_client_and_tls_upstream() {
    let pg = start_pg(PgOptions {
        auth: AuthMethod::Scram,
        ssl: true,
        ..PgOptions::default()
    });
    let proxy = start_proxy(&pg, &[("upstream_tls.mode", "require")]).await;
    assert_upstream_is_tls(&proxy.conninfo(&pg)).await;
    let out = run_ok(
        psql(&pg, proxy.port()).env("PGSSLMODE", "disable").args([
            "-c",
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ]),
        "psql sslmode=disable, SCRAM over TLS upstream",
    )
    .await;
    assert_eq!(out, "t\n");
}

/// Without a certificate the proxy answers SSLRequest with `N`: `require`
/// fails cleanly, `prefer` falls back to plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_tls_configured() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let refused = run_within(
        psql(&pg, proxy.port())
            .env("PGSSLMODE", "require")
            .args(["-c", "select 1"]),
        Duration::from_secs(30),
        "psql sslmode=require",
    )
    .await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("server does not support SSL"), "{stderr}");
    let out = run_ok(
        psql(&pg, proxy.port()).env("PGSSLMODE", "prefer").args([
            "-c",
            "select 'plain'",
            "-c",
            "\\conninfo",
        ]),
        "psql sslmode=prefer",
    )
    .await;
    assert!(out.starts_with("plain\n") && !out.contains("SSL"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_require() {
    let pg = start_pg(PgOptions {
        ssl: true,
        ..PgOptions::default()
    });
    let proxy = start_proxy(&pg, &[("upstream_tls.mode", "require")]).await;
    assert_upstream_is_tls(&proxy.conninfo(&pg)).await;
}

/// `verify-full` against the server's own certificate works; a name the
/// certificate does not carry is refused with 08001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verify_full() {
    let pg = start_pg(PgOptions {
        ssl: true,
        ..PgOptions::default()
    });
    let ca = pg.ssl_cert_path().expect("server certificate");
    let ca = ca.to_str().expect("UTF-8 path");
    let verified = |name| {
        [
            ("upstream_tls.mode", "verify-full"),
            ("upstream_tls.ca_file", ca),
            ("upstream_tls.server_name", name),
        ]
    };
    let proxy = start_proxy(&pg, &verified("localhost")).await;
    assert_upstream_is_tls(&proxy.conninfo(&pg)).await;
    let wrong = start_proxy(&pg, &verified("not-the-server.example")).await;
    let Err(err) = connect(&wrong.conninfo(&pg)).await else {
        panic!("certificate name mismatch accepted");
    };
    assert_eq!(
        err.code(),
        Some(&SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
        "{err}"
    );
}

async fn assert_upstream_is_tls(conninfo: &str) {
    let client = connect(conninfo).await.expect("connect through proxy");
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "upstream connection is not TLS");
    // Larger than a TLS record, both ways.
    let big = "y".repeat(100_000);
    let row = client
        .query_one("select $1::text || 'z'", &[&big])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0).len(), big.len() + 1);
}

/// IndexPilot's own connections (statistics flush, indexer seat, CLI
/// commands) use TLS when the server offers it, as a managed database that
/// refuses plain connections requires; `sslmode=disable` keeps them plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexpilot_own_connections_use_tls() {
    let pg = start_pg(PgOptions {
        ssl: true,
        ..PgOptions::default()
    });
    let admin = pg.url();
    let proxy = start_proxy(
        &pg,
        &[
            ("admin.dsn", &admin),
            ("indexer.mode", "advise"),
            ("stats.flush_interval", "1s"),
        ],
    )
    .await;
    // Some traffic to flush, then only IndexPilot's own sessions remain.
    let relayed = format!("{} application_name=relayed", proxy.conninfo(&pg));
    let app = connect(&relayed).await.unwrap();
    app.simple_query("select 1").await.unwrap();
    drop(app);
    let direct = connect(&admin).await.unwrap();
    let own_sessions = "select count(*), coalesce(bool_and(s.ssl), false),
                               to_regclass('indexpilot.query_stats') is not null
                          from pg_stat_ssl s join pg_stat_activity a using (pid)
                         where a.backend_type = 'client backend' and a.pid <> pg_backend_pid()
                           and a.application_name <> 'relayed'";
    let deadline = Instant::now() + Duration::from_secs(20);
    let (count, all_tls) = loop {
        let row = direct.query_one(own_sessions, &[]).await.unwrap();
        let (count, all_tls, migrated): (i64, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if (count >= 1 && migrated) || Instant::now() > deadline {
            break (count, all_tls);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(count >= 1, "the indexer's connection: {count}");
    assert!(all_tls, "an IndexPilot connection is not TLS");
    drop(proxy);

    // The CLI: TLS required by the DSN works; disabled is plain but works.
    for sslmode in ["require", "disable"] {
        let dsn = format!("{admin}?sslmode={sslmode}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_indexpilot"))
            .args(["lineage", "--dsn", &dsn])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lineage with sslmode={sslmode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
