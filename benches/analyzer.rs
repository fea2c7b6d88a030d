//! Analyzer micro-benchmarks on a CRM statement mix (issue 3 targets):
//! the cached path (fingerprint + shape-cache lookup, ≤ 2 µs per statement)
//! and the uncached path (`analyze`, ≤ 50 µs median under 2 KB).
//!
//! `cargo bench --bench analyzer -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use indexpilot::sql::{analyze, normalize, Catalog, Shape, TableName};

const MIX: &[(&str, &str)] = &[
    ("contact_by_email", "SELECT id, name, email, phone FROM contacts WHERE tenant_id = 42 AND email = 'jane.doe@example.com'"),
    ("contact_by_phone", "SELECT id, name FROM contacts WHERE tenant_id = $1 AND phone = $2 AND deleted_at IS NULL"),
    ("contact_email_ci", "SELECT * FROM contacts WHERE tenant_id = $1 AND lower(email) = lower($2) LIMIT 1"),
    ("contacts_recent", "SELECT id, name, created_at FROM contacts WHERE tenant_id = 17 ORDER BY created_at DESC LIMIT 50 OFFSET 100"),
    ("contacts_name_prefix", "SELECT id, name FROM contacts WHERE tenant_id = $1 AND name ILIKE 'mar%' ORDER BY name LIMIT 20"),
    ("contacts_custom_field", "SELECT id FROM contacts WHERE tenant_id = 3 AND custom->>'plan' = 'enterprise' AND (custom->>'seats')::int > 50"),
    ("orgs_by_industry", "SELECT id, name FROM organizations WHERE tenant_id = $1 AND industry IN ('saas', 'fintech', 'health') ORDER BY name"),
    ("orgs_count_by_industry", "SELECT industry, count(*) FROM organizations WHERE tenant_id = 8 GROUP BY industry ORDER BY 2 DESC"),
    ("contact_with_org", "SELECT c.id, c.name, o.name AS org FROM contacts c JOIN organizations o ON o.id = c.org_id \
      WHERE c.tenant_id = $1 AND o.industry = $2 AND c.created_at >= $3 ORDER BY c.created_at DESC LIMIT 25"),
    ("interactions_timeline", "SELECT i.kind, i.occurred_at, i.notes FROM interactions i WHERE i.tenant_id = $1 AND i.contact_id = $2 \
      AND i.occurred_at BETWEEN $3 AND $4 ORDER BY i.occurred_at DESC"),
    ("contacts_without_calls", "SELECT c.id FROM contacts c WHERE c.tenant_id = 5 AND NOT EXISTS (SELECT 1 FROM interactions i \
      WHERE i.contact_id = c.id AND i.kind = 'call' AND i.occurred_at > now() - interval '30 days')"),
    ("contacts_in_orgs", "SELECT id FROM contacts WHERE tenant_id = $1 AND org_id IN (SELECT id FROM organizations WHERE tenant_id = $1 AND industry = $2)"),
    ("cte_activity", "WITH recent AS (SELECT contact_id, count(*) AS n FROM interactions WHERE tenant_id = 11 AND occurred_at > '2024-06-01' \
      GROUP BY contact_id) SELECT c.name, r.n FROM recent r JOIN contacts c ON c.id = r.contact_id ORDER BY r.n DESC LIMIT 10"),
    ("search_or", "SELECT id FROM contacts WHERE tenant_id = $1 AND (email = $2 OR phone = $3 OR name = $4)"),
    ("insert_contact", "INSERT INTO contacts (tenant_id, org_id, name, email, phone, custom) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"),
    ("insert_interaction", "INSERT INTO interactions (tenant_id, contact_id, kind, occurred_at, notes) VALUES (12, 991, 'email', now(), 'sent the quote')"),
    ("update_contact", "UPDATE contacts SET phone = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2"),
    ("delete_old", "DELETE FROM interactions WHERE tenant_id = 4 AND occurred_at < '2020-01-01'"),
    ("set_tenant", "SET app.tenant_id = '42'"),
    ("report_1_2kb", REPORT),
];

/// A 1.2 KB reporting query: CTEs, joins, OR groups, JSON fields, IN lists.
const REPORT: &str = "WITH active AS (SELECT c.id, c.org_id, c.name, c.email, c.custom FROM contacts c \
    WHERE c.tenant_id = $1 AND c.deleted_at IS NULL AND (c.custom->>'status' = 'active' OR c.custom->>'status' = 'trial') \
    AND c.created_at BETWEEN $2 AND $3), touches AS (SELECT i.contact_id, count(*) FILTER (WHERE i.kind = 'call') AS calls, \
    count(*) FILTER (WHERE i.kind = 'email') AS emails, max(i.occurred_at) AS last_touch FROM interactions i \
    WHERE i.tenant_id = $1 AND i.occurred_at >= $2 AND i.kind IN ('call', 'email', 'meeting', 'note', 'task') \
    GROUP BY i.contact_id) SELECT o.name AS organization, o.industry, a.name, a.email, coalesce(t.calls, 0) AS calls, \
    coalesce(t.emails, 0) AS emails, t.last_touch, (SELECT count(*) FROM interactions x WHERE x.contact_id = a.id \
    AND x.tenant_id = $1) AS lifetime FROM active a JOIN organizations o ON o.id = a.org_id AND o.tenant_id = $1 \
    LEFT JOIN touches t ON t.contact_id = a.id WHERE o.industry = ANY($4) AND (lower(a.email) LIKE $5 OR a.name ILIKE $6 \
    OR a.custom->>'owner' = $7) AND NOT EXISTS (SELECT 1 FROM interactions y WHERE y.contact_id = a.id AND y.kind = 'unsubscribe' \
    AND y.tenant_id = $1) ORDER BY t.last_touch DESC NULLS LAST, o.name, a.name LIMIT 100 OFFSET $8";

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    let columns = |c: &str| c.split(' ').map(str::to_string).collect();
    catalog.add_table(
        TableName::new(Some("public"), "contacts"),
        columns("id tenant_id org_id name email phone custom created_at updated_at deleted_at"),
    );
    catalog.add_table(
        TableName::new(Some("public"), "organizations"),
        columns("id tenant_id name industry created_at"),
    );
    catalog.add_table(
        TableName::new(Some("public"), "interactions"),
        columns("id tenant_id contact_id kind occurred_at notes"),
    );
    catalog
}

fn cached(c: &mut Criterion) {
    let catalog = catalog();
    let cache: HashMap<u64, Arc<Vec<Shape>>> = MIX
        .iter()
        .map(|(_, sql)| {
            let shapes = analyze(sql, &catalog, "tenant_id").expect("the mix parses");
            (normalize(sql.as_bytes()).fingerprint, Arc::new(shapes))
        })
        .collect();
    let mut group = c.benchmark_group("cached");
    group.throughput(Throughput::Elements(MIX.len() as u64));
    group.bench_function("mix", |b| {
        b.iter(|| {
            for (_, sql) in MIX {
                let normalized = normalize(black_box(sql.as_bytes()));
                let shapes = cache.get(&normalized.fingerprint).expect("cached");
                black_box((shapes.len(), normalized.literals.len()));
            }
        })
    });
    group.finish();
}

fn uncached(c: &mut Criterion) {
    let catalog = catalog();
    let mut group = c.benchmark_group("uncached");
    for (name, sql) in MIX {
        group.bench_with_input(BenchmarkId::from_parameter(name), sql, |b, sql| {
            b.iter(|| analyze(black_box(sql), &catalog, "tenant_id").expect("parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, cached, uncached);
criterion_main!(benches);
