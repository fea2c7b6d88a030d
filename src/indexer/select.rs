//! Ranking under budgets (a pure core): the round's worthwhile proposals and
//! the indexes of ours already in place are ranked together by net benefit
//! per byte. A proposal fills free room first; when a table's budget binds,
//! one that beats the weakest index of ours there by [`REPLACE_MARGIN`]
//! replaces it (build the new one, then drop the old one). Budgets count what
//! is in place, not what was attempted.

/// A proposal must be worth this many times the weakest index of ours on a
/// full table (net benefit per byte) to replace it: a clear margin, so that
/// two near-equal indexes do not swap back and forth on estimate noise.
pub const REPLACE_MARGIN: f64 = 2.0;

/// A worthwhile proposal, as the selector sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    /// Position in the caller's proposal list.
    pub id: usize,
    pub table: String,
    /// Per-tenant partial indexes of one field share one place in the
    /// table's budget (what a DBA would build is one index for them): the
    /// family's name; `None` for every other index.
    pub family: Option<String>,
    /// Net benefit per second (saving minus upkeep), planner cost units.
    pub net_per_sec: f64,
    pub bytes: i64,
}

/// An index of ours in place (verified or being verified).
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub name: String,
    pub table: String,
    /// As [`Offer::family`].
    pub family: Option<String>,
    pub net_per_sec: f64,
    pub bytes: i64,
    /// Not a replacement victim: still being verified, or not provably ours
    /// (no create record).
    pub pinned: bool,
}

/// The limits the selector works within.
#[derive(Clone, Debug, PartialEq)]
pub struct Budgets {
    /// Indexes of ours a table may hold (`indexer.max_indexes_per_table`).
    pub per_table: usize,
    /// Builds still allowed this hour (kept builds of the last hour count).
    pub builds_left: usize,
    /// Bytes of ours still allowed (`indexer.max_total_index_bytes` minus
    /// what is in place); `None`: no limit.
    pub bytes_left: Option<i64>,
}

/// Why an offer waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defer {
    /// `indexer.max_builds_per_hour` reached.
    Hourly,
    /// The table is full and the offer does not beat its weakest index of
    /// ours by the margin.
    Table,
    /// `indexer.max_total_index_bytes` would be exceeded.
    Bytes,
}

impl Defer {
    /// The indexer key that binds.
    pub fn key(self) -> &'static str {
        match self {
            Defer::Hourly => "indexer.max_builds_per_hour",
            Defer::Table => "indexer.max_indexes_per_table",
            Defer::Bytes => "indexer.max_total_index_bytes",
        }
    }
}

/// What to do with one offer, best first.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Build {
        id: usize,
    },
    /// Build `id`, then drop `victim` (an index of ours on the same table).
    Replace {
        id: usize,
        victim: String,
    },
    Defer {
        id: usize,
        why: Defer,
    },
}

/// Net benefit per byte: the ranking key.
pub fn density(net_per_sec: f64, bytes: i64) -> f64 {
    net_per_sec / bytes.max(8192) as f64
}

/// Rank `offers` (all worthwhile) against `held` under `budgets`. Offers are
/// taken best first; each Build or Replace uses one build of the hour and
/// changes the room left for the next.
pub fn select(offers: &[Offer], held: &[Held], budgets: &Budgets) -> Vec<Decision> {
    let mut order: Vec<&Offer> = offers.iter().collect();
    order.sort_by(|a, b| {
        density(b.net_per_sec, b.bytes)
            .total_cmp(&density(a.net_per_sec, a.bytes))
            .then(a.id.cmp(&b.id))
    });
    let mut held: Vec<Held> = held.to_vec();
    let mut builds_left = budgets.builds_left;
    let mut bytes_left = budgets.bytes_left;
    let mut out = Vec::with_capacity(order.len());
    for o in order {
        if builds_left == 0 {
            out.push(Decision::Defer {
                id: o.id,
                why: Defer::Hourly,
            });
            continue;
        }
        let places = places(&held, &o.table);
        let joins = o
            .family
            .as_ref()
            .is_some_and(|f| held.iter().any(|h| h.family.as_ref() == Some(f)));
        let victim = if places >= budgets.per_table && !joins {
            match weakest(&held, &o.table) {
                Some(w) if density(o.net_per_sec, o.bytes) > REPLACE_MARGIN * w.1 => Some(w.0),
                _ => {
                    out.push(Decision::Defer {
                        id: o.id,
                        why: Defer::Table,
                    });
                    continue;
                }
            }
        } else {
            None
        };
        let freed = victim
            .as_ref()
            .and_then(|v| held.iter().find(|h| h.name == *v))
            .map_or(0, |h| h.bytes);
        if bytes_left.is_some_and(|left| o.bytes - freed > left) {
            out.push(Decision::Defer {
                id: o.id,
                why: Defer::Bytes,
            });
            continue;
        }
        builds_left -= 1;
        bytes_left = bytes_left.map(|left| left - o.bytes + freed);
        held.retain(|h| Some(&h.name) != victim.as_ref());
        held.push(Held {
            name: format!("\u{1}offer {}", o.id),
            table: o.table.clone(),
            family: o.family.clone(),
            net_per_sec: o.net_per_sec,
            bytes: o.bytes,
            pinned: true,
        });
        out.push(match victim {
            Some(victim) => Decision::Replace { id: o.id, victim },
            None => Decision::Build { id: o.id },
        });
    }
    out
}

/// Places used in `table`'s budget: one per index, one per family.
fn places(held: &[Held], table: &str) -> usize {
    let mut families: Vec<&str> = Vec::new();
    let mut n = 0;
    for h in held.iter().filter(|h| h.table == table) {
        match &h.family {
            Some(f) if families.contains(&f.as_str()) => {}
            Some(f) => {
                families.push(f);
                n += 1;
            }
            None => n += 1,
        }
    }
    n
}

/// The verified index of ours on `table` with the least net benefit per
/// byte, and that density.
fn weakest(held: &[Held], table: &str) -> Option<(String, f64)> {
    held.iter()
        .filter(|h| h.table == table && !h.pinned)
        .map(|h| (h.name.clone(), density(h.net_per_sec, h.bytes)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: usize, table: &str, net: f64, mb: i64) -> Offer {
        Offer {
            id,
            table: table.into(),
            family: None,
            net_per_sec: net,
            bytes: mb << 20,
        }
    }

    fn held(name: &str, table: &str, net: f64, mb: i64) -> Held {
        Held {
            name: name.into(),
            table: table.into(),
            family: None,
            net_per_sec: net,
            bytes: mb << 20,
            pinned: false,
        }
    }

    fn budgets(per_table: usize, builds_left: usize, bytes_left: Option<i64>) -> Budgets {
        Budgets {
            per_table,
            builds_left,
            bytes_left,
        }
    }

    #[test]
    fn table_driven() {
        use Decision::*;
        struct Case {
            name: &'static str,
            offers: Vec<Offer>,
            held: Vec<Held>,
            budgets: Budgets,
            want: Vec<Decision>,
        }
        let cases = vec![
            Case {
                name: "best per byte first, not first come",
                offers: vec![offer(0, "t", 10.0, 100), offer(1, "t", 50.0, 10)],
                held: vec![],
                budgets: budgets(5, 5, None),
                want: vec![Build { id: 1 }, Build { id: 0 }],
            },
            Case {
                name: "a full table: a clearly better offer replaces the weakest",
                offers: vec![offer(0, "t", 100.0, 10)],
                held: vec![held("a", "t", 50.0, 10), held("b", "t", 1.0, 100)],
                budgets: budgets(2, 5, None),
                want: vec![Replace {
                    id: 0,
                    victim: "b".into(),
                }],
            },
            Case {
                name: "a full table: a merely better offer waits (margin)",
                offers: vec![offer(0, "t", 1.5, 10)],
                held: vec![held("a", "t", 1.0, 10)],
                budgets: budgets(1, 5, None),
                want: vec![Defer {
                    id: 0,
                    why: super::Defer::Table,
                }],
            },
            Case {
                name: "an index still being verified is no victim",
                offers: vec![offer(0, "t", 100.0, 1)],
                held: vec![Held {
                    pinned: true,
                    ..held("a", "t", 0.1, 10)
                }],
                budgets: budgets(1, 5, None),
                want: vec![Defer {
                    id: 0,
                    why: super::Defer::Table,
                }],
            },
            Case {
                name: "other tables' indexes do not fill this table",
                offers: vec![offer(0, "t", 1.0, 1)],
                held: vec![held("a", "u", 1.0, 1), held("b", "u", 1.0, 1)],
                budgets: budgets(2, 5, None),
                want: vec![Build { id: 0 }],
            },
            Case {
                name: "the hourly budget: the best offers get the builds left",
                offers: vec![
                    offer(0, "t", 1.0, 10),
                    offer(1, "t", 9.0, 10),
                    offer(2, "u", 5.0, 10),
                ],
                held: vec![],
                budgets: budgets(5, 2, None),
                want: vec![
                    Build { id: 1 },
                    Build { id: 2 },
                    Defer {
                        id: 0,
                        why: super::Defer::Hourly,
                    },
                ],
            },
            Case {
                name: "the size budget counts the bytes a replacement frees",
                offers: vec![offer(0, "t", 100.0, 30), offer(1, "u", 100.0, 30)],
                held: vec![held("big", "t", 1.0, 40)],
                budgets: budgets(1, 5, Some(5 << 20)),
                want: vec![
                    Replace {
                        id: 0,
                        victim: "big".into(),
                    },
                    Defer {
                        id: 1,
                        why: super::Defer::Bytes,
                    },
                ],
            },
            Case {
                name: "the first offer's build fills the table for the second",
                offers: vec![offer(0, "t", 9.0, 1), offer(1, "t", 8.0, 1)],
                held: vec![held("a", "t", 5.0, 1)],
                budgets: budgets(2, 5, None),
                want: vec![
                    Build { id: 0 },
                    Defer {
                        id: 1,
                        why: super::Defer::Table,
                    },
                ],
            },
            Case {
                name: "per-tenant partials of one field take one place, and a new one joins it",
                offers: vec![
                    Offer {
                        family: Some("t custom".into()),
                        ..offer(0, "t", 1.0, 1)
                    },
                    offer(1, "t", 1.0, 1),
                ],
                held: vec![
                    Held {
                        family: Some("t custom".into()),
                        ..held("p1", "t", 1.0, 1)
                    },
                    Held {
                        family: Some("t custom".into()),
                        ..held("p2", "t", 1.0, 1)
                    },
                ],
                budgets: budgets(2, 5, None),
                want: vec![Build { id: 0 }, Build { id: 1 }],
            },
        ];
        for c in cases {
            assert_eq!(select(&c.offers, &c.held, &c.budgets), c.want, "{}", c.name);
        }
    }
}
