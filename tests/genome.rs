//! The genome catalog against a real PostgreSQL: discovery matches what the
//! catalog says, sync records exactly what changed, config overrides shape
//! the rows, and `indexpilot genome refresh|show` work from the command line.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use indexpilot::config::{Config, GenomeConfig};
use indexpilot::genome::catalog::{self as genome, Field, TableChange};
use indexpilot::indexer::catalog;
use indexpilot::pg::{PgOptions, TestPg};
use indexpilot::stats::flush::connect_admin;
use tokio_postgres::Client;

const SCHEMA: &str = "indexpilot";

const TABLES: &str = "
    create table accounts (id bigint primary key, tenant_id int not null,
                           email varchar(80), meta jsonb, tags text[],
                           created timestamptz not null default now());
    create schema crm;
    create table crm.deals (id serial primary key, amount numeric(12,2) not null,
                            info json, spot point, note text);";

async fn admin(pg: &TestPg) -> Client {
    connect_admin(&pg.url(), SCHEMA).await.unwrap()
}

/// Discover with `overrides` and sync; the changes sync reports.
async fn sync(client: &mut Client, overrides: &GenomeConfig) -> Vec<TableChange> {
    let tables = catalog::load(client, "ip_", SCHEMA).await.unwrap();
    let desired = genome::discover(&tables, overrides);
    genome::sync(client, SCHEMA, &desired, "test")
        .await
        .unwrap()
}

async fn genome_lineage(client: &Client) -> Vec<(String, Vec<String>, String)> {
    client
        .query(
            "select table_name, columns, reason from indexpilot.mutation_log
              where kind = 'genome' order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn change(table: &str, added: &[&str], removed: &[&str], changed: &[&str]) -> TableChange {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    TableChange {
        table: table.into(),
        added: own(added),
        removed: own(removed),
        changed: own(changed),
    }
}

fn by_key(fields: &[Field]) -> BTreeMap<(String, String), &Field> {
    fields
        .iter()
        .map(|f| ((f.table.clone(), f.column.clone()), f))
        .collect()
}

#[tokio::test]
async fn discovery_matches_the_catalog() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let mut client = admin(&pg).await;
    client.batch_execute(TABLES).await.unwrap();
    let changes = sync(&mut client, &GenomeConfig::default()).await;
    assert_eq!(changes.len(), 2, "{changes:?}");

    // (schema, table, column) → (nullable, type) per the catalog, in column order.
    let truth: Vec<(String, String, String, bool, String)> = client
        .query(
            "select c.table_schema::text, c.table_name::text, c.column_name::text,
                    c.is_nullable = 'YES', format_type(a.atttypid, a.atttypmod)
               from information_schema.columns c
               join pg_attribute a
                 on a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass
                and a.attname = c.column_name
              where c.table_schema not in ('pg_catalog', 'information_schema', 'indexpilot')
              order by 1, 2, c.ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let recorded: Vec<(String, String, String, bool, String)> = client
        .query(
            "select schema_name, table_name, column_name, nullable, data_type
               from indexpilot.genome_catalog order by 1, 2, ordinal",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(recorded.len(), 11);
    assert_eq!(recorded, truth);

    let fields = genome::load(&client, SCHEMA).await.unwrap();
    let f = by_key(&fields);
    let get = |t: &str, c: &str| f[&(t.to_string(), c.to_string())];
    assert_eq!(get("accounts", "email").data_type, "character varying(80)");
    assert_eq!(get("accounts", "tags").data_type, "text[]");
    assert!(!get("accounts", "tenant_id").nullable);
    assert!(
        get("accounts", "tags").indexable,
        "arrays have a btree opclass"
    );
    let meta = get("accounts", "meta");
    assert_eq!(
        (meta.indexable, meta.feature_group.as_str()),
        (true, "document")
    );
    let info = get("crm.deals", "info");
    assert_eq!(
        (info.indexable, info.feature_group.as_str()),
        (false, "document")
    );
    assert!(
        !get("crm.deals", "spot").indexable,
        "point has no btree opclass"
    );
    assert_eq!(get("crm.deals", "amount").feature_group, "core");
    assert_eq!(get("crm.deals", "spot").schema, "crm");
    assert_eq!(get("crm.deals", "note").ordinal, 5);

    let lineage = genome_lineage(&client).await;
    assert_eq!(lineage.len(), 2);
    assert_eq!(lineage[0].0, "accounts");
    assert_eq!(lineage[0].2, "table discovered (6 fields)");
    assert_eq!(lineage[1].2, "table discovered (5 fields)");
}

#[tokio::test]
async fn sync_is_idempotent_and_records_each_change() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let mut client = admin(&pg).await;
    client.batch_execute(TABLES).await.unwrap();
    let none = GenomeConfig::default();
    assert_eq!(sync(&mut client, &none).await.len(), 2);
    let mut before = genome_lineage(&client).await.len();
    assert_eq!(sync(&mut client, &none).await, []);
    assert_eq!(genome_lineage(&client).await.len(), before);

    let steps: [(&str, TableChange, &str); 4] = [
        (
            "alter table accounts add column phone text",
            change("accounts", &["phone"], &[], &[]),
            "fields added: phone",
        ),
        (
            "alter table accounts alter column email type text",
            change(
                "accounts",
                &[],
                &[],
                &["email: type character varying(80) -> text"],
            ),
            "changed: email (type character varying(80) -> text)",
        ),
        (
            "alter table accounts drop column meta, alter column email set not null",
            change("accounts", &[], &["meta"], &["email: null -> not null"]),
            "removed: meta; changed: email (null -> not null)",
        ),
        (
            "drop table crm.deals",
            change(
                "crm.deals",
                &[],
                &["id", "amount", "info", "spot", "note"],
                &[],
            ),
            "table dropped",
        ),
    ];
    for (ddl, expected, reason) in steps {
        client.batch_execute(ddl).await.unwrap();
        assert_eq!(
            sync(&mut client, &none).await,
            std::slice::from_ref(&expected),
            "{ddl}"
        );
        let lineage = genome_lineage(&client).await;
        assert_eq!(lineage.len(), before + 1, "{ddl}: {lineage:?}");
        let (table, columns, why) = lineage.last().unwrap();
        assert_eq!(table, &expected.table);
        assert_eq!(why, reason);
        let mut named = expected.added.clone();
        named.extend(expected.removed.iter().cloned());
        named.extend(
            expected
                .changed
                .iter()
                .map(|c| c.split(':').next().unwrap().to_string()),
        );
        assert_eq!(columns, &named);
        assert_eq!(sync(&mut client, &none).await, [], "{ddl}: second sync");
        assert_eq!(genome_lineage(&client).await.len(), before + 1);
        before += 1;
    }
    let left: Vec<(String, String, i32)> = client
        .query(
            "select table_name, column_name, ordinal from indexpilot.genome_catalog
              where schema_name = 'public' order by ordinal",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let columns: Vec<(&str, i32)> = left.iter().map(|(_, c, o)| (c.as_str(), *o)).collect();
    assert_eq!(
        columns,
        [
            ("id", 1),
            ("tenant_id", 2),
            ("email", 3),
            ("tags", 4),
            ("created", 5),
            ("phone", 6)
        ]
    );
    assert!(genome::load(&client, SCHEMA)
        .await
        .unwrap()
        .iter()
        .all(|f| f.schema == "public"));
}

#[tokio::test]
async fn config_overrides_shape_the_genome() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    pg.psql(
        "create table t (a int, b_1 text, b_2 text, c jsonb);
         create table skip_me (x int);
         create schema hidden; create table hidden.h (y int);
         create schema ops; create table ops.jobs (payload text, state text);",
    )
    .unwrap();
    let url = pg.url();
    let config = Config::from_overrides(&[
        ("genome.not_indexable", "t.a, ops.jobs.payload"),
        ("genome.feature_groups", "billing: t.b_*; queue: ops.jobs.*"),
        ("genome.exclude_tables", "skip_me"),
        ("genome.exclude_schemas", "hidden"),
    ])
    .unwrap();
    let out = genome::refresh(&config, &url, true).await.unwrap();
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["tables"], 2, "{out}");
    assert_eq!(summary["fields"], 6, "{out}");
    assert_eq!(summary["changes"].as_array().unwrap().len(), 2, "{out}");

    let client = admin(&pg).await;
    let rows: Vec<(String, String, bool, String)> = client
        .query(
            "select table_name, column_name, indexable, feature_group
               from indexpilot.genome_catalog order by schema_name, table_name, ordinal",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let expected = [
        ("jobs", "payload", false, "queue"),
        ("jobs", "state", true, "queue"),
        ("t", "a", false, "core"),
        ("t", "b_1", true, "billing"),
        ("t", "b_2", true, "billing"),
        ("t", "c", true, "document"),
    ];
    let rows: Vec<(&str, &str, bool, &str)> = rows
        .iter()
        .map(|(t, c, i, g)| (t.as_str(), c.as_str(), *i, g.as_str()))
        .collect();
    assert_eq!(rows, expected);

    // Same overrides, nothing new: refresh reports no change.
    let again = genome::refresh(&config, &url, false).await.unwrap();
    assert!(again.contains("unchanged"), "{again}");
    // Dropping an override is a change of the genome.
    let plain = Config::from_overrides(&[("genome.exclude_schemas", "hidden")]).unwrap();
    let out = genome::refresh(&plain, &url, true).await.unwrap();
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let changes = summary["changes"].as_array().unwrap();
    let tables: Vec<&str> = changes
        .iter()
        .map(|c| c["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["ops.jobs", "skip_me", "t"], "{out}");
    assert_eq!(changes[2]["changed"][0], "a: not indexable -> indexable");
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_indexpilot"))
        .args(args)
        .env_remove("INDEXPILOT_ADMIN_DSN")
        .output()
        .expect("run indexpilot")
}

fn stdout(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "indexpilot {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_refreshes_and_shows_the_genome() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    pg.psql(TABLES).unwrap();
    let url = pg.url();
    let empty = stdout(&["genome", "show", "--dsn", &url]);
    assert!(empty.contains("no genome recorded yet"), "{empty}");

    let refreshed = stdout(&["genome", "refresh", "--dsn", &url]);
    assert!(
        refreshed.starts_with("genome: 2 tables, 11 fields"),
        "{refreshed}"
    );
    assert!(refreshed.contains("crm.deals"), "{refreshed}");
    let again = stdout(&["genome", "refresh", "--dsn", &url]);
    assert!(again.contains("unchanged"), "{again}");

    let table = stdout(&["genome", "--dsn", &url]);
    assert_eq!(table, stdout(&["genome", "show", "--dsn", &url]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 12, "{table}");
    let header = lines[0];
    assert!(header.starts_with("table"), "{header}");
    let email = lines.iter().find(|l| l.contains(" email ")).unwrap();
    assert!(email.starts_with("accounts "), "{email}");
    assert_eq!(header.find("type"), email.find("character varying(80)"));
    let spot = lines.iter().find(|l| l.contains(" spot ")).unwrap();
    assert!(spot.starts_with("crm.deals "), "{spot}");
    assert_eq!(header.find("column"), spot.find("spot"));

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&["genome", "show", "--json", "--dsn", &url])).unwrap();
    let fields = json.as_array().unwrap();
    assert_eq!(fields.len(), 11);
    let spot = fields.iter().find(|f| f["column"] == "spot").unwrap();
    assert_eq!(spot["table"], "crm.deals");
    assert_eq!(spot["indexable"], false);
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&["genome", "refresh", "--json", "--dsn", &url])).unwrap();
    assert_eq!(json["changes"], serde_json::json!([]));

    let no_dsn = cli(&["genome", "show"]);
    assert_eq!(no_dsn.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_dsn.stderr).contains("--dsn"));
}
