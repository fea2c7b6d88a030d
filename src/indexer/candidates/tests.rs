//! Table-driven tests of candidate generation.
use std::sync::Arc;

use super::*;
use crate::indexer::model::IndexFacts;
use crate::stats::{ColumnStat, GroupStat};

fn stat(tenant: Option<&str>, column: &str, class: &'static str, calls: u64) -> ColumnStat {
    ColumnStat {
        tenant: tenant.map(Arc::from),
        table: Arc::from("orders"),
        column: Arc::from(column),
        class,
        calls,
        rows: calls,
        recent: calls as f64,
        total_calls: calls,
    }
}

fn group(tenant: Option<&str>, columns: &[&str], calls: u64) -> GroupStat {
    GroupStat {
        tenant: tenant.map(Arc::from),
        table: Arc::from("orders"),
        columns: columns.iter().map(|c| Arc::from(*c)).collect(),
        calls,
        recent: calls as f64,
    }
}

fn col(name: &str, n_distinct: f64, btree: bool) -> ColumnFacts {
    ColumnFacts {
        name: name.to_string(),
        data_type: if btree { "text" } else { "jsonb" }.to_string(),
        btree,
        n_distinct,
        ..ColumnFacts::default()
    }
}

fn orders(rows: f64) -> TableFacts {
    TableFacts {
        schema: "public".into(),
        name: "orders".into(),
        rows,
        pages: rows / 100.0,
        columns: vec![
            col("tenant_id", 50.0, true),
            col("email", -1.0, true),
            col("created_at", -0.9, true),
            col("active", 2.0, true),
            col("industry", 1000.0, true),
            col("phone", -1.0, true),
            col("data", -1.0, false),
            ColumnFacts {
                most_common: vec![("closed".into(), 0.88), ("new".into(), 0.06)],
                ..col("status", 5.0, true)
            },
        ],
        indexes: vec![IndexFacts {
            name: "orders_phone".into(),
            keys: vec!["phone".into()],
            valid: true,
            ..IndexFacts::default()
        }],
        ..TableFacts::default()
    }
}

/// `n` tenants each filtering on the tenant column (making them active).
fn active_tenants(n: usize) -> Vec<ColumnStat> {
    (0..n)
        .map(|i| stat(Some(&format!("t{i}")), "tenant_id", "equality", 10))
        .collect()
}

enum Want {
    Proposed(&'static [&'static str], Option<&'static str>, CandidateKind),
    Rejected(&'static [&'static str], &'static str),
}

/// (name, column stats, group stats, table rows, expectations)
type Case = (
    &'static str,
    Vec<ColumnStat>,
    Vec<GroupStat>,
    f64,
    Vec<Want>,
);

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

#[test]
fn generate_table() {
    use CandidateKind::*;
    use Want::*;
    let few: Vec<ColumnStat> = active_tenants(50)
        .into_iter()
        .chain(["t1", "t2"].map(|t| stat(Some(t), "industry", "equality", 100)))
        .collect();
    let many: Vec<ColumnStat> = active_tenants(50)
        .into_iter()
        .chain((0..45).map(|i| stat(Some(&format!("t{i}")), "industry", "equality", 10)))
        .collect();
    let cases: Vec<Case> = vec![
        (
            "hot equality on 1M rows",
            vec![stat(None, "email", "equality", 500)],
            vec![],
            1e6,
            vec![Proposed(&["email"], None, Single)],
        ),
        (
            "hot equality, tenant-scoped",
            vec![stat(Some("t1"), "email", "equality", 500)],
            vec![],
            1e6,
            vec![Proposed(&["tenant_id", "email"], None, TenantComposite)],
        ),
        (
            "cold column",
            vec![stat(None, "email", "equality", 12)],
            vec![],
            1e6,
            vec![Rejected(&["email"], "cold: 12 calls < min_calls 50")],
        ),
        (
            "tiny table",
            vec![stat(None, "email", "equality", 500)],
            vec![],
            500.0,
            vec![Rejected(&["email"], "table too small")],
        ),
        (
            "unselective boolean-like column",
            vec![stat(None, "active", "equality", 500)],
            vec![],
            1e6,
            vec![Rejected(&["active"], "unselective")],
        ),
        (
            "covered by existing index prefix",
            vec![stat(None, "phone", "equality", 500)],
            vec![],
            1e6,
            vec![Rejected(&["phone"], "covered by an existing index")],
        ),
        (
            "non-btree type",
            vec![stat(None, "data", "equality", 500)],
            vec![],
            1e6,
            vec![Rejected(&["data"], "no btree opclass")],
        ),
        (
            "equality + range composite, equality first",
            vec![
                stat(None, "created_at", "range", 500),
                stat(None, "email", "equality", 500),
            ],
            vec![group(None, &["created_at", "email"], 500)],
            1e6,
            vec![
                Proposed(&["email", "created_at"], None, Single),
                Rejected(&["email"], "only 0 outside composite candidates"),
                Rejected(&["created_at"], "only 0 outside composite"),
            ],
        ),
        (
            "an unselective composite leaves its calls to the single columns",
            vec![
                stat(None, "created_at", "range", 500),
                stat(None, "active", "equality", 500),
            ],
            vec![group(None, &["active", "created_at"], 500)],
            1e6,
            vec![
                Proposed(&["created_at"], None, Single),
                Rejected(&["active", "created_at"], "unselective"),
                Rejected(&["active"], "unselective"),
            ],
        ),
        (
            "a composite covered by an existing index still claims its calls",
            vec![
                stat(None, "phone", "equality", 500),
                stat(None, "created_at", "range", 500),
            ],
            vec![group(None, &["phone", "created_at"], 500)],
            1e6,
            vec![
                Proposed(&["phone", "created_at"], None, Single),
                Rejected(&["created_at"], "only 0 outside composite"),
            ],
        ),
        (
            "field used by 2 of 50 tenants",
            few,
            vec![],
            1e6,
            vec![
                Proposed(&["industry"], Some("t1"), TenantPartial),
                Proposed(&["industry"], Some("t2"), TenantPartial),
            ],
        ),
        (
            "field used by 45 of 50 tenants",
            many,
            vec![],
            1e6,
            vec![Proposed(&["tenant_id", "industry"], None, TenantComposite)],
        ),
        (
            "few tenants, none large yet: no composite, partials wait",
            active_tenants(50)
                .into_iter()
                .chain(["t1", "t2"].map(|t| stat(Some(t), "industry", "equality", 30)))
                .collect(),
            vec![],
            1e6,
            vec![Rejected(&["tenant_id", "industry"], "partial indexes wait")],
        ),
        (
            "two equality columns, most selective first, then range",
            vec![
                stat(None, "industry", "equality", 500),
                stat(None, "email", "equality", 500),
                stat(None, "created_at", "order_by", 500),
            ],
            vec![group(None, &["industry", "email", "created_at"], 500)],
            1e6,
            vec![Proposed(&["email", "industry", "created_at"], None, Single)],
        ),
        (
            "hot tenant column alone",
            active_tenants(50),
            vec![],
            1e6,
            vec![Proposed(&["tenant_id"], None, Single)],
        ),
        (
            "expression predicate",
            vec![stat(None, "lower(email)", "expression", 500)],
            vec![],
            1e6,
            vec![Proposed(&["lower(email)"], None, Expression)],
        ),
        (
            "non-btree operator on a bare column",
            vec![stat(None, "email", "expression", 500)],
            vec![],
            1e6,
            vec![Rejected(&["email"], "no btree serves")],
        ),
        (
            "the trap: a status most rows have is no key, even behind the tenant",
            vec![
                stat(Some("t1"), "status", "equality", 500),
                stat(Some("t1"), "tenant_id", "equality", 500),
            ],
            vec![group(Some("t1"), &["status", "tenant_id"], 500)],
            1e6,
            vec![Rejected(
                &["status"],
                "unselective: status = value matches ~78%",
            )],
        ),
        (
            "an expression only grouped by gets no expression index",
            vec![stat(None, "date_trunc('day', created_at)", "group_by", 500)],
            vec![],
            1e6,
            vec![Rejected(
                &["date_trunc('day', created_at)"],
                "no btree serves",
            )],
        ),
        (
            "an expression filtered on and grouped by does",
            vec![
                stat(None, "lower(email)", "group_by", 500),
                stat(None, "lower(email)", "expression", 500),
            ],
            vec![],
            1e6,
            vec![Proposed(&["lower(email)"], None, Expression)],
        ),
    ];
    for (name, columns, groups, rows, wants) in cases {
        let snapshot = Snapshot {
            columns,
            groups,
            statements: vec![],
        };
        let (cands, rejected) = generate(&snapshot, &[orders(rows)], &Settings::default());
        let proposed = wants.iter().filter(|w| matches!(w, Proposed(..))).count();
        assert_eq!(cands.len(), proposed, "{name}: {cands:#?}");
        for want in &wants {
            match want {
                Proposed(k, tenant, kind) => assert!(
                    cands.iter().any(|c| c.keys == keys(k)
                        && c.tenant.as_deref() == *tenant
                        && c.kind == *kind),
                    "{name}: want {k:?} {tenant:?} {kind:?} in {cands:#?}"
                ),
                Rejected(k, reason) => assert!(
                    rejected
                        .iter()
                        .any(|r| r.keys == keys(k) && r.reason.contains(reason)),
                    "{name}: want rejection of {k:?} ({reason}) in {rejected:#?}"
                ),
            }
        }
    }
}

#[test]
fn evidence_carries_the_numbers() {
    let snapshot = Snapshot {
        columns: vec![stat(Some("t1"), "email", "equality", 500)],
        ..Snapshot::default()
    };
    let (cands, _) = generate(&snapshot, &[orders(1e6)], &Settings::default());
    let e = &cands[0].evidence;
    assert_eq!((e.calls, e.tenants_using, e.tenants_active), (500, 1, 1));
    assert_eq!((e.rows_per_call, e.table_rows), (1.0, 1e6));
    // email's 1e-6, times the tenant's share: the lookup filters on both.
    assert!(e.selectivity > 0.0 && e.selectivity <= 1e-6, "{e:?}");
    assert!(e.reason.contains("500 calls"), "{e:?}");
}

#[test]
fn tables_without_facts_are_rejected() {
    let snapshot = Snapshot {
        columns: vec![stat(None, "email", "equality", 500)],
        ..Snapshot::default()
    };
    let (cands, rejected) = generate(&snapshot, &[], &Settings::default());
    assert!(cands.is_empty());
    assert_eq!(rejected[0].reason, "no catalog facts for table");
}

#[test]
fn a_low_cardinality_column_is_selective_within_a_tenant() {
    // `type` has 8 values (1/8 of the table per value: unselective alone),
    // but every lookup also names the tenant (one of 100): selective.
    let mut table = orders(1e6);
    if let Some(c) = table.columns.iter_mut().find(|c| c.name == "email") {
        c.n_distinct = 8.0;
    }
    let tenants: Vec<String> = (0..40).map(|t| t.to_string()).collect();
    let columns = tenants
        .iter()
        .map(|t| stat(Some(t.as_str()), "email", "equality", 10))
        .collect();
    let snapshot = Snapshot {
        columns,
        ..Snapshot::default()
    };
    let (cands, rejected) = generate(&snapshot, &[table], &Settings::default());
    assert!(
        cands
            .iter()
            .any(|c| c.keys == keys(&["tenant_id", "email"])
                && c.kind == CandidateKind::TenantComposite),
        "{cands:#?} {rejected:#?}"
    );
}

#[test]
fn a_declined_composite_leaves_its_calls_to_the_single_columns() {
    let snapshot = Snapshot {
        columns: vec![
            stat(None, "created_at", "range", 500),
            stat(None, "email", "equality", 500),
        ],
        groups: vec![group(None, &["created_at", "email"], 500)],
        statements: vec![],
    };
    let settings = Settings {
        declined: vec![("orders".into(), keys(&["email", "created_at"]))],
        ..Settings::default()
    };
    let (cands, rejected) = generate(&snapshot, &[orders(1e6)], &settings);
    let mut proposed: Vec<&[String]> = cands.iter().map(|c| &c.keys[..]).collect();
    proposed.sort();
    assert_eq!(
        proposed,
        [keys(&["created_at"]), keys(&["email"])],
        "{rejected:#?}"
    );
    assert!(
        rejected
            .iter()
            .any(|r| r.keys == keys(&["email", "created_at"]) && r.reason.contains("declined")),
        "{rejected:#?}"
    );
    // Without the memory, the composite takes the calls.
    let (cands, _) = generate(&snapshot, &[orders(1e6)], &Settings::default());
    assert_eq!(cands.len(), 1);
    assert_eq!(cands[0].keys, keys(&["email", "created_at"]));
}

#[test]
fn composite_keys_strip_the_tenant_column() {
    let c = |k: &[&str], tenant: Option<&str>| Candidate {
        table: "orders".into(),
        keys: keys(k),
        tenant: tenant.map(String::from),
        not_null: None,
        partial: None,
        statement: None,
        kind: CandidateKind::Single,
        evidence: Evidence {
            calls: 0,
            recent: 0.0,
            tenants_using: 0,
            tenants_active: 0,
            rows_per_call: 0.0,
            table_rows: 0.0,
            selectivity: 0.0,
            reason: String::new(),
        },
    };
    let ck = |cand: &Candidate| composite_keys(cand, "tenant_id").map(<[String]>::to_vec);
    assert_eq!(ck(&c(&["tenant_id", "email"], None)), None);
    assert_eq!(
        ck(&c(&["tenant_id", "email", "created_at"], None)),
        Some(keys(&["email", "created_at"]))
    );
    assert_eq!(
        ck(&c(&["email", "created_at"], None)),
        Some(keys(&["email", "created_at"]))
    );
    assert_eq!(
        ck(&c(&["email", "created_at"], Some("t1"))),
        Some(keys(&["email", "created_at"]))
    );
    assert_eq!(ck(&c(&["email"], Some("t1"))), None);
}

#[test]
fn a_sparse_strictly_compared_key_makes_the_index_partial() {
    let mut table = orders(1e6);
    let mut custom = col("custom", -0.09, true);
    custom.null_frac = 0.9;
    table.columns.push(custom);
    let lookups = |class: &'static str| -> Vec<ColumnStat> {
        (0..40)
            .map(|t| stat(Some(&format!("t{t}")), "custom", class, 10))
            .chain((0..40).map(|t| stat(Some(&format!("t{t}")), "email", "equality", 10)))
            .collect()
    };
    let run_on = |table: &TableFacts, columns: Vec<ColumnStat>| {
        let snapshot = Snapshot {
            columns,
            ..Snapshot::default()
        };
        generate(&snapshot, std::slice::from_ref(table), &Settings::default()).0
    };
    let run = |columns: Vec<ColumnStat>| run_on(&table, columns);
    let find = |cands: &[Candidate], key: &str| {
        cands
            .iter()
            .find(|c| c.keys.last().map(String::as_str) == Some(key))
            .cloned()
            .unwrap_or_else(|| panic!("no candidate on {key}: {cands:#?}"))
    };

    let cands = run(lookups("equality"));
    let sparse = find(&cands, "custom");
    assert_eq!(sparse.keys, keys(&["tenant_id", "custom"]));
    assert_eq!(sparse.not_null.as_deref(), Some("custom"));
    assert!(
        sparse.evidence.reason.contains("NULL in 90% of rows"),
        "{sparse:?}"
    );
    assert!(sparse.index_name("ip_").contains("not_null"));
    assert!(sparse
        .index_names("ip_")
        .contains(&sparse.index_name("ip_")));
    // A dense column stays a full index.
    assert_eq!(find(&cands, "email").not_null, None);

    // One `IS NULL` lookup among them: the NULL rows are wanted too.
    let mut mixed = lookups("equality");
    mixed.push(stat(Some("t1"), "custom", "is_null", 5));
    assert_eq!(find(&run(mixed), "custom").not_null, None);

    // The application already has that partial index: nothing to build.
    table.indexes.push(IndexFacts {
        name: "contacts_custom_idx".into(),
        keys: keys(&["tenant_id", "custom"]),
        predicate: Some("(custom IS NOT NULL)".into()),
        valid: true,
        btree: true,
        ..IndexFacts::default()
    });
    let cands = run_on(&table, lookups("equality"));
    assert!(
        !cands.iter().any(|c| c.keys.contains(&"custom".to_string())),
        "{cands:#?}"
    );
    // But not for the `IS NULL` mix, which that index cannot serve.
    let mut mixed = lookups("equality");
    mixed.push(stat(Some("t1"), "custom", "is_null", 5));
    assert_eq!(find(&run_on(&table, mixed), "custom").not_null, None);
}
