//! The CRM seeder against a real PostgreSQL: row counts, tenant skew, the
//! arithmetic of `contact_of`, the custom-field rule and determinism.

use indexpilot::pg::{PgOptions, TestPg};
use indexpilot::sim::seed::{self, contact_of, expresses, Seeded};
use indexpilot::sim::Scenario;
use tokio_postgres::{Client, NoTls};

async fn connect(pg: &TestPg) -> Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn contacts_digest(client: &Client) -> String {
    let sql = "select md5(string_agg(c::text, '|' order by id)) from contacts c";
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn seed_tiny(client: &Client) -> Seeded {
    let scenario = Scenario::named("tiny").unwrap();
    let mut calls = 0u64;
    let mut last = (0, 0);
    let mut progress = |done, total| {
        calls += 1;
        last = (done, total);
    };
    let seeded = seed::seed(client, &scenario, &mut progress).await.unwrap();
    assert!(calls > 10, "progress reported per chunk: {calls}");
    assert_eq!(last.0, last.1, "progress ends at the total");
    println!(
        "seeded tiny ({} contacts, {} orgs, {} interactions) in {:.2}s",
        seeded.contacts, seeded.organizations, seeded.interactions, seeded.seconds
    );
    seeded
}

#[tokio::test]
async fn tiny_is_loaded_skewed_addressable_and_deterministic() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg).await;
    let seeded = seed_tiny(&client).await;

    assert_eq!(seeded.tenants, 20);
    assert_eq!(seeded.contacts, 40_000);
    assert_eq!(seeded.organizations, 4_000);
    assert_eq!(seeded.interactions, 80_000);
    assert_eq!(count(&client, "select count(*) from tenants").await, 20);
    assert_eq!(
        count(&client, "select count(*) from contacts").await,
        40_000
    );
    assert_eq!(
        count(&client, "select count(*) from organizations").await,
        4_000
    );
    assert_eq!(
        count(&client, "select count(*) from interactions").await,
        80_000
    );

    let per_tenant =
        |table: &str| format!("select tenant_id, count(*) from {table} group by 1 order by 1");
    let rows = client.query(&per_tenant("contacts"), &[]).await.unwrap();
    let contacts: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(1) as u64).collect();
    assert_eq!(contacts, seeded.contacts_per_tenant);
    assert!(contacts[0] > 10 * contacts[19], "{contacts:?}");
    let rows = client
        .query(&per_tenant("organizations"), &[])
        .await
        .unwrap();
    let orgs: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(1) as u64).collect();
    assert_eq!(orgs, seeded.orgs_per_tenant);

    for (tenant, k) in [(0, 0), (0, 17_000), (3, 5), (7, 999_999), (19, 0)] {
        let (id, email, phone) = contact_of(&seeded, tenant, k);
        let row = client
            .query_one(
                "select tenant_id, email, phone from contacts where id = $1",
                &[&(id as i64)],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0) as u32, tenant, "contact {id}");
        assert_eq!(row.get::<_, String>(1), email);
        assert_eq!(row.get::<_, String>(2), phone);
    }

    let distinct = "select count(distinct email), count(distinct phone) from contacts";
    let row = client.query_one(distinct, &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (40_000, 40_000)
    );

    let same_tenant = "select count(*) from contacts c join organizations o on o.id = c.org_id
                       where o.tenant_id = c.tenant_id";
    assert_eq!(count(&client, same_tenant).await, 40_000);
    let same_tenant = "select count(*) from interactions i join contacts c on c.id = i.contact_id
                       where c.tenant_id = i.tenant_id";
    assert_eq!(count(&client, same_tenant).await, 80_000);

    for field in ["custom_text_1", "custom_text_2", "custom_num_1"] {
        let sql = format!(
            "select tenant_id, bool_and({field} is not null), bool_or({field} is not null)
             from contacts group by 1 order by 1"
        );
        for row in client.query(&sql, &[]).await.unwrap() {
            let tenant = row.get::<_, i32>(0) as u32;
            let (all, any) = (row.get::<_, bool>(1), row.get::<_, bool>(2));
            assert_eq!(
                (all, any),
                (expresses(tenant, field), expresses(tenant, field))
            );
        }
    }

    let analyzed = "select count(*) from pg_stat_user_tables where last_analyze is not null
                    and relname in ('tenants', 'organizations', 'contacts', 'interactions')";
    assert_eq!(count(&client, analyzed).await, 4);

    let first = contacts_digest(&client).await;
    let again = seed_tiny(&client).await;
    assert_eq!(again.contacts_per_tenant, seeded.contacts_per_tenant);
    assert_eq!(
        contacts_digest(&client).await,
        first,
        "same seed, same data"
    );
}

/// Timing only (`cargo test --release --test sim_seed -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "a minute of seeding: run by hand for timings"]
async fn medium_timing() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg).await;
    let scenario = Scenario::named("medium").unwrap();
    let seeded = seed::seed(&client, &scenario, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(seeded.contacts, scenario.contacts);
    println!(
        "seeded medium ({} contacts, {} rows in all) in {:.2}s",
        seeded.contacts,
        seeded.organizations + seeded.contacts + seeded.interactions,
        seeded.seconds
    );
}
