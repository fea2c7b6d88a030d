//! Tests that start real clusters (PostgreSQL server binaries must be installed)
//! and check that each auth method is really enforced over TCP.

use super::*;

/// psql over TCP with `password`, the way a test client would connect.
fn tcp_select_1(pg: &TestPg, password: &str, sslmode: &str) -> Result<String, PgError> {
    let conninfo = format!(
        "host={} port={} user={} dbname={} sslmode={sslmode}",
        pg.host(),
        pg.port(),
        pg.user(),
        pg.dbname()
    );
    let mut psql = os::command(pg.bin("psql"), None);
    psql.env("PGPASSWORD", password)
        .args(PSQL_FLAGS)
        .args(["-d", &conninfo, "-c", "select 1"]);
    os::run(&mut psql)
}

fn start(auth: AuthMethod) -> TestPg {
    let opts = PgOptions {
        auth,
        ..PgOptions::default()
    };
    TestPg::start(opts).unwrap_or_else(|e| panic!("starting PostgreSQL ({auth:?}): {e}"))
}

#[test]
fn trust_accepts_any_password() {
    let pg = start(AuthMethod::Trust);
    assert_eq!(pg.psql("select 1").unwrap(), "1\n");
    assert_eq!(tcp_select_1(&pg, "wrong", "disable").unwrap(), "1\n");
    assert_eq!(pg.host(), "127.0.0.1");
    assert_eq!(
        pg.url(),
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres",
            pg.port()
        )
    );
    assert_eq!(pg.psql("show port").unwrap().trim(), pg.port().to_string());
    assert_eq!(pg.psql("show server_encoding").unwrap(), "UTF8\n");
}

#[test]
fn md5_stores_md5_and_checks_password() {
    let pg = start(AuthMethod::Md5);
    assert_eq!(pg.psql("select 1").unwrap(), "1\n");
    let stored = pg
        .psql("select left(rolpassword, 3) from pg_authid where rolname = 'postgres'")
        .unwrap();
    assert_eq!(stored, "md5\n");
    assert_eq!(tcp_select_1(&pg, pg.password(), "disable").unwrap(), "1\n");
    let err = tcp_select_1(&pg, "wrong", "disable")
        .unwrap_err()
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn scram_stores_scram_and_checks_password() {
    let pg = start(AuthMethod::Scram);
    assert_eq!(pg.psql("select 1").unwrap(), "1\n");
    let stored = pg
        .psql("select left(rolpassword, 13) from pg_authid where rolname = 'postgres'")
        .unwrap();
    assert_eq!(stored, "SCRAM-SHA-256\n");
    assert_eq!(tcp_select_1(&pg, pg.password(), "disable").unwrap(), "1\n");
    assert!(tcp_select_1(&pg, "wrong", "disable").is_err());
}

#[test]
fn ssl_serves_tls_and_extra_settings_apply() {
    let opts = PgOptions {
        ssl: true,
        settings: vec![("work_mem".into(), "7MB".into())],
        ..PgOptions::default()
    };
    let pg = TestPg::start(opts).unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"));
    assert_eq!(pg.psql("show ssl").unwrap(), "on\n");
    assert_eq!(pg.psql("show work_mem").unwrap(), "7MB\n");
    assert_eq!(tcp_select_1(&pg, "", "require").unwrap(), "1\n");
    assert!(pg.ssl_cert_path().unwrap().is_file());
}

#[test]
fn crash_and_restart_on_same_port_then_cleanup() {
    let mut pg = start(AuthMethod::Trust);
    let dir = pg.socket_dir().unwrap().to_owned();
    let port = pg.port();
    // The harness runs with synchronous_commit=off; a crash may drop such commits.
    let durable = "set synchronous_commit = on; create table t (x int); insert into t values (42)";
    pg.psql(durable).unwrap();
    pg.stop_immediate().unwrap();
    assert!(pg.psql("select 1").is_err());
    pg.start_again().unwrap();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("select x from t").unwrap(), "42\n");
    assert!(pg.log_path().unwrap().is_file());
    drop(pg);
    assert!(!dir.exists(), "{} should be removed", dir.display());
}

#[test]
fn psql_error_names_command_and_message() {
    let pg = start(AuthMethod::Trust);
    let err = pg
        .psql("select * from no_such_table")
        .unwrap_err()
        .to_string();
    assert!(err.contains("psql"), "{err}");
    assert!(err.contains("no_such_table"), "{err}");
}

#[test]
fn external_server_is_used_through_its_url_and_left_running() {
    let own = start(AuthMethod::Md5);
    let url = format!("{}?sslmode=disable", own.url());
    let mut ext = TestPg::external(&url).unwrap();
    assert_eq!(ext.url(), url);
    assert_eq!((ext.host(), ext.port()), ("127.0.0.1", own.port()));
    assert_eq!(
        (ext.user(), ext.password(), ext.dbname()),
        ("postgres", "postgres", "postgres")
    );
    assert!(ext.socket_dir().is_none() && ext.log_path().is_none());
    assert_eq!(ext.psql("select 1").unwrap(), "1\n");
    ext.stop_immediate().unwrap();
    drop(ext);
    assert_eq!(own.psql("select 1").unwrap(), "1\n");
}

#[test]
fn external_rejects_bad_url() {
    let err = TestPg::external("localhost:5432")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("INDEXPILOT_TEST_DATABASE_URL"), "{err}");
}

#[test]
fn failed_start_quotes_server_log_and_cleans_up() {
    let opts = PgOptions {
        settings: vec![("no_such_setting".into(), "1".into())],
        ..PgOptions::default()
    };
    let err = TestPg::start(opts)
        .err()
        .expect("start must fail")
        .to_string();
    assert!(err.contains("PostgreSQL did not start"), "{err}");
    assert!(err.contains("no_such_setting"), "{err}");
    let dir = err
        .split("tail of ")
        .nth(1)
        .and_then(|s| s.split("/server.log").next());
    assert!(!Path::new(dir.unwrap()).exists(), "{err}");
}
