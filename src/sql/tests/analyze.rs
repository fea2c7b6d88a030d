//! The analyzer over a table of statements: kind, tables, filters with class
//! and AND-group, ORDER BY, GROUP BY, tenant, SET values.

use super::super::{analyze, AnalyzeError, Catalog, StatementKind as K, TenantValue};
use super::{crm_catalog, render_all, tables};

use TenantValue::{Literal as L, Param as P};

struct Case {
    sql: &'static str,
    kind: K,
    tables: &'static [&'static str],
    filters: &'static [&'static str],
    order_by: &'static [&'static str],
    group_by: &'static [&'static str],
    tenant: Option<TenantValue>,
    set: Option<(&'static str, &'static str)>,
    catalog: bool,
}

fn c(
    sql: &'static str,
    kind: K,
    tables: &'static [&'static str],
    filters: &'static [&'static str],
) -> Case {
    Case {
        sql,
        kind,
        tables,
        filters,
        order_by: &[],
        group_by: &[],
        tenant: None,
        set: None,
        catalog: true,
    }
}

impl Case {
    fn tenant(mut self, t: TenantValue) -> Case {
        self.tenant = Some(t);
        self
    }
    fn order(mut self, o: &'static [&'static str]) -> Case {
        self.order_by = o;
        self
    }
    fn group(mut self, g: &'static [&'static str]) -> Case {
        self.group_by = g;
        self
    }
    fn set(mut self, name: &'static str, value: &'static str) -> Case {
        self.set = Some((name, value));
        self
    }
    fn no_catalog(mut self) -> Case {
        self.catalog = false;
        self
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // Equality, tenant from a literal or a parameter, either side.
        c("SELECT * FROM contacts WHERE tenant_id = 42 AND email = 'a@b.c'", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.email:equality@0"]).tenant(L(0)),
        c("select id from contacts where tenant_id = $1 and email = $2", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.email:equality@0"]).tenant(P(1)),
        c("select id from contacts where email = $1 and tenant_id = $2", K::Select, &["contacts"],
          &["contacts.email:equality@0", "contacts.tenant_id:equality@0"]).tenant(P(2)),
        c("SELECT * FROM contacts WHERE 'x' = email AND 7 = tenant_id", K::Select, &["contacts"],
          &["contacts.email:equality@0", "contacts.tenant_id:equality@0"]).tenant(L(1)),
        c("SELECT * FROM contacts WHERE tenant_id = '8f14e45f-ceea-467a-9575-3d8c6a0b1e2f'::uuid", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0"]).tenant(L(0)),
        c("SELECT * FROM contacts WHERE tenant_id = $1::bigint AND phone = $2", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.phone:equality@0"]).tenant(P(1)),
        // Ranges, BETWEEN, IN lists, ANY.
        c("SELECT * FROM interactions WHERE tenant_id = 1 AND occurred_at >= '2024-01-01' AND occurred_at < $1", K::Select, &["interactions"],
          &["interactions.tenant_id:equality@0", "interactions.occurred_at:range@0", "interactions.occurred_at:range@0"]).tenant(L(0)),
        c("SELECT * FROM interactions WHERE occurred_at BETWEEN $1 AND $2", K::Select, &["interactions"],
          &["interactions.occurred_at:between@0"]),
        c("SELECT * FROM interactions WHERE occurred_at NOT BETWEEN $1 AND $2", K::Select, &["interactions"],
          &["interactions.occurred_at:expression@0"]),
        c("SELECT * FROM interactions WHERE kind IN ('call', 'email', 'meeting')", K::Select, &["interactions"],
          &["interactions.kind:in_list@0"]),
        c("SELECT * FROM interactions WHERE kind NOT IN ('call', 'email')", K::Select, &["interactions"],
          &["interactions.kind:expression@0"]),
        c("SELECT * FROM contacts WHERE id = ANY($1)", K::Select, &["contacts"], &["contacts.id:in_list@0"]),
        c("SELECT * FROM contacts WHERE id = ANY(ARRAY[1, 2, 3])", K::Select, &["contacts"], &["contacts.id:in_list@0"]),
        c("SELECT * FROM contacts WHERE created_at > ANY($1)", K::Select, &["contacts"], &["contacts.created_at:range@0"]),
        c("SELECT * FROM contacts WHERE (tenant_id, email) IN ((1, 'a'), (1, 'b'))", K::Select, &["contacts"],
          &["contacts.tenant_id:in_list@0", "contacts.email:in_list@0"]),
        c("SELECT * FROM contacts WHERE tenant_id = $1 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT 50",
          K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.created_at:range@0", "contacts.id:range@0"]).tenant(P(1))
          .order(&["contacts.created_at:range@0", "contacts.id:range@0"]),
        // LIKE: a constant prefix, a parameter, a leading wildcard.
        c("SELECT * FROM organizations WHERE name LIKE 'Acme%'", K::Select, &["organizations"], &["organizations.name:like_prefix@0"]),
        c("SELECT * FROM organizations WHERE name ILIKE $1", K::Select, &["organizations"], &["organizations.name:like_prefix@0"]),
        c("SELECT * FROM organizations WHERE name ILIKE '%acme%'", K::Select, &["organizations"], &["organizations.name:expression@0"]),
        c("SELECT * FROM organizations WHERE name LIKE $1 || '%'", K::Select, &["organizations"], &["organizations.name:like_prefix@0"]),
        c("SELECT * FROM organizations WHERE name NOT LIKE 'x%'", K::Select, &["organizations"], &["organizations.name:expression@0"]),
        c("SELECT * FROM organizations WHERE lower(name) LIKE 'acme%'", K::Select, &["organizations"],
          &["organizations.name:expression[lower(name)]@0"]),
        // NULL tests and booleans.
        c("SELECT * FROM contacts WHERE deleted_at IS NULL AND phone IS NOT NULL", K::Select, &["contacts"],
          &["contacts.deleted_at:is_null@0", "contacts.phone:is_not_null@0"]),
        c("SELECT * FROM contacts WHERE NOT (deleted_at IS NULL)", K::Select, &["contacts"], &["contacts.deleted_at:is_not_null@0"]),
        c("SELECT * FROM t WHERE active AND NOT archived AND verified IS TRUE", K::Select, &["t"],
          &["t.active:equality@0", "t.archived:equality@0", "t.verified:equality@0"]).no_catalog(),
        // Wrapped columns: functions, JSON, casts, arithmetic; non-b-tree operators.
        c("SELECT * FROM contacts WHERE tenant_id = $1 AND lower(email) = lower($2)", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.email:expression[lower(email)]@0"]).tenant(P(1)),
        c("SELECT * FROM contacts c WHERE c.custom->>'plan' = 'pro'", K::Select, &["contacts"],
          &["contacts.custom:expression[custom ->> 'plan']@0"]),
        c("SELECT * FROM contacts WHERE (custom->>'score')::int > 5", K::Select, &["contacts"],
          &["contacts.custom:expression[(custom ->> 'score')::int]@0"]),
        c("SELECT * FROM contacts WHERE custom -> 'address' ->> 'city' = $1", K::Select, &["contacts"],
          &["contacts.custom:expression[custom -> 'address' ->> 'city']@0"]),
        c("SELECT * FROM contacts WHERE created_at::date = '2024-01-01'", K::Select, &["contacts"],
          &["contacts.created_at:expression[created_at::date]@0"]),
        c("SELECT * FROM contacts WHERE id + 1 > 5", K::Select, &["contacts"], &["contacts.id:expression[id + 1]@0"]),
        c("SELECT * FROM contacts WHERE coalesce(phone, '') <> ''", K::Select, &["contacts"],
          &["contacts.phone:expression[coalesce(phone, '')]@0"]),
        c("SELECT * FROM contacts WHERE email <> $1 AND custom @> '{\"vip\": true}' AND name ~* 'bob'", K::Select, &["contacts"],
          &["contacts.email:expression@0", "contacts.custom:expression@0", "contacts.name:expression@0"]),
        c("SELECT * FROM contacts WHERE email IS DISTINCT FROM $1", K::Select, &["contacts"], &["contacts.email:expression@0"]),
        c("SELECT * FROM contacts WHERE created_at > now() - interval '7 days'", K::Select, &["contacts"],
          &["contacts.created_at:range@0"]),
        c("SELECT * FROM contacts WHERE created_at < updated_at", K::Select, &["contacts"],
          &["contacts.created_at:expression@0", "contacts.updated_at:expression@0"]).no_catalog(),
        // AND-groups: OR branches in disjunctive normal form.
        c("SELECT * FROM contacts WHERE tenant_id = 1 AND (email = 'a' OR phone = 'b')", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.email:equality@0", "contacts.tenant_id:equality@1", "contacts.phone:equality@1"])
          .tenant(L(0)),
        c("SELECT * FROM contacts WHERE email = 'a' OR phone = 'b'", K::Select, &["contacts"],
          &["contacts.email:equality@0", "contacts.phone:equality@1"]),
        c("SELECT * FROM contacts WHERE (tenant_id = 1 AND email = 'a') OR phone = 'b'", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.email:equality@0", "contacts.phone:equality@1"]),
        c("SELECT * FROM contacts WHERE (a = 1 OR b = 2) AND (c = 3 OR d = 4)", K::Select, &["contacts"],
          &["contacts.a:equality@0", "contacts.c:equality@0", "contacts.a:equality@1", "contacts.d:equality@1",
            "contacts.b:equality@2", "contacts.c:equality@2", "contacts.b:equality@3", "contacts.d:equality@3"]).no_catalog(),
        // Joins: ON conditions, implicit joins, USING, catalog resolution.
        c("SELECT c.email, o.name FROM contacts c JOIN organizations o ON o.id = c.org_id WHERE c.tenant_id = $1 AND o.industry = $2",
          K::Select, &["contacts", "organizations"],
          &["organizations.id:join@0", "contacts.org_id:join@0", "contacts.tenant_id:equality@0", "organizations.industry:equality@0"])
          .tenant(P(1)),
        c("SELECT * FROM contacts c LEFT JOIN interactions i ON i.contact_id = c.id AND i.kind = 'call' WHERE c.tenant_id = 3",
          K::Select, &["contacts", "interactions"],
          &["interactions.contact_id:join@0", "contacts.id:join@0", "interactions.kind:equality@0", "contacts.tenant_id:equality@0"])
          .tenant(L(1)),
        c("SELECT * FROM contacts c, organizations o WHERE c.org_id = o.id AND c.tenant_id = 5", K::Select, &["contacts", "organizations"],
          &["contacts.org_id:join@0", "organizations.id:join@0", "contacts.tenant_id:equality@0"]).tenant(L(0)),
        c("SELECT * FROM contacts c JOIN organizations o ON o.id = c.org_id WHERE industry = 'saas' AND email = $1 AND tenant_id = 2",
          K::Select, &["contacts", "organizations"],
          &["organizations.id:join@0", "contacts.org_id:join@0", "organizations.industry:equality@0", "contacts.email:equality@0",
            "?.tenant_id:equality@0"]).tenant(L(1)),
        c("SELECT * FROM contacts c JOIN organizations o ON o.id = c.org_id WHERE industry = 'saas'",
          K::Select, &["contacts", "organizations"],
          &["organizations.id:join@0", "contacts.org_id:join@0", "?.industry:equality@0"]).no_catalog(),
        c("SELECT * FROM contacts JOIN organizations USING (tenant_id) WHERE industry = $1", K::Select, &["contacts", "organizations"],
          &["contacts.tenant_id:join@0", "organizations.tenant_id:join@0", "organizations.industry:equality@0"]),
        c("SELECT * FROM (contacts c JOIN organizations o ON o.id = c.org_id) JOIN interactions i ON i.contact_id = c.id",
          K::Select, &["contacts", "organizations", "interactions"],
          &["organizations.id:join@0", "contacts.org_id:join@0", "interactions.contact_id:join@0", "contacts.id:join@0"]),
        // Identifiers: schema-qualified, quoted, case-folded.
        c("SELECT * FROM crm.contacts WHERE crm.contacts.email = $1 AND tenant_id = 4", K::Select, &["crm.contacts"],
          &["crm.contacts.email:equality@0", "crm.contacts.tenant_id:equality@0"]).tenant(L(0)),
        c("SELECT * FROM \"Mixed Case\" m WHERE m.\"Some Col\" = 1 AND \"Other\" > 2 AND Plain = 3", K::Select, &["Mixed Case"],
          &["Mixed Case.Some Col:equality@0", "Mixed Case.Other:range@0", "Mixed Case.plain:equality@0"]),
        c("SELECT * FROM CRM.Contacts WHERE EMAIL = 'x' AND \"TENANT_ID\" = 1", K::Select, &["crm.contacts"],
          &["crm.contacts.email:equality@0", "crm.contacts.TENANT_ID:equality@0"]),
        // Subqueries: in FROM, IN (SELECT ..), EXISTS, scalar, LATERAL.
        c("SELECT * FROM (SELECT id, email AS e FROM contacts WHERE tenant_id = 5) sub WHERE sub.e LIKE 'a%' AND id > 10",
          K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.email:like_prefix@1", "contacts.id:range@1"]).tenant(L(0)),
        c("SELECT * FROM contacts WHERE tenant_id = 1 AND org_id IN (SELECT id FROM organizations WHERE industry = 'saas')",
          K::Select, &["contacts", "organizations"],
          &["organizations.industry:equality@0", "contacts.tenant_id:equality@1", "contacts.org_id:join@1"]).tenant(L(0)),
        c("SELECT * FROM contacts c WHERE c.tenant_id = $1 AND EXISTS (SELECT 1 FROM interactions i WHERE i.contact_id = c.id AND i.kind = 'call')",
          K::Select, &["contacts", "interactions"],
          &["interactions.contact_id:join@0", "contacts.id:join@0", "interactions.kind:equality@0", "contacts.tenant_id:equality@1"])
          .tenant(P(1)),
        c("SELECT * FROM contacts c WHERE NOT EXISTS (SELECT 1 FROM interactions i WHERE i.contact_id = c.id)",
          K::Select, &["contacts", "interactions"], &["interactions.contact_id:join@0", "contacts.id:join@0"]),
        c("SELECT c.id, (SELECT count(*) FROM interactions i WHERE i.contact_id = c.id) AS n FROM contacts c WHERE c.tenant_id = 1",
          K::Select, &["contacts", "interactions"],
          &["contacts.tenant_id:equality@0", "interactions.contact_id:join@1", "contacts.id:join@1"]).tenant(L(0)),
        c("SELECT * FROM contacts c, LATERAL (SELECT * FROM interactions i WHERE i.contact_id = c.id ORDER BY occurred_at DESC LIMIT 3) last",
          K::Select, &["contacts", "interactions"], &["interactions.contact_id:join@0", "contacts.id:join@0"])
          .order(&["interactions.occurred_at:range@0"]),
        c("SELECT * FROM contacts WHERE created_at > (SELECT max(occurred_at) FROM interactions WHERE kind = $1)",
          K::Select, &["contacts", "interactions"], &["interactions.kind:equality@0", "contacts.created_at:range@1"]),
        // CTEs: not base tables; their columns trace to the inner tables.
        c("WITH recent AS (SELECT * FROM interactions WHERE tenant_id = 7 AND occurred_at > now() - interval '7 days') \
           SELECT contact_id, count(*) FROM recent GROUP BY contact_id ORDER BY 2 DESC",
          K::Select, &["interactions"], &["interactions.tenant_id:equality@0", "interactions.occurred_at:range@0"])
          .group(&["interactions.contact_id:equality@1"]).tenant(L(0)),
        c("WITH x AS (SELECT id, email AS mail FROM contacts) SELECT * FROM x WHERE mail = $1 AND x.id = 3", K::Select, &["contacts"],
          &["contacts.email:equality@1", "contacts.id:equality@1"]),
        c("WITH RECURSIVE tree AS (SELECT id, org_id FROM contacts WHERE id = $1 UNION ALL \
           SELECT c.id, c.org_id FROM contacts c JOIN tree t ON c.org_id = t.id) SELECT * FROM tree",
          K::Select, &["contacts"], &["contacts.id:equality@0", "contacts.org_id:join@1", "?.id:join@1"]),
        c("WITH del AS (DELETE FROM interactions WHERE tenant_id = 3 RETURNING id) SELECT count(*) FROM del", K::Select, &["interactions"],
          &["interactions.tenant_id:equality@0"]).tenant(L(0)),
        c("WITH o AS (SELECT id FROM organizations WHERE industry = $2) UPDATE contacts SET phone = NULL \
           WHERE tenant_id = $1 AND org_id IN (SELECT id FROM o)", K::Update, &["organizations", "contacts"],
          &["organizations.industry:equality@0", "contacts.tenant_id:equality@2", "contacts.org_id:join@2"]).tenant(P(1)),
        // ORDER BY / GROUP BY: names, aliases, positions, expressions.
        c("SELECT * FROM contacts WHERE tenant_id = $1 ORDER BY created_at DESC, lower(name) LIMIT 50 OFFSET 100", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0"]).tenant(P(1))
          .order(&["contacts.created_at:range@0", "contacts.name:expression[lower(name)]@0"]),
        c("SELECT created_at AS c, email FROM contacts ORDER BY c, 2", K::Select, &["contacts"], &[])
          .order(&["contacts.created_at:range@0", "contacts.email:range@0"]),
        c("SELECT industry, date_trunc('month', created_at), count(*) FROM organizations WHERE tenant_id = 1 GROUP BY industry, 2",
          K::Select, &["organizations"], &["organizations.tenant_id:equality@0"]).tenant(L(1))
          .group(&["organizations.industry:equality@0", "organizations.created_at:expression[date_trunc('month', created_at)]@0"]),
        c("SELECT id FROM contacts WHERE tenant_id = 1 UNION ALL SELECT id FROM organizations WHERE tenant_id = 2", K::Select,
          &["contacts", "organizations"], &["contacts.tenant_id:equality@0", "organizations.tenant_id:equality@1"]).tenant(L(0)),
        c("SELECT * FROM contacts WHERE tenant_id = 1 FOR UPDATE SKIP LOCKED", K::Select, &["contacts"],
          &["contacts.tenant_id:equality@0"]).tenant(L(0)),
        c("SELECT 1", K::Select, &[], &[]),
        c("SELECT * FROM generate_series(1, 10) AS g(n) WHERE n > 5", K::Select, &[], &["?.n:range@0"]),
        // INSERT.
        c("INSERT INTO contacts (tenant_id, email, phone) VALUES (42, 'a@b', '555')", K::Insert, &["contacts"], &[]).tenant(L(0)),
        c("INSERT INTO contacts (email, tenant_id) VALUES ($1, $2) RETURNING id", K::Insert, &["contacts"], &[]).tenant(P(2)),
        c("INSERT INTO contacts (email, tenant_id) VALUES ('a', 5), ('b', 6)", K::Insert, &["contacts"], &[]).tenant(L(1)),
        c("INSERT INTO contacts (tenant_id, email) VALUES ($1, $2) ON CONFLICT (tenant_id, email) DO UPDATE SET phone = EXCLUDED.phone",
          K::Insert, &["contacts"], &[]).tenant(P(1)),
        c("INSERT INTO archive.contacts (id, tenant_id) SELECT id, tenant_id FROM contacts WHERE tenant_id = 9 AND deleted_at IS NOT NULL",
          K::Insert, &["archive.contacts", "contacts"], &["contacts.tenant_id:equality@0", "contacts.deleted_at:is_not_null@0"])
          .tenant(L(0)),
        // UPDATE and DELETE, with FROM / USING.
        c("UPDATE contacts SET phone = $3 WHERE tenant_id = $1 AND id = $2", K::Update, &["contacts"],
          &["contacts.tenant_id:equality@0", "contacts.id:equality@0"]).tenant(P(1)),
        c("UPDATE contacts c SET org_id = o.id FROM organizations o WHERE o.name = c.name AND c.tenant_id = 3", K::Update,
          &["contacts", "organizations"], &["organizations.name:join@0", "contacts.name:join@0", "contacts.tenant_id:equality@0"])
          .tenant(L(0)),
        c("UPDATE contacts SET name = (SELECT name FROM organizations o WHERE o.id = contacts.org_id) WHERE tenant_id = 1", K::Update,
          &["contacts", "organizations"], &["organizations.id:join@0", "contacts.org_id:join@0", "contacts.tenant_id:equality@1"])
          .tenant(L(0)),
        c("DELETE FROM interactions WHERE tenant_id = 5 AND occurred_at < '2020-01-01'", K::Delete, &["interactions"],
          &["interactions.tenant_id:equality@0", "interactions.occurred_at:range@0"]).tenant(L(0)),
        c("DELETE FROM interactions i USING contacts c WHERE i.contact_id = c.id AND c.deleted_at IS NOT NULL AND i.tenant_id = $1",
          K::Delete, &["interactions", "contacts"],
          &["interactions.contact_id:join@0", "contacts.id:join@0", "contacts.deleted_at:is_not_null@0", "interactions.tenant_id:equality@0"])
          .tenant(P(1)),
        // COPY, DDL, SET, transactions, others.
        c("COPY contacts (tenant_id, email) FROM STDIN", K::Copy, &["contacts"], &[]),
        c("COPY (SELECT * FROM interactions WHERE tenant_id = 2) TO STDOUT WITH (FORMAT csv)", K::Copy, &["interactions"],
          &["interactions.tenant_id:equality@0"]).tenant(L(0)),
        c("CREATE INDEX CONCURRENTLY idx_c ON crm.contacts (tenant_id, email)", K::Ddl, &["crm.contacts"], &[]),
        c("CREATE TABLE notes (id bigint PRIMARY KEY, body text)", K::Ddl, &["notes"], &[]),
        c("ALTER TABLE contacts ADD COLUMN score int", K::Ddl, &["contacts"], &[]),
        c("DROP INDEX IF EXISTS idx_c", K::Ddl, &[], &[]),
        c("DROP TABLE a, s.b", K::Ddl, &["a", "s.b"], &[]),
        c("TRUNCATE interactions", K::Ddl, &["interactions"], &[]),
        c("SET app.tenant_id = '42'", K::Set, &[], &[]).set("app.tenant_id", "42"),
        c("SET SESSION app.tenant_id TO 7", K::Set, &[], &[]).set("app.tenant_id", "7"),
        c("set search_path to CRM, \"Public\"", K::Set, &[], &[]).set("search_path", "crm, Public"),
        c("SET TIME ZONE 'UTC'", K::Set, &[], &[]).set("timezone", "UTC"),
        c("SET LOCAL app.tenant_id = 7", K::Set, &[], &[]),
        c("RESET app.tenant_id", K::Set, &[], &[]),
        c("BEGIN", K::Transaction, &[], &[]),
        c("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", K::Transaction, &[], &[]),
        c("SET TRANSACTION READ ONLY", K::Transaction, &[], &[]),
        c("SAVEPOINT s1", K::Transaction, &[], &[]),
        c("ROLLBACK TO SAVEPOINT s1", K::Transaction, &[], &[]),
        c("COMMIT", K::Transaction, &[], &[]),
        c("EXPLAIN SELECT * FROM contacts WHERE id = 1", K::Other, &[], &[]),
        c("LISTEN contacts_changed", K::Other, &[], &[]),
    ]
}

#[test]
fn table_of_statements() {
    let crm = crm_catalog();
    let empty = Catalog::new();
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let catalog = if case.catalog { &crm } else { &empty };
        let shapes = match analyze(case.sql, catalog, "tenant_id") {
            Ok(shapes) => shapes,
            Err(e) => {
                failures.push(format!("{}\n  error: {e}", case.sql));
                continue;
            }
        };
        let [shape] = shapes.as_slice() else {
            failures.push(format!("{}\n  {} shapes", case.sql, shapes.len()));
            continue;
        };
        let set = shape
            .set_variable
            .as_ref()
            .map(|(n, v)| (n.as_str(), v.as_str()));
        let checks = [
            (
                "kind",
                format!("{:?}", case.kind),
                format!("{:?}", shape.kind),
            ),
            (
                "tables",
                format!("{:?}", case.tables),
                format!("{:?}", tables(shape)),
            ),
            (
                "filters",
                format!("{:?}", case.filters),
                format!("{:?}", render_all(&shape.filters)),
            ),
            (
                "order_by",
                format!("{:?}", case.order_by),
                format!("{:?}", render_all(&shape.order_by)),
            ),
            (
                "group_by",
                format!("{:?}", case.group_by),
                format!("{:?}", render_all(&shape.group_by)),
            ),
            (
                "tenant",
                format!("{:?}", case.tenant),
                format!("{:?}", shape.tenant),
            ),
            ("set", format!("{:?}", case.set), format!("{:?}", set)),
        ];
        for (what, want, got) in checks {
            if want != got {
                failures.push(format!(
                    "{}\n  {what}: want {want}\n  {what}:  got {got}",
                    case.sql
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn multi_statement_strings_give_one_shape_each() {
    let sql = "BEGIN; UPDATE contacts SET name = 'x' WHERE tenant_id = 5; \
               SELECT * FROM organizations WHERE tenant_id = $1; COMMIT;";
    let shapes = analyze(sql, &crm_catalog(), "tenant_id").unwrap();
    let kinds: Vec<K> = shapes.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [K::Transaction, K::Update, K::Select, K::Transaction]
    );
    assert_eq!(shapes[1].tenant, Some(L(1)));
    assert_eq!(shapes[2].tenant, Some(P(1)));
    assert_eq!(
        render_all(&shapes[2].filters),
        ["organizations.tenant_id:equality@0"]
    );
}

#[test]
fn unparsable_and_empty_input_is_an_error_not_a_panic() {
    let catalog = crm_catalog();
    for sql in [
        "SELEC * FORM contacts",
        "SELECT * FROM contacts WHERE",
        "SELECT 'unterminated",
        "SELECT * FROM contacts WHERE (a = 1",
        "CREATE PUBLICATION p FOR TABLE contacts",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "REINDEX TABLE contacts",
        "CLUSTER contacts USING idx",
        "DROP INDEX CONCURRENTLY IF EXISTS idx_c",
        "VACUUM ANALYZE contacts",
        "SELECT 1; SELEC 2",
        "\u{0}\u{1}garbage",
    ] {
        assert!(
            matches!(
                analyze(sql, &catalog, "tenant_id"),
                Err(AnalyzeError::Parse(_))
            ),
            "{sql}"
        );
    }
    for sql in ["", "   ", "-- only a comment", ";", "/* c */ ;"] {
        assert!(
            matches!(
                analyze(sql, &catalog, "tenant_id"),
                Err(AnalyzeError::Empty)
            ),
            "{sql:?}"
        );
    }
}

#[test]
fn deep_and_long_input_does_not_overflow() {
    let catalog = crm_catalog();
    let chain = vec!["a = 1"; 2000].join(" AND ");
    let shapes = analyze(
        &format!("SELECT * FROM contacts WHERE {chain}"),
        &catalog,
        "tenant_id",
    )
    .unwrap();
    assert_eq!(shapes[0].filters.len(), 2000);
    let ors = vec!["a = 1"; 2000].join(" OR ");
    let shapes = analyze(
        &format!("SELECT * FROM contacts WHERE tenant_id = 1 AND ({ors})"),
        &catalog,
        "tenant_id",
    )
    .unwrap();
    assert_eq!(shapes[0].tenant, Some(L(0)));
    let sum = vec!["id"; 2000].join(" + ");
    assert!(analyze(
        &format!("SELECT * FROM contacts WHERE {sum} > 5"),
        &catalog,
        "tenant_id"
    )
    .is_ok());
    let nested = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
    assert!(analyze(&nested, &catalog, "tenant_id").is_err());
}
