//! Unit tests of the pure genome core: discovery with overrides, the diff
//! that `sync` writes and records, and rendering.

use super::*;
use crate::indexer::model::ColumnFacts;

fn column(name: &str, data_type: &str, btree: bool, nullable: bool) -> ColumnFacts {
    ColumnFacts {
        name: name.into(),
        data_type: data_type.into(),
        btree,
        nullable,
        ..ColumnFacts::default()
    }
}

fn tables() -> Vec<TableFacts> {
    let table = |schema: &str, name: &str, columns| TableFacts {
        schema: schema.into(),
        name: name.into(),
        columns,
        ..TableFacts::default()
    };
    vec![
        table(
            "public",
            "contacts",
            vec![
                column("id", "bigint", true, false),
                column("notes", "text", true, true),
                column("custom_a", "text", true, true),
                column("custom_b", "integer", true, true),
                column("meta", "jsonb", false, true),
                column("email", "text", true, true),
            ],
        ),
        table(
            "ops",
            "jobs",
            vec![
                column("payload", "text", true, true),
                column("state", "json", false, true),
            ],
        ),
        table(
            "public",
            "audit_log",
            vec![column("at", "timestamp with time zone", true, false)],
        ),
        table("scratch", "tmp", vec![column("x", "integer", true, true)]),
    ]
}

fn overrides() -> GenomeConfig {
    GenomeConfig {
        exclude_schemas: vec!["scratch".into()],
        exclude_tables: vec!["audit_log".into()],
        not_indexable: vec!["contacts.notes".into(), "ops.jobs.payload".into()],
        feature_groups: vec![
            ("custom".into(), "contacts.custom_*".into()),
            ("contact".into(), "contacts.email".into()),
            ("ops".into(), "ops.jobs.*".into()),
        ],
    }
}

fn find<'a>(fields: &'a [Field], table: &str, column: &str) -> &'a Field {
    fields
        .iter()
        .find(|f| f.table == table && f.column == column)
        .unwrap_or_else(|| panic!("{table}.{column} missing"))
}

#[test]
fn discovery_without_overrides_keeps_everything_with_default_groups() {
    let fields = discover(&tables(), &GenomeConfig::default());
    assert_eq!(fields.len(), 10);
    let labels: Vec<&str> = fields.iter().map(|f| f.table.as_str()).collect();
    assert!(labels.windows(2).all(|w| w[0] <= w[1]), "{labels:?}");
    let meta = find(&fields, "contacts", "meta");
    assert_eq!(
        (meta.feature_group.as_str(), meta.indexable),
        ("document", false)
    );
    let id = find(&fields, "contacts", "id");
    assert_eq!((id.ordinal, id.nullable, id.indexable), (1, false, true));
    assert_eq!(id.feature_group, "core");
    assert_eq!(find(&fields, "contacts", "email").ordinal, 6);
    assert_eq!(find(&fields, "scratch.tmp", "x").schema, "scratch");
}

#[test]
fn overrides_exclude_mark_and_group() {
    let fields = discover(&tables(), &overrides());
    let tables: BTreeSet<&str> = fields.iter().map(|f| f.table.as_str()).collect();
    assert_eq!(tables, BTreeSet::from(["contacts", "ops.jobs"]));
    assert!(!find(&fields, "contacts", "notes").indexable);
    assert!(find(&fields, "contacts", "email").indexable);
    // Schema-qualified label, split at the last dot.
    let payload = find(&fields, "ops.jobs", "payload");
    assert!(!payload.indexable);
    assert_eq!(payload.feature_group, "ops");
    assert_eq!(
        find(&fields, "contacts", "custom_a").feature_group,
        "custom"
    );
    assert_eq!(
        find(&fields, "contacts", "custom_b").feature_group,
        "custom"
    );
    assert_eq!(find(&fields, "contacts", "email").feature_group, "contact");
    assert_eq!(find(&fields, "contacts", "notes").feature_group, "core");
    // A declared group wins over the JSON default.
    assert_eq!(find(&fields, "ops.jobs", "state").feature_group, "ops");
}

#[test]
fn first_matching_group_wins_and_patterns_are_exact_without_star() {
    let groups = vec![
        ("a".to_string(), "t.x".to_string()),
        ("b".to_string(), "t.*".to_string()),
    ];
    assert_eq!(feature_group("t.x", "text", &groups), "a");
    assert_eq!(feature_group("t.xy", "text", &groups), "b");
    assert_eq!(feature_group("u.x", "jsonb", &groups), "document");
    assert_eq!(feature_group("u.x", "jsonb[]", &groups), "core");
}

#[test]
fn relname_strips_the_schema_of_a_label() {
    let fields = discover(&tables(), &GenomeConfig::default());
    assert_eq!(find(&fields, "ops.jobs", "state").relname(), "jobs");
    assert_eq!(find(&fields, "contacts", "id").relname(), "contacts");
}

#[test]
fn diff_reports_discovery_additions_changes_and_drops() {
    let before = discover(&tables(), &GenomeConfig::default());
    assert!(diff(&before, &before).planned.is_empty());
    assert!(diff(&before, &before).upsert.is_empty());

    let first = diff(&[], &before);
    assert_eq!(first.upsert.len(), before.len());
    let contacts = &first.planned[1];
    assert_eq!(contacts.change.table, "contacts");
    assert_eq!(contacts.reason, "table discovered (6 fields)");

    let mut after = before.clone();
    after.retain(|f| f.table != "audit_log" && !(f.table == "contacts" && f.column == "notes"));
    for f in after.iter_mut().filter(|f| f.table == "contacts") {
        if f.ordinal > 2 {
            f.ordinal -= 1;
        }
        if f.column == "email" {
            f.data_type = "character varying(20)".into();
            f.nullable = false;
        }
    }
    let mut added = after[0].clone();
    added.table = "ops.jobs".into();
    added.schema = "ops".into();
    added.column = "owner".into();
    after.push(added);
    let d = diff(&before, &after);
    let changes: Vec<(&str, &str)> = d
        .planned
        .iter()
        .map(|p| (p.change.table.as_str(), p.reason.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("audit_log", "table dropped"),
            (
                "contacts",
                "removed: notes; changed: email (type text -> character varying(20), null -> not null)"
            ),
            ("ops.jobs", "fields added: owner"),
        ]
    );
    // Ordinal-only shifts are rewritten, not reported.
    assert_eq!(d.upsert.len(), 4 + 1);
    assert_eq!(d.remove.len(), 2);
    let m = mutation(&d.planned[1]);
    assert_eq!(m.columns, ["notes", "email"]);
    assert_eq!(
        m.evidence["changed"][0],
        "email: type text -> character varying(20), null -> not null"
    );
}

#[test]
fn render_aligns_columns() {
    let fields = discover(&tables(), &overrides());
    let text = render(&fields);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), fields.len() + 1);
    let at = |line: &str, word: &str| line.find(word).unwrap();
    let jobs = lines.iter().find(|l| l.starts_with("ops.jobs")).unwrap();
    assert_eq!(at(lines[0], "column"), at(jobs, "payload"));
    assert_eq!(at(lines[0], "type"), at(jobs, "text"));
    assert_eq!(at(lines[0], "indexable"), at(jobs, "no  "));
    assert!(render(&[]).contains("no genome recorded yet"));
}
