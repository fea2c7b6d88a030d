//! The analyzer's output types: a statement's [`Shape`] (kind, tables,
//! filtered/sorted/grouped columns, tenant) and the schema [`Catalog`] used to
//! resolve unqualified columns.

use std::collections::HashMap;
use std::fmt;

/// What a statement does, for counters and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Copy,
    Ddl,
    Set,
    Transaction,
    Other,
}

impl StatementKind {
    /// Snake-case name, for storage and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Copy => "copy",
            StatementKind::Ddl => "ddl",
            StatementKind::Set => "set",
            StatementKind::Transaction => "transaction",
            StatementKind::Other => "other",
        }
    }
}

/// How a column is used in a predicate, i.e. which index could serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PredicateClass {
    /// `col = const` (also a bare boolean column, `col IS TRUE`).
    Equality,
    /// `col IN (consts)`, `col = ANY($1)`, `col = ANY(ARRAY[..])`.
    InList,
    /// `<`, `<=`, `>`, `>=`; also every plain ORDER BY column.
    Range,
    Between,
    /// `LIKE`/`ILIKE` whose pattern has a constant prefix (or is a parameter).
    LikePrefix,
    IsNull,
    IsNotNull,
    /// A comparison with a column of another table (`ON a.x = b.y`,
    /// correlated subqueries, `col IN (SELECT ..)`).
    Join,
    /// No plain b-tree on the column serves it. With
    /// [`ColumnUse::expression`] set, the column is wrapped (`lower(email)`,
    /// `data ->> 'plan'`, `col + 1`) and an expression index could; without,
    /// the operator is the obstacle (`<>`, `NOT IN`, `LIKE '%x'`, `~`, `@>`).
    Expression,
}

impl PredicateClass {
    /// Snake-case name, for storage and metric labels.
    pub const fn as_str(&self) -> &'static str {
        match self {
            PredicateClass::Equality => "equality",
            PredicateClass::InList => "in_list",
            PredicateClass::Range => "range",
            PredicateClass::Between => "between",
            PredicateClass::LikePrefix => "like_prefix",
            PredicateClass::IsNull => "is_null",
            PredicateClass::IsNotNull => "is_not_null",
            PredicateClass::Join => "join",
            PredicateClass::Expression => "expression",
        }
    }
}

/// A base table. Identifiers are case-folded unless they were quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn new(schema: Option<&str>, name: &str) -> TableName {
        TableName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One column used by a predicate, an ORDER BY or a GROUP BY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUse {
    /// The base table, `None` when it cannot be resolved.
    pub table: Option<TableName>,
    pub column: String,
    pub class: PredicateClass,
    /// Normalized text of the wrapping expression for [`PredicateClass::Expression`],
    /// e.g. `lower(email)` or `data ->> 'plan'`; `None` for a bare column.
    pub expression: Option<String>,
    /// AND-group: the predicate is put in disjunctive normal form per query
    /// block and each conjunction gets its own number, so columns that share
    /// a group are filtered together (`a AND (b OR c)` gives `{a, b}` and
    /// `{a, c}`). ORDER BY / GROUP BY columns carry their block's first group.
    pub group: u16,
}

/// Where the tenant value of a statement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantValue {
    /// Index into [`super::Normalized::literals`] of the same text.
    Literal(usize),
    /// Bind parameter `$n`, 1-based.
    Param(u16),
}

/// What one statement touches and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub kind: StatementKind,
    /// Base tables in order of first appearance (CTE names are not tables).
    pub tables: Vec<TableName>,
    pub filters: Vec<ColumnUse>,
    pub order_by: Vec<ColumnUse>,
    pub group_by: Vec<ColumnUse>,
    pub tenant: Option<TenantValue>,
    /// `SET [SESSION] name = value` (not `SET LOCAL`, which ends with the
    /// transaction). The name is lower-cased, the value unquoted.
    pub set_variable: Option<(String, String)>,
}

impl Shape {
    pub(crate) fn new(kind: StatementKind) -> Shape {
        Shape {
            kind,
            tables: Vec::new(),
            filters: Vec::new(),
            order_by: Vec::new(),
            group_by: Vec::new(),
            tenant: None,
            set_variable: None,
        }
    }
}

/// Table → columns of the application schema, to resolve an unqualified
/// column when a statement has several tables in scope.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: HashMap<TableName, Vec<String>>,
    /// Table name → every schema-qualified variant, for unqualified lookups.
    by_name: HashMap<String, Vec<TableName>>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Register (or replace) a table's columns, named as Postgres stores them.
    pub fn add_table(&mut self, table: TableName, columns: Vec<String>) {
        let variants = self.by_name.entry(table.name.clone()).or_default();
        if !variants.contains(&table) {
            variants.push(table.clone());
        }
        self.tables.insert(table, columns);
    }

    /// The table's columns: an exact match first; for an unqualified name,
    /// else the tables of that name in any schema if they agree (a
    /// statement's `contacts` is the catalog's `public.contacts`).
    pub fn columns(&self, table: &TableName) -> Option<&[String]> {
        if let Some(columns) = self.tables.get(table) {
            return Some(columns);
        }
        if table.schema.is_some() {
            return None;
        }
        let (first, rest) = self.by_name.get(&table.name)?.split_first()?;
        let columns = &self.tables[first];
        rest.iter()
            .all(|t| self.tables[t] == *columns)
            .then_some(columns.as_slice())
    }

    /// `Some(true/false)` when the table is known, `None` when it is not.
    pub(crate) fn has_column(&self, table: &TableName, column: &str) -> Option<bool> {
        self.columns(table)
            .map(|columns| columns.iter().any(|c| c == column))
    }
}
