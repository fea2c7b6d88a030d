//! Unit tests of the counters and windows.
use super::*;

/// A time in the future (counters start at the real clock's window).
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(4_000_000_000 + secs)
}

fn obs<'a>(tenant: u32, filters: &'a [(&'a str, &'a str, &'static str, u16)]) -> Observation<'a> {
    Observation {
        fingerprint: 7,
        tenant,
        latency: Duration::from_millis(2),
        failed: false,
        rows: 3,
        filters,
    }
}

#[test]
fn counts_columns_groups_and_statements() {
    let s = Stats::new(Duration::from_secs(10), 6, 100, 10);
    s.roll(at(1_000));
    let t = s.tenant_id("42");
    let f = [
        ("app.contacts", "email", "equality", 0),
        ("app.contacts", "tenant_id", "equality", 0),
    ];
    for _ in 0..5 {
        s.record(at(1_001), &obs(t, &f));
    }
    let snap = s.snapshot();
    let email = snap.columns.iter().find(|c| &*c.column == "email").unwrap();
    assert_eq!(
        (email.calls, email.rows, email.tenant.as_deref()),
        (5, 15, Some("42"))
    );
    assert_eq!(snap.groups.len(), 1);
    assert_eq!(snap.groups[0].calls, 5);
    assert_eq!(snap.statements[0].calls, 5);
    assert!((snap.statements[0].mean_ms - 2.0).abs() < 0.01);
}

#[test]
fn closed_windows_become_flush_rows_and_old_windows_fade() {
    let s = Stats::new(Duration::from_secs(10), 3, 100, 10);
    s.roll(at(1_000));
    let f = [("t", "a", "range", 0)];
    s.record(at(1_001), &obs(NO_TENANT, &f));
    s.record(at(1_011), &obs(NO_TENANT, &f));
    let rows = s.take_pending(100);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(matches!(
        &rows[0],
        FlushRow::Statement {
            calls: 1,
            tenant: None,
            ..
        }
    ));
    assert!(matches!(
        &rows[1],
        FlushRow::Filter {
            calls: 1,
            class: "range",
            ..
        }
    ));
    s.roll(at(1_100));
    let col = &s.snapshot().columns[0];
    assert_eq!(
        (col.calls, col.total_calls),
        (0, 2),
        "faded out of the kept windows"
    );
}

#[test]
fn pending_rows_are_bounded() {
    let s = Stats::new(Duration::from_secs(1), 2, 3, 10);
    let rows: Vec<FlushRow> = (0..5)
        .map(|i| FlushRow::Filter {
            window_start: at(i),
            tenant: None,
            table: Arc::from("t"),
            column: Arc::from("c"),
            class: "equality",
            calls: 1,
            rows: 0,
        })
        .collect();
    s.push_pending(rows);
    assert_eq!(s.pending_len(), 3);
    assert_eq!(s.rows_dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn templates_keep_the_constants_a_statement_always_carried() {
    let s = Stats::new(Duration::from_secs(10), 6, 100, 10);
    let run = |tenant: u32, status: &str| {
        let sql = format!(
            "select id from tickets where tenant_id = {tenant} and status in ('{status}', 'open') \
             and due_at < $1 order by due_at limit 50"
        );
        let norm = crate::sql::normalize(sql.as_bytes());
        s.sample(sql.as_bytes(), &norm);
        norm.fingerprint
    };
    let fp = run(1, "new");
    assert_eq!(
        s.template(fp),
        None,
        "one execution proves nothing constant"
    );
    for i in 0..TEMPLATE_AFTER {
        run(i as u32 % 7, "new");
    }
    // The tenant varied: a parameter after the text's own $1. The statuses
    // never did: kept.
    assert_eq!(
        s.template(fp).unwrap(),
        "select id from tickets where tenant_id = $2 and status in ('new', 'open') \
         and due_at < $1 order by due_at limit 50"
    );
    // Another status under the same fingerprint: no longer a constant.
    run(3, "pending");
    assert_eq!(
        s.template(fp).unwrap(),
        "select id from tickets where tenant_id = $2 and status in ($3, 'open') \
         and due_at < $1 order by due_at limit 50"
    );
}
