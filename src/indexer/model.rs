//! The facts the indexer decides from, as plain data: what the database
//! catalog says about tables, columns and indexes. Filled by `catalog`
//! (pg_* reads), consumed by the pure `candidates` and `cost` cores.

/// One table, as `pg_class` / `pg_stat_user_tables` describe it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableFacts {
    pub schema: String,
    pub name: String,
    /// `pg_class.reltuples` (estimated rows; -1 when never analyzed → 0 here).
    pub rows: f64,
    /// `pg_class.relpages` (8 KiB pages).
    pub pages: f64,
    /// Rows inserted + updated + deleted per second since stats reset
    /// (`pg_stat_user_tables`), an estimate of write rate.
    pub writes_per_sec: f64,
    /// Rows inserted + updated + deleted since statistics were reset: the
    /// indexer derives the current write rate from two readings of it.
    pub writes_total: f64,
    pub columns: Vec<ColumnFacts>,
    pub indexes: Vec<IndexFacts>,
}

/// One column, with `pg_stats` where the table has been analyzed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColumnFacts {
    pub name: String,
    /// Type name as `format_type` prints it.
    pub data_type: String,
    /// Whether a btree operator class exists for the type.
    pub btree: bool,
    /// Not declared NOT NULL.
    pub nullable: bool,
    /// `pg_stats.n_distinct`: > 0 a count, < 0 a fraction of rows, 0 unknown.
    pub n_distinct: f64,
    pub null_frac: f64,
    /// Most common values and their frequencies (as text).
    pub most_common: Vec<(String, f64)>,
    /// `pg_stats.avg_width` in bytes (0 when never analyzed).
    pub avg_width: f64,
}

/// One existing index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexFacts {
    pub name: String,
    /// Key columns in order; an expression key is its text, e.g. "lower(email)".
    pub keys: Vec<String>,
    pub unique: bool,
    /// The partial-index predicate text, if any.
    pub predicate: Option<String>,
    /// `indisvalid`: false for a failed concurrent build.
    pub valid: bool,
    pub size_bytes: i64,
    /// `pg_stat_user_indexes.idx_scan`.
    pub scans: i64,
    /// Name carries IndexPilot's prefix (only those may ever be dropped).
    pub ours: bool,
    /// A plain btree index (not backing an exclusion constraint).
    pub btree: bool,
}

impl TableFacts {
    /// `schema.name`, as the statistics label tables.
    pub fn label(&self) -> String {
        if self.schema == "public" {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnFacts> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether an existing valid index already starts with `keys` (so a
    /// new index on them would be redundant).
    pub fn covered_by_prefix(&self, keys: &[String]) -> bool {
        self.indexes
            .iter()
            .filter(|i| i.valid && i.predicate.is_none())
            .any(|i| i.keys.len() >= keys.len() && i.keys[..keys.len()] == *keys)
    }

    /// [`covered_by_prefix`](Self::covered_by_prefix), or an existing valid
    /// index partial `WHERE <sparse> IS NOT NULL` starts with `keys`: it
    /// serves every lookup that compares `sparse` strictly (an application
    /// index of that shape is as good as the sparse one IndexPilot would
    /// build).
    pub fn covered_where_not_null(&self, keys: &[String], sparse: &str) -> bool {
        self.covered_by_prefix(keys)
            || self.indexes.iter().any(|i| {
                i.valid
                    && i.predicate
                        .as_deref()
                        .is_some_and(|p| is_not_null(p, sparse))
                    && i.keys.len() >= keys.len()
                    && i.keys[..keys.len()] == *keys
            })
    }
}

/// `predicate` (as `pg_get_expr` prints it) is `column IS NOT NULL`,
/// with or without parentheses and identifier quotes.
fn is_not_null(predicate: &str, column: &str) -> bool {
    let mut p = predicate.trim();
    while let Some(inner) = p.strip_prefix('(').and_then(|q| q.strip_suffix(')')) {
        p = inner.trim();
    }
    const SUFFIX: &str = " IS NOT NULL";
    let Some(split) = p.len().checked_sub(SUFFIX.len()) else {
        return false;
    };
    if !p.is_char_boundary(split) || !p[split..].eq_ignore_ascii_case(SUFFIX) {
        return false;
    }
    let ident = p[..split].trim();
    let unquoted = ident
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .map(|q| q.replace("\"\"", "\""));
    unquoted.as_deref().unwrap_or(ident) == column
}

impl TableFacts {
    /// Indexes of the application's (not IndexPilot's) that one of ours
    /// makes redundant: plain, valid, non-unique, non-partial btree indexes
    /// whose keys are a strict prefix of a valid, non-partial index of ours.
    /// Pairs of (theirs, ours).
    pub fn redundant_with_ours(&self) -> Vec<(&IndexFacts, &IndexFacts)> {
        let plain = |i: &&IndexFacts| i.valid && i.btree && i.predicate.is_none();
        let mut out = Vec::new();
        for theirs in self
            .indexes
            .iter()
            .filter(plain)
            .filter(|i| !i.ours && !i.unique)
        {
            let longer = self
                .indexes
                .iter()
                .filter(plain)
                .filter(|i| i.ours)
                .find(|o| {
                    o.keys.len() > theirs.keys.len()
                        && o.keys[..theirs.keys.len()] == theirs.keys[..]
                });
            if let Some(ours) = longer {
                out.push((theirs, ours));
            }
        }
        out
    }
}

impl ColumnFacts {
    /// Estimated distinct values given the table's row count.
    pub fn distinct(&self, rows: f64) -> f64 {
        if self.n_distinct > 0.0 {
            self.n_distinct
        } else if self.n_distinct < 0.0 {
            -self.n_distinct * rows
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_coverage_ignores_partial_and_invalid_indexes() {
        let idx = |keys: &[&str], valid: bool, predicate: Option<&str>| IndexFacts {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            valid,
            predicate: predicate.map(str::to_string),
            ..IndexFacts::default()
        };
        let t = TableFacts {
            indexes: vec![
                idx(&["tenant_id", "email"], true, None),
                idx(&["phone"], false, None),
                idx(&["industry"], true, Some("tenant_id = 3")),
            ],
            ..TableFacts::default()
        };
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(t.covered_by_prefix(&k(&["tenant_id"])));
        assert!(t.covered_by_prefix(&k(&["tenant_id", "email"])));
        assert!(!t.covered_by_prefix(&k(&["email"])));
        assert!(!t.covered_by_prefix(&k(&["phone"])));
        assert!(!t.covered_by_prefix(&k(&["industry"])));
    }

    #[test]
    fn a_not_null_partial_index_covers_sparse_lookups_only() {
        let idx = |keys: &[&str], predicate: &str| IndexFacts {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            valid: true,
            predicate: Some(predicate.to_string()),
            ..IndexFacts::default()
        };
        let t = TableFacts {
            indexes: vec![
                idx(&["tenant_id", "custom_text_1"], "custom_text_1 IS NOT NULL"),
                idx(
                    &["tenant_id", "Custom \"2\""],
                    "(\"Custom \"\"2\"\"\" IS NOT NULL)",
                ),
                idx(
                    &["tenant_id", "phone"],
                    "phone IS NOT NULL AND tenant_id = 3",
                ),
            ],
            ..TableFacts::default()
        };
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(t.covered_where_not_null(&k(&["tenant_id", "custom_text_1"]), "custom_text_1"));
        assert!(t.covered_where_not_null(&k(&["tenant_id", "Custom \"2\""]), "Custom \"2\""));
        // Another column's predicate, a narrower predicate, other keys: no.
        assert!(!t.covered_where_not_null(&k(&["tenant_id", "custom_text_1"]), "email"));
        assert!(!t.covered_where_not_null(&k(&["tenant_id", "phone"]), "phone"));
        assert!(!t.covered_where_not_null(&k(&["custom_text_1"]), "custom_text_1"));
        // Without the sparse key a partial index never covers.
        assert!(!t.covered_by_prefix(&k(&["tenant_id", "custom_text_1"])));
        assert!(!is_not_null("x IS NOT NUL", "x"));
        assert!(!is_not_null("é", "x"));
    }

    #[test]
    fn redundant_application_indexes_are_prefixes_of_ours() {
        let idx = |name: &str, keys: &[&str], ours: bool| IndexFacts {
            name: name.to_string(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            valid: true,
            btree: true,
            ours,
            ..IndexFacts::default()
        };
        let mut unique = idx("t_pkey", &["tenant_id"], false);
        unique.unique = true;
        let mut partial = idx("t_partial", &["tenant_id"], false);
        partial.predicate = Some("active".into());
        let mut gin = idx("t_gin", &["tenant_id"], false);
        gin.btree = false;
        let mut ours_partial = idx("ip_phone", &["phone", "tenant_id"], true);
        ours_partial.predicate = Some("phone IS NOT NULL".into());
        let t = TableFacts {
            indexes: vec![
                idx("t_tenant", &["tenant_id"], false),
                idx("t_tenant_email", &["tenant_id", "email"], false),
                idx("t_phone", &["phone"], false),
                unique,
                partial,
                gin,
                idx("ip_tenant_email", &["tenant_id", "email"], true),
                ours_partial,
            ],
            ..TableFacts::default()
        };
        let found: Vec<(&str, &str)> = t
            .redundant_with_ours()
            .into_iter()
            .map(|(a, b)| (a.name.as_str(), b.name.as_str()))
            .collect();
        // Not the equal-keys one (a duplicate is not ours to judge), the
        // unique, partial or non-btree ones, nor a prefix of our partial.
        assert_eq!(found, [("t_tenant", "ip_tenant_email")]);
    }

    #[test]
    fn distinct_estimates() {
        let c = |n| ColumnFacts {
            n_distinct: n,
            ..ColumnFacts::default()
        };
        assert_eq!(c(50.0).distinct(1000.0), 50.0);
        assert_eq!(c(-0.5).distinct(1000.0), 500.0);
        assert_eq!(c(0.0).distinct(1000.0), 0.0);
    }
}
