//! The CRM workload: a deterministic sequence of queries (the same seed
//! gives the same sequence, so both phases of a comparison run exactly the
//! same statements), run by concurrent clients mixing the simple and the
//! extended protocol, and summarized per query class.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use super::seed::{self, Seeded};
use super::{Rng, Scenario};
use crate::report::{ClassLatency, Latency};

/// What a query does; the report groups latency by class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// `contacts` by tenant and email (extended protocol).
    EmailLookup,
    /// `contacts` by tenant and phone (simple protocol, literals).
    PhoneLookup,
    /// `organizations` by tenant and industry, newest first.
    IndustryFilter,
    /// `interactions` by tenant and type in the last 30 days, newest first.
    RecentInteractions,
    /// `contacts` by tenant and a custom field (only tenants using it).
    CustomField,
    /// `contacts` created in a date range (the drift phase's hot pattern).
    CreatedRange,
    /// `contacts` by primary key (needs no new index: a control).
    ContactById,
    /// INSERT into `interactions`.
    NewInteraction,
    /// UPDATE of a contact.
    TouchContact,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::EmailLookup,
        Class::PhoneLookup,
        Class::IndustryFilter,
        Class::RecentInteractions,
        Class::CustomField,
        Class::CreatedRange,
        Class::ContactById,
        Class::NewInteraction,
        Class::TouchContact,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::EmailLookup => "email_lookup",
            Class::PhoneLookup => "phone_lookup",
            Class::IndustryFilter => "industry_filter",
            Class::RecentInteractions => "recent_interactions",
            Class::CustomField => "custom_field",
            Class::CreatedRange => "created_range",
            Class::ContactById => "contact_by_id",
            Class::NewInteraction => "write_interaction",
            Class::TouchContact => "write_contact",
        }
    }

    /// Reads filtered on a non-key column: what indexes can speed up.
    pub fn filtered(self) -> bool {
        !matches!(
            self,
            Class::ContactById | Class::NewInteraction | Class::TouchContact
        )
    }

    pub fn write(self) -> bool {
        matches!(self, Class::NewInteraction | Class::TouchContact)
    }
}

/// One parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i32),
    BigInt(i64),
    Text(String),
    Time(SystemTime),
}

/// One query of the sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub class: Class,
    pub tenant: u32,
    /// SQL with `$n` placeholders.
    pub sql: &'static str,
    pub params: Vec<Value>,
    /// Sent as a simple Query with the values inlined as literals.
    pub simple: bool,
}

/// Which mix of classes to draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Email, phone, industry, interactions, custom fields; ~10 % writes.
    Normal,
    /// The hot field moves: date-range scans of contacts replace the email
    /// and phone lookups.
    Drift,
    /// Writes alone: what index maintenance costs shows here undiluted.
    Writes,
}

/// (class, weight) of a mix; weights sum to 100, writes are 10 (but in
/// [`Mix::Writes`]).
fn weights(mix: Mix) -> &'static [(Class, u64)] {
    match mix {
        Mix::Normal => &[
            (Class::EmailLookup, 25),
            (Class::PhoneLookup, 20),
            (Class::IndustryFilter, 15),
            (Class::RecentInteractions, 12),
            (Class::CustomField, 8),
            (Class::ContactById, 10),
            (Class::NewInteraction, 6),
            (Class::TouchContact, 4),
        ],
        Mix::Drift => &[
            (Class::CreatedRange, 45),
            (Class::IndustryFilter, 15),
            (Class::RecentInteractions, 12),
            (Class::CustomField, 8),
            (Class::ContactById, 10),
            (Class::NewInteraction, 6),
            (Class::TouchContact, 4),
        ],
        Mix::Writes => &[(Class::NewInteraction, 60), (Class::TouchContact, 40)],
    }
}

/// `n` queries drawn from `mix`, deterministic in `seed`. Tenants are drawn
/// by their size (big tenants get more traffic); custom-field queries only
/// come from tenants that use the field.
pub fn sequence(seeded: &Seeded, n: u64, seed: u64, mix: Mix) -> Vec<Query> {
    let mut rng = Rng::new(seed);
    let total: u64 = seeded.contacts_per_tenant.iter().sum();
    let custom: Vec<u32> = (0..seeded.tenants)
        .filter(|&t| {
            seed::expresses(t, "custom_text_1") && seeded.contacts_per_tenant[t as usize] > 0
        })
        .collect();
    let mut next_interaction = seeded.interactions + 1 + (seed % 1000) * 10_000_000;
    (0..n)
        .map(|_| {
            let mut class = pick(&mut rng, weights(mix));
            if class == Class::CustomField && custom.is_empty() {
                class = Class::EmailLookup;
            }
            let tenant = if class == Class::CustomField {
                custom[rng.below(custom.len() as u64) as usize]
            } else {
                by_size(&mut rng, &seeded.contacts_per_tenant, total)
            };
            make(seeded, &mut rng, class, tenant, &mut next_interaction)
        })
        .collect()
}

fn pick(rng: &mut Rng, weights: &[(Class, u64)]) -> Class {
    let total: u64 = weights.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for &(class, w) in weights {
        if x < w {
            return class;
        }
        x -= w;
    }
    weights[0].0
}

fn by_size(rng: &mut Rng, sizes: &[u64], total: u64) -> u32 {
    let mut x = rng.below(total.max(1));
    for (t, &n) in sizes.iter().enumerate() {
        if x < n {
            return t as u32;
        }
        x -= n;
    }
    0
}

const DAY: Duration = Duration::from_secs(86_400);

fn make(seeded: &Seeded, rng: &mut Rng, class: Class, tenant: u32, next_id: &mut u64) -> Query {
    let n = seeded.contacts_per_tenant[tenant as usize].max(1);
    let (id, email, phone) = seed::contact_of(seeded, tenant, rng.below(n));
    let t = Value::Int(tenant as i32);
    // The seeded data is anchored at a fixed date (same data every run).
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(seed::DATA_NOW_UNIX);
    let (sql, params, simple): (&'static str, Vec<Value>, bool) = match class {
        Class::EmailLookup => (
            "select id, first_name, last_name from contacts where tenant_id = $1 and email = $2",
            vec![t, Value::Text(email)],
            false,
        ),
        Class::PhoneLookup => (
            "select id, email from contacts where tenant_id = $1 and phone = $2",
            vec![t, Value::Text(phone)],
            true,
        ),
        Class::IndustryFilter => {
            let industries = seed::industries();
            let industry = industries[rng.below(industries.len() as u64) as usize];
            (
                "select id, name, size from organizations where tenant_id = $1 and industry = $2 \
                 order by created_at desc limit 20",
                vec![t, Value::Text(industry.to_string())],
                false,
            )
        }
        Class::RecentInteractions => {
            let types = seed::interaction_types();
            let kind = types[rng.below(types.len() as u64) as usize];
            (
                "select id, contact_id, occurred_at from interactions where tenant_id = $1 \
                 and type = $2 and occurred_at > $3 order by occurred_at desc limit 20",
                vec![
                    t,
                    Value::Text(kind.to_string()),
                    Value::Time(now - 30 * DAY),
                ],
                rng.below(2) == 0,
            )
        }
        Class::CustomField => (
            "select id, email from contacts where tenant_id = $1 and custom_text_1 = $2",
            vec![t, Value::Text(format!("ct1-{id}"))],
            false,
        ),
        Class::CreatedRange => {
            let from = now - DAY * (1 + rng.below(700) as u32);
            (
                "select id, email from contacts where tenant_id = $1 and created_at >= $2 \
                 and created_at < $3 order by created_at limit 20",
                vec![t, Value::Time(from), Value::Time(from + DAY)],
                false,
            )
        }
        Class::ContactById => (
            "select id, email, phone from contacts where id = $1 and tenant_id = $2",
            vec![Value::BigInt(id as i64), t],
            rng.below(2) == 0,
        ),
        Class::NewInteraction => {
            *next_id += 1;
            (
                "insert into interactions (id, tenant_id, contact_id, type, occurred_at, notes) \
                 values ($1, $2, $3, 'note', $4, 'simulated')",
                vec![
                    Value::BigInt(*next_id as i64),
                    t,
                    Value::BigInt(id as i64),
                    Value::Time(now),
                ],
                false,
            )
        }
        Class::TouchContact => (
            "update contacts set last_name = last_name where id = $1 and tenant_id = $2",
            vec![Value::BigInt(id as i64), t],
            true,
        ),
    };
    Query {
        class,
        tenant,
        sql,
        params,
        simple,
    }
}

/// The first id of rows the workload inserts (so they can be removed
/// between runs, keeping the data the same for every phase).
pub fn first_inserted_id(seeded: &Seeded) -> u64 {
    seeded.interactions + 1
}

/// One executed query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub class: Class,
    /// Seconds since the run started, at completion.
    pub at: f64,
    pub latency: Duration,
    pub ok: bool,
}

/// Run `queries` with `concurrency` clients on `conninfo` (client `i` takes
/// queries `i`, `i + c`, `i + 2c`, ...). `progress(done)` is called as
/// queries complete.
pub async fn run(
    conninfo: &str,
    queries: Arc<Vec<Query>>,
    concurrency: u32,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<Vec<Sample>, tokio_postgres::Error> {
    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..concurrency.max(1) {
        let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
        tokio::spawn(conn);
        let queries = queries.clone();
        let done = done.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = c as usize;
            while i < queries.len() {
                let q = &queries[i];
                let t0 = Instant::now();
                let ok = execute(&client, q).await.is_ok();
                samples.push(Sample {
                    class: q.class,
                    at: started.elapsed().as_secs_f64(),
                    latency: t0.elapsed(),
                    ok,
                });
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                i += concurrency.max(1) as usize;
            }
            samples
        }));
    }
    let mut all = Vec::with_capacity(queries.len());
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    Ok(all)
}

async fn execute(client: &Client, q: &Query) -> Result<(), tokio_postgres::Error> {
    if q.simple {
        client.simple_query(&inline(q)).await.map(|_| ())
    } else {
        let params: Vec<Box<dyn ToSql + Sync + Send>> = q
            .params
            .iter()
            .map(|v| -> Box<dyn ToSql + Sync + Send> {
                match v {
                    Value::Int(i) => Box::new(*i),
                    Value::BigInt(i) => Box::new(*i),
                    Value::Text(s) => Box::new(s.clone()),
                    Value::Time(t) => Box::new(*t),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        client.query(q.sql, &refs).await.map(|_| ())
    }
}

/// The query's SQL with its values as literals (for the simple protocol).
pub fn inline(q: &Query) -> String {
    let mut sql = q.sql.to_string();
    // Highest placeholder first, so that $1 does not match inside $10.
    for (i, v) in q.params.iter().enumerate().rev() {
        let literal = match v {
            Value::Int(n) => n.to_string(),
            Value::BigInt(n) => n.to_string(),
            Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Time(t) => format!(
                "'{}+00'::timestamptz",
                crate::indexer::lineage::format_utc(*t)
            ),
        };
        sql = sql.replace(&format!("${}", i + 1), &literal);
    }
    sql
}

/// Latency of a set of samples over `seconds`.
pub fn latency(samples: &[&Sample], seconds: f64) -> Latency {
    let mut ms: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1]
        }
    };
    Latency {
        queries: ms.len() as u64,
        throughput: ms.len() as f64 / seconds.max(1e-9),
        mean_ms: if ms.is_empty() {
            0.0
        } else {
            ms.iter().sum::<f64>() / ms.len() as f64
        },
        p50_ms: q(0.50),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
    }
}

/// One run's figures: overall, per class, filtered reads, writes/s.
pub fn summarize(samples: &[Sample]) -> (Latency, Vec<ClassLatency>, Latency, f64) {
    let seconds = samples.iter().map(|s| s.at).fold(0.0, f64::max);
    let all: Vec<&Sample> = samples.iter().collect();
    let filtered: Vec<&Sample> = samples.iter().filter(|s| s.class.filtered()).collect();
    let writes = samples.iter().filter(|s| s.class.write()).count();
    let classes = Class::ALL
        .iter()
        .filter_map(|&c| {
            let of: Vec<&Sample> = samples.iter().filter(|s| s.class == c).collect();
            (!of.is_empty()).then(|| ClassLatency {
                class: c.name().to_string(),
                filtered: c.filtered(),
                write: c.write(),
                latency: latency(&of, seconds),
            })
        })
        .collect();
    (
        latency(&all, seconds),
        classes,
        latency(&filtered, seconds),
        writes as f64 / seconds.max(1e-9),
    )
}

/// p95 per second of the run, for the chart.
pub fn timeline(samples: &[Sample], offset: f64) -> Vec<(f64, f64)> {
    let end = samples.iter().map(|s| s.at).fold(0.0, f64::max);
    let mut out = Vec::new();
    let mut second = 0.0;
    while second < end {
        let of: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.class.filtered() && s.at >= second && s.at < second + 1.0)
            .collect();
        if !of.is_empty() {
            out.push((offset + second + 0.5, latency(&of, 1.0).p95_ms));
        }
        second += 1.0;
    }
    out
}

/// The scenario's sequences: warm-up, then the measured runs (one seed per
/// trial, the same in every phase).
pub fn trial_seed(s: &Scenario, trial: u32) -> u64 {
    s.seed
        .wrapping_mul(1_000_003)
        .wrapping_add(u64::from(trial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_quotes_and_orders_placeholders() {
        let q = Query {
            class: Class::PhoneLookup,
            tenant: 1,
            sql: "select 1 where a = $1 and b = $2 and c = $10",
            params: vec![
                Value::Int(7),
                Value::Text("o'brien".into()),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::BigInt(10),
            ],
            simple: true,
        };
        assert_eq!(
            inline(&q),
            "select 1 where a = 7 and b = 'o''brien' and c = 10"
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let samples: Vec<Sample> = (1..=100)
            .map(|i| Sample {
                class: Class::EmailLookup,
                at: i as f64 / 10.0,
                latency: Duration::from_millis(i),
                ok: true,
            })
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let l = latency(&refs, 10.0);
        assert_eq!(l.queries, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p95_ms, 95.0);
        assert_eq!(l.p99_ms, 99.0);
        assert!((l.throughput - 10.0).abs() < 1e-9);
    }
}
