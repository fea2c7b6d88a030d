//! The analyzer's tenant literal index must name the same constant in
//! `normalize()`'s literal list, whatever precedes it in the text.

use super::super::{analyze, literal_value, normalize, Catalog, TenantValue};

/// Statement, the tenant value each of its statements should report.
const CASES: &[(&str, &[Option<&str>])] = &[
    ("SELECT * FROM contacts WHERE tenant_id = 42", &[Some("42")]),
    ("SELECT * FROM contacts WHERE email = 'x' AND tenant_id = '7'", &[Some("7")]),
    (
        "SELECT * FROM contacts WHERE status IN ('a', 'b', 'c', 'd') AND tenant_id = 9",
        &[Some("9")],
    ),
    (
        "SELECT * FROM contacts WHERE id = ANY(ARRAY[1, 2, 3]) AND tenant_id = 10",
        &[Some("10")],
    ),
    (
        "SELECT 'é', 'ünïcödé 🎉' AS x\nFROM contacts\n  WHERE note = '日本語'\n    AND tenant_id = 11",
        &[Some("11")],
    ),
    ("SELECT * FROM contacts WHERE tenant_id = E'\\'12'", &[Some("'12")]),
    ("SELECT * FROM contacts WHERE tenant_id = $$13$$", &[Some("13")]),
    ("SELECT * FROM contacts WHERE tenant_id = '14'::bigint", &[Some("14")]),
    ("SELECT * FROM contacts WHERE tenant_id = uuid '00000000-0000-0000-0000-000000000015'", &[Some(
        "00000000-0000-0000-0000-000000000015",
    )]),
    (
        "/* 'not a literal' */ SELECT 1 -- 'nor this'\n, 2 FROM contacts WHERE tenant_id = 16",
        &[Some("16")],
    ),
    (
        "SET app.x = '1'; SELECT * FROM contacts WHERE a = 'q'; UPDATE contacts SET b = 2 WHERE tenant_id = 17",
        &[None, None, Some("17")],
    ),
    (
        "WITH r AS (SELECT * FROM interactions WHERE kind = 'call' AND tenant_id = 18) SELECT * FROM r WHERE occurred_at > '2024-01-01'",
        &[Some("18")],
    ),
    (
        "INSERT INTO contacts (email, phone, tenant_id) VALUES ('a', 'b', 19), ('c', 'd', 20)",
        &[Some("19")],
    ),
    (
        "SELECT * FROM contacts c JOIN organizations o ON o.id = c.org_id AND o.kind = 'x' WHERE c.tenant_id = 21",
        &[Some("21")],
    ),
    ("SELECT * FROM t WHERE tenant_id = -22", &[None]),
    ("SELECT * FROM t WHERE tenant_id > 23", &[None]),
    ("SELECT * FROM t WHERE tenant_id = 24 OR a = 1", &[None]),
    ("SELECT * FROM t WHERE tenant_id IN (25, 26)", &[None]),
];

#[test]
fn tenant_literal_index_agrees_with_normalize() {
    for (sql, want) in CASES {
        let shapes =
            analyze(sql, &Catalog::new(), "tenant_id").unwrap_or_else(|e| panic!("{sql}: {e}"));
        let literals = normalize(sql.as_bytes()).literals;
        let got: Vec<Option<String>> = shapes
            .iter()
            .map(|shape| match shape.tenant {
                Some(TenantValue::Literal(i)) => {
                    let span = literals
                        .get(i)
                        .unwrap_or_else(|| panic!("{sql}: literal {i} missing"));
                    literal_value(sql.as_bytes(), span.clone())
                }
                Some(TenantValue::Param(n)) => Some(format!("${n}")),
                None => None,
            })
            .collect();
        let want: Vec<Option<String>> = want.iter().map(|w| w.map(str::to_string)).collect();
        assert_eq!(got, want, "{sql}");
    }
}

#[test]
fn tenant_params_and_custom_column() {
    let shapes = analyze(
        "SELECT * FROM t WHERE org = $3 AND tenant_id = $1",
        &Catalog::new(),
        "org",
    )
    .unwrap();
    assert_eq!(shapes[0].tenant, Some(TenantValue::Param(3)));
    let shapes = analyze("SELECT * FROM t WHERE \"Org\" = 5", &Catalog::new(), "Org").unwrap();
    assert_eq!(shapes[0].tenant, Some(TenantValue::Literal(0)));
}
