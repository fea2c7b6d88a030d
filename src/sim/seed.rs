//! The CRM schema and its data: four tables loaded by binary COPY,
//! deterministic from the scenario's seed and laid out tenant by tenant, so
//! the workload can name any tenant's k-th contact without asking the database.

use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error};

use super::{tenant_shares, Rng, Scenario};

/// Timestamps count back from this fixed instant (2025-01-01T00:00:00Z), not
/// from the wall clock, so that the same seed gives the same rows on every
/// run; the workload's date filters should count back from it too.
pub const DATA_NOW_UNIX: u64 = 1_735_689_600;

const DAY: u64 = 86_400;

/// Progress is reported once per this many rows.
const CHUNK: u64 = 10_000;

/// Bare tables: keys and indexes are built after the load, which is faster
/// than maintaining them row by row.
const SCHEMA: &str = "
drop table if exists interactions, contacts, organizations, tenants cascade;
create table tenants (id int not null, name text not null, plan text not null);
create table organizations (id bigint not null, tenant_id int not null, name text not null,
    industry text not null, size int not null, created_at timestamptz not null);
create table contacts (id bigint not null, tenant_id int not null, org_id bigint,
    email text not null, phone text not null, first_name text not null, last_name text not null,
    created_at timestamptz not null, custom_text_1 text, custom_text_2 text, custom_num_1 int);
create table interactions (id bigint not null, tenant_id int not null, contact_id bigint not null,
    type text not null, occurred_at timestamptz not null, notes text);";

/// Only primary keys and tenant_id indexes: the app was never indexed for
/// its filters, finding those is IndexPilot's job.
const KEYS: &str = "
alter table tenants add primary key (id);
alter table organizations add primary key (id);
alter table contacts add primary key (id);
alter table interactions add primary key (id);
create index on organizations (tenant_id);
create index on contacts (tenant_id);
create index on interactions (tenant_id);";

const TABLES: [&str; 4] = ["tenants", "organizations", "contacts", "interactions"];

// One row per theme; rustfmt would put each name on a line of its own.
#[rustfmt::skip]
const INDUSTRIES: [&str; 30] = [
    "software", "security", "gaming", "telecom", "media", "entertainment",
    "retail", "food", "hospitality", "travel", "logistics", "automotive",
    "banking", "insurance", "real_estate", "legal", "consulting", "marketing",
    "healthcare", "pharma", "biotech", "education", "government", "nonprofit",
    "manufacturing", "aerospace", "energy", "utilities", "construction", "agriculture",
];

const INTERACTION_TYPES: [&str; 8] = [
    "email", "call", "note", "meeting", "task", "sms", "demo", "webinar",
];

/// Relative frequencies of [`INTERACTION_TYPES`].
const INTERACTION_WEIGHTS: [u64; 8] = [30, 20, 15, 10, 10, 7, 5, 3];

const FIRST_NAMES: [&str; 16] = [
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "John", "Ken",
    "Leslie", "Margaret", "Niklaus", "Radia", "Tony", "Vint",
];

const LAST_NAMES: [&str; 16] = [
    "Allen", "Backus", "Cerf", "Dijkstra", "Hamilton", "Hopper", "Hoare", "Kay", "Knuth",
    "Lamport", "Liskov", "Lovelace", "Perlman", "Ritchie", "Turing", "Wirth",
];

const NOTES: [&str; 8] = [
    "follow up next week",
    "asked for pricing",
    "left a voicemail",
    "sent the proposal",
    "renewal discussed",
    "wants a demo for the team",
    "no answer",
    "escalated to support",
];

/// What [`seed`] loaded: enough to address any row without the database.
#[derive(Clone, Debug, Serialize)]
pub struct Seeded {
    pub tenants: u32,
    pub contacts: u64,
    pub organizations: u64,
    pub interactions: u64,
    /// Tenant `t`'s contacts are ids `sum(contacts_per_tenant[..t]) + 1 ..=`
    /// `sum(contacts_per_tenant[..=t])`.
    pub contacts_per_tenant: Vec<u64>,
    /// Organizations are laid out the same way.
    pub orgs_per_tenant: Vec<u64>,
    /// Wall time of the whole seeding, keys and analyze included.
    pub seconds: f64,
}

impl Seeded {
    /// Where every row of scenario `s` is, without the database: the same
    /// arithmetic as [`seed`] (which is how `indexpilot simulate` reuses a
    /// dataset it seeded before).
    pub fn layout(s: &Scenario) -> Seeded {
        let contacts = split(s.contacts, s.tenants);
        let orgs = split(s.contacts / 10, s.tenants);
        Seeded {
            tenants: s.tenants,
            contacts: contacts.iter().sum(),
            organizations: orgs.iter().sum(),
            interactions: 2 * contacts.iter().sum::<u64>(),
            contacts_per_tenant: contacts,
            orgs_per_tenant: orgs,
            seconds: 0.0,
        }
    }
}

/// What identifies a dataset: recorded as the comment of `contacts`, so
/// that a later run can tell whether the tables hold the data it expects.
pub fn marker(s: &Scenario) -> String {
    format!(
        "{MARKER_PREFIX}tenants={} contacts={} seed={}",
        s.tenants, s.contacts, s.seed
    )
}

/// Every simulation dataset's comment starts with this.
pub const MARKER_PREFIX: &str = "indexpilot simulation dataset: ";

/// What the database holds where the CRM tables go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// None of the four tables.
    Nothing,
    /// A dataset seeded by IndexPilot, with its marker.
    Dataset(String),
    /// Some of the tables exist and were not seeded by IndexPilot: they are
    /// someone's data and must not be replaced.
    Foreign(Vec<String>),
}

/// Look at the four table names in the connection's search path.
pub async fn existing(client: &Client) -> Result<Existing, Error> {
    let mut present = Vec::new();
    for table in TABLES {
        let row = client
            .query_one(
                "select to_regclass($1) is not null, obj_description(to_regclass($1), 'pg_class')",
                &[&table],
            )
            .await?;
        if row.get::<_, bool>(0) {
            present.push((table, row.get::<_, Option<String>>(1)));
        }
    }
    if present.is_empty() {
        return Ok(Existing::Nothing);
    }
    let marked = present
        .iter()
        .find(|(t, _)| *t == "contacts")
        .and_then(|(_, comment)| comment.clone())
        .filter(|c| c.starts_with(MARKER_PREFIX));
    Ok(match marked {
        Some(m) => Existing::Dataset(m),
        None => Existing::Foreign(present.iter().map(|(t, _)| t.to_string()).collect()),
    })
}

/// Drop and create the four tables, load the data, analyze, and mark the
/// dataset. `progress(done_rows, total_rows)` is called every chunk of rows.
pub async fn seed(
    client: &Client,
    s: &Scenario,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Seeded, Error> {
    let started = Instant::now();
    let layout = Seeded::layout(s);
    let mut bar = Progress {
        done: 0,
        total: u64::from(s.tenants) + layout.organizations + layout.contacts + layout.interactions,
        report: progress,
    };

    client.batch_execute(SCHEMA).await?;
    load_tenants(client, s, &mut bar).await?;
    load_organizations(client, s.seed, &layout.orgs_per_tenant, &mut bar).await?;
    load_contacts(
        client,
        s.seed,
        &layout.contacts_per_tenant,
        &layout.orgs_per_tenant,
        &mut bar,
    )
    .await?;
    load_interactions(client, s.seed, &layout.contacts_per_tenant, &mut bar).await?;
    (bar.report)(bar.total, bar.total);
    client.batch_execute(KEYS).await?;
    client
        .batch_execute(&format!(
            "comment on table contacts is '{}'",
            marker(s).replace('\'', "''")
        ))
        .await?;
    // VACUUM refuses to run inside a transaction block, and a multi-statement
    // simple query is one: one call per table.
    for table in TABLES {
        client
            .batch_execute(&format!("vacuum analyze {table}"))
            .await?;
    }
    Ok(Seeded {
        seconds: started.elapsed().as_secs_f64(),
        ..layout
    })
}

/// The `k`-th (`k` taken modulo the tenant's count) contact of `tenant`:
/// `(id, email, phone)`, by the same arithmetic as seeding.
/// Panics if `tenant` is not below `seeded.tenants`.
pub fn contact_of(seeded: &Seeded, tenant: u32, k: u64) -> (u64, String, String) {
    let t = tenant as usize;
    let start: u64 = seeded.contacts_per_tenant[..t].iter().sum();
    let id = start + 1 + k % seeded.contacts_per_tenant[t].max(1);
    (id, email(id, tenant), phone(id))
}

pub fn industries() -> &'static [&'static str] {
    &INDUSTRIES
}

pub fn interaction_types() -> &'static [&'static str] {
    &INTERACTION_TYPES
}

/// Whether `tenant`'s rows carry a value in custom field `field`
/// (`custom_text_1`: 10% of tenants, `custom_text_2`: 4%, `custom_num_1`:
/// 25%); every other tenant leaves it NULL.
pub fn expresses(tenant: u32, field: &str) -> bool {
    match field {
        "custom_text_1" => tenant % 10 == 3,
        "custom_text_2" => tenant % 25 == 7,
        "custom_num_1" => tenant % 4 == 1,
        _ => false,
    }
}

/// `total` rows split by [`tenant_shares`], every tenant at least one; the
/// rounding remainder goes to tenant 0, the largest.
pub fn split(total: u64, tenants: u32) -> Vec<u64> {
    let mut counts: Vec<u64> = tenant_shares(tenants)
        .iter()
        .map(|share| ((total as f64 * share) as u64).max(1))
        .collect();
    let sum: u64 = counts.iter().sum();
    if let Some(first) = counts.first_mut() {
        *first = (*first + total).saturating_sub(sum).max(1);
    }
    counts
}

/// Distinct per contact, so an equality filter on it picks one row.
fn email(id: u64, tenant: u32) -> String {
    format!("c{id}.t{tenant}@tenant-{tenant}.example.com")
}

/// Seven digits from a bijection of `id` modulo 10^7 (the multiplier is
/// coprime with 10): unique for up to ten million contacts, and not in id
/// order, so an index on phone is not correlated with the heap.
fn phone(id: u64) -> String {
    format!("+1-555-{:07}", (id * 3_141_593 + 271_828) % 10_000_000)
}

/// A random instant within `days` before [`DATA_NOW_UNIX`].
fn ago(rng: &mut Rng, days: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(DATA_NOW_UNIX - rng.below(days * DAY))
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

fn weighted(rng: &mut Rng) -> &'static str {
    let mut x = rng.below(INTERACTION_WEIGHTS.iter().sum());
    for (name, weight) in INTERACTION_TYPES.into_iter().zip(INTERACTION_WEIGHTS) {
        if x < weight {
            return name;
        }
        x -= weight;
    }
    unreachable!("x is below the sum of the weights")
}

/// One independent stream per table, so changing one table's generator does
/// not reshuffle the others.
fn stream(seed: u64, table: u64) -> Rng {
    Rng::new(seed ^ table.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

struct Progress<'a> {
    done: u64,
    total: u64,
    report: &'a mut (dyn FnMut(u64, u64) + Send),
}

impl Progress<'_> {
    fn tick(&mut self) {
        self.done += 1;
        if self.done.is_multiple_of(CHUNK) {
            (self.report)(self.done, self.total);
        }
    }
}

/// A binary COPY into `table`: the writer batches rows into CopyData
/// messages itself, so no `Sink` plumbing is needed here.
async fn copy_in(
    client: &Client,
    table: &str,
    columns: &str,
    types: &[Type],
) -> Result<Pin<Box<BinaryCopyInWriter>>, Error> {
    let sql = format!("copy {table} ({columns}) from stdin (format binary)");
    let sink = client.copy_in(&sql).await?;
    Ok(Box::pin(BinaryCopyInWriter::new(sink, types)))
}

async fn load_tenants(client: &Client, s: &Scenario, bar: &mut Progress<'_>) -> Result<(), Error> {
    let types = [Type::INT4, Type::TEXT, Type::TEXT];
    let mut w = copy_in(client, "tenants", "id, name, plan", &types).await?;
    let mut rng = stream(s.seed, 1);
    // The biggest tenants pay the most.
    let enterprise = (s.tenants / 20).max(1);
    for t in 0..s.tenants {
        let plan = match rng.below(10) {
            _ if t < enterprise => "enterprise",
            0..=2 => "pro",
            _ => "free",
        };
        let (id, name) = (t as i32, format!("tenant-{t}"));
        w.as_mut().write(&[&id, &name, &plan]).await?;
        bar.tick();
    }
    w.as_mut().finish().await.map(drop)
}

async fn load_organizations(
    client: &Client,
    seed: u64,
    orgs: &[u64],
    bar: &mut Progress<'_>,
) -> Result<(), Error> {
    let types = [
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TIMESTAMPTZ,
    ];
    let columns = "id, tenant_id, name, industry, size, created_at";
    let mut w = copy_in(client, "organizations", columns, &types).await?;
    let mut rng = stream(seed, 2);
    let mut id = 0u64;
    for (t, &n) in orgs.iter().enumerate() {
        // Each tenant sells mostly into one industry.
        let home = pick(&mut rng, &INDUSTRIES);
        for _ in 0..n {
            id += 1;
            let industry = if rng.below(2) == 0 {
                home
            } else {
                pick(&mut rng, &INDUSTRIES)
            };
            // Log-uniform: many small companies, a few large ones.
            let size = (10f64.powf(rng.unit() * 5.0)) as i32;
            let name = format!("org-{id}");
            let created = ago(&mut rng, 3 * 365);
            let row: [&(dyn ToSql + Sync); 6] =
                [&(id as i64), &(t as i32), &name, &industry, &size, &created];
            w.as_mut().write(&row).await?;
            bar.tick();
        }
    }
    w.as_mut().finish().await.map(drop)
}

/// One contact's custom fields: values only where the tenant expresses them.
fn custom(rng: &mut Rng, tenant: u32, id: u64) -> (Option<String>, Option<String>, Option<i32>) {
    let ct1 = expresses(tenant, "custom_text_1").then(|| format!("ct1-{id}"));
    let ct2 = expresses(tenant, "custom_text_2").then(|| format!("ct2-{}", rng.below(50)));
    let cn1 = expresses(tenant, "custom_num_1").then(|| rng.below(1000) as i32);
    (ct1, ct2, cn1)
}

async fn load_contacts(
    client: &Client,
    seed: u64,
    contacts: &[u64],
    orgs: &[u64],
    bar: &mut Progress<'_>,
) -> Result<(), Error> {
    let types = [
        Type::INT8,
        Type::INT4,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
    ];
    let columns = "id, tenant_id, org_id, email, phone, first_name, last_name, created_at, \
                   custom_text_1, custom_text_2, custom_num_1";
    let mut w = copy_in(client, "contacts", columns, &types).await?;
    let mut rng = stream(seed, 3);
    let (mut id, mut org_start) = (0u64, 0u64);
    for (t, (&n, &m)) in contacts.iter().zip(orgs).enumerate() {
        let tenant = t as u32;
        for _ in 0..n {
            id += 1;
            let org = (org_start + 1 + rng.below(m)) as i64;
            let (first, last) = (pick(&mut rng, &FIRST_NAMES), pick(&mut rng, &LAST_NAMES));
            let created = ago(&mut rng, 2 * 365);
            let (ct1, ct2, cn1) = custom(&mut rng, tenant, id);
            let row: [&(dyn ToSql + Sync); 11] = [
                &(id as i64),
                &(tenant as i32),
                &org,
                &email(id, tenant),
                &phone(id),
                &first,
                &last,
                &created,
                &ct1,
                &ct2,
                &cn1,
            ];
            w.as_mut().write(&row).await?;
            bar.tick();
        }
        org_start += m;
    }
    w.as_mut().finish().await.map(drop)
}

async fn load_interactions(
    client: &Client,
    seed: u64,
    contacts: &[u64],
    bar: &mut Progress<'_>,
) -> Result<(), Error> {
    let types = [
        Type::INT8,
        Type::INT4,
        Type::INT8,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
    ];
    let columns = "id, tenant_id, contact_id, type, occurred_at, notes";
    let mut w = copy_in(client, "interactions", columns, &types).await?;
    let mut rng = stream(seed, 4);
    let (mut id, mut contact_start) = (0u64, 0u64);
    for (t, &n) in contacts.iter().enumerate() {
        for _ in 0..2 * n {
            id += 1;
            let contact = (contact_start + 1 + rng.below(n)) as i64;
            let kind = weighted(&mut rng);
            let occurred = ago(&mut rng, 365);
            let notes = (rng.below(5) != 0).then(|| pick(&mut rng, &NOTES));
            let row: [&(dyn ToSql + Sync); 6] = [
                &(id as i64),
                &(t as i32),
                &contact,
                &kind,
                &occurred,
                &notes,
            ];
            w.as_mut().write(&row).await?;
            bar.tick();
        }
        contact_start += n;
    }
    w.as_mut().finish().await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_skewed_covers_every_tenant_and_sums_to_total() {
        let counts = split(40_000, 20);
        assert_eq!(counts.iter().sum::<u64>(), 40_000);
        assert!(counts.iter().all(|&n| n >= 1));
        assert!(counts[0] > 10 * counts[19], "{counts:?}");
        let tiny = split(5, 20);
        assert_eq!(tiny, vec![1; 20], "more tenants than rows: one each");
    }

    #[test]
    fn contact_of_walks_tenants_in_id_order() {
        let contacts = vec![3, 2, 4];
        let seeded = Seeded {
            tenants: 3,
            contacts: 9,
            organizations: 3,
            interactions: 18,
            contacts_per_tenant: contacts,
            orgs_per_tenant: vec![1, 1, 1],
            seconds: 0.0,
        };
        let ids: Vec<u64> = (0..3)
            .flat_map(|t| (0..seeded.contacts_per_tenant[t as usize]).map(move |k| (t, k)))
            .map(|(t, k)| contact_of(&seeded, t, k).0)
            .collect();
        assert_eq!(ids, (1..=9).collect::<Vec<_>>());
        assert_eq!(contact_of(&seeded, 1, 2).0, 4, "k wraps modulo the count");
        let (id, email, phone) = contact_of(&seeded, 2, 0);
        assert_eq!(id, 6);
        assert_eq!(email, "c6.t2@tenant-2.example.com");
        assert!(phone.starts_with("+1-555-") && phone.len() == 14, "{phone}");
    }

    #[test]
    fn phones_are_unique_up_to_ten_million() {
        let mut seen = vec![false; 10_000_000];
        for id in 1..=10_000_000u64 {
            let n: usize = phone(id)[7..].parse().unwrap();
            assert!(!std::mem::replace(&mut seen[n], true), "duplicate at {id}");
        }
    }

    #[test]
    fn expresses_follows_the_published_rule() {
        let share = |f| (0..1000).filter(|&t| expresses(t, f)).count();
        assert_eq!(share("custom_text_1"), 100);
        assert_eq!(share("custom_text_2"), 40);
        assert_eq!(share("custom_num_1"), 250);
        assert_eq!(share("email"), 0);
        assert!(expresses(3, "custom_text_1") && !expresses(4, "custom_text_1"));
    }

    #[test]
    fn vocabularies() {
        assert_eq!(industries().len(), 30);
        assert_eq!(
            interaction_types(),
            ["email", "call", "note", "meeting", "task", "sms", "demo", "webinar"]
        );
        let mut rng = Rng::new(1);
        let emails = (0..10_000)
            .filter(|_| weighted(&mut rng) == "email")
            .count();
        assert!((2_700..3_300).contains(&emails), "{emails}");
    }
}
