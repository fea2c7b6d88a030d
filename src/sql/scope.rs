//! Name resolution for the analyzer: the relations visible in each query
//! block (base tables, subqueries and CTEs with their output columns traced
//! to base columns) and the lookup of a column reference to its base table.

use std::rc::Rc;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::shape::{Catalog, TableName};

/// An identifier as Postgres stores it: case-folded unless quoted.
pub(super) fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// `db.schema.table`, `schema.table` or `table` (a database part is ignored).
pub(super) fn table_name(name: &ObjectName) -> Option<TableName> {
    let mut parts = name.0.iter().rev().map(ObjectNamePart::as_ident);
    let table = fold(parts.next()??);
    let schema = match parts.next() {
        Some(part) => Some(fold(part?)),
        None => None,
    };
    Some(TableName {
        schema,
        name: table,
    })
}

/// A column traced to a base table (`None` when unresolvable).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resolved {
    pub table: Option<TableName>,
    pub column: String,
}

/// The output columns of a subquery or CTE.
#[derive(Debug, Clone, Default)]
pub(super) struct Derived {
    /// Output name → the base column it is, when it is a plain column.
    pub columns: Vec<(String, Option<Resolved>)>,
    /// `SELECT *` over exactly one base table: other names come from it.
    pub star: Option<TableName>,
    /// Has outputs whose names are unknown (`*` over several relations).
    pub open: bool,
}

impl Derived {
    pub(super) fn open() -> Derived {
        Derived {
            open: true,
            ..Derived::default()
        }
    }

    /// `AS alias(a, b, ..)` renames the outputs by position.
    pub(super) fn renamed(mut self, names: impl ExactSizeIterator<Item = String>) -> Derived {
        if names.len() == 0 {
            return self;
        }
        if self.star.is_some() || self.open {
            return Derived {
                columns: names.map(|n| (n, None)).collect(),
                ..Derived::default()
            };
        }
        for (slot, name) in self.columns.iter_mut().zip(names) {
            slot.0 = name;
        }
        self
    }

    fn lookup(&self, column: &str, catalog: &Catalog) -> Lookup {
        if let Some((_, origin)) = self.columns.iter().find(|(name, _)| name == column) {
            return Lookup::Yes(
                origin.as_ref().and_then(|r| r.table.clone()),
                origin_column(origin, column),
            );
        }
        match &self.star {
            Some(t) => match catalog.has_column(t, column) {
                Some(true) => Lookup::Yes(Some(t.clone()), column.to_string()),
                Some(false) => Lookup::No,
                None => Lookup::Maybe(Some(t.clone())),
            },
            None if self.open => Lookup::Maybe(None),
            None => Lookup::No,
        }
    }
}

fn origin_column(origin: &Option<Resolved>, column: &str) -> String {
    origin
        .as_ref()
        .map_or_else(|| column.to_string(), |r| r.column.clone())
}

#[derive(Debug, Clone)]
pub(super) enum Relation {
    Base(TableName),
    Derived(Rc<Derived>),
    /// A function or other relation whose columns are only its alias list.
    Opaque(Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) struct Source {
    /// The name it is referenced by: its alias, else the table's own name.
    pub alias: String,
    pub relation: Relation,
}

enum Lookup {
    Yes(Option<TableName>, String),
    Maybe(Option<TableName>),
    No,
}

impl Source {
    fn lookup(&self, column: &str, catalog: &Catalog) -> Lookup {
        match &self.relation {
            Relation::Base(t) => match catalog.has_column(t, column) {
                Some(true) => Lookup::Yes(Some(t.clone()), column.to_string()),
                Some(false) => Lookup::No,
                None => Lookup::Maybe(Some(t.clone())),
            },
            Relation::Derived(d) => d.lookup(column, catalog),
            Relation::Opaque(columns) if columns.is_empty() => Lookup::Maybe(None),
            Relation::Opaque(columns) if columns.iter().any(|c| c == column) => {
                Lookup::Yes(None, column.to_string())
            }
            Relation::Opaque(_) => Lookup::No,
        }
    }

    /// `alias.column`.
    fn qualified(&self, column: &str, catalog: &Catalog) -> Resolved {
        let (table, column) = match self.lookup(column, catalog) {
            Lookup::Yes(table, column) => (table, column),
            Lookup::Maybe(table) => (table, column.to_string()),
            Lookup::No => match &self.relation {
                // The catalog may be stale; the query says it is this table's.
                Relation::Base(t) => (Some(t.clone()), column.to_string()),
                _ => (None, column.to_string()),
            },
        };
        Resolved { table, column }
    }
}

/// The relations of the enclosing query blocks, innermost last, and the
/// CTEs in scope.
#[derive(Debug, Default)]
pub(super) struct Scopes {
    frames: Vec<Vec<Source>>,
    ctes: Vec<(String, Rc<Derived>)>,
}

impl Scopes {
    pub(super) fn push_frame(&mut self) {
        self.frames.push(Vec::new());
    }

    pub(super) fn pop_frame(&mut self) -> Vec<Source> {
        self.frames.pop().unwrap_or_default()
    }

    pub(super) fn add(&mut self, source: Source) {
        if let Some(frame) = self.frames.last_mut() {
            frame.push(source);
        }
    }

    /// The current block's relations.
    pub(super) fn frame(&self) -> &[Source] {
        self.frames.last().map_or(&[], Vec::as_slice)
    }

    pub(super) fn cte_mark(&self) -> usize {
        self.ctes.len()
    }

    pub(super) fn define_cte(&mut self, name: String, derived: Rc<Derived>) {
        match self.ctes.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = derived,
            None => self.ctes.push((name, derived)),
        }
    }

    pub(super) fn forget_ctes(&mut self, mark: usize) {
        self.ctes.truncate(mark);
    }

    pub(super) fn cte(&self, name: &ObjectName) -> Option<Rc<Derived>> {
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return None;
        };
        let name = fold(ident);
        self.ctes
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d.clone())
    }

    /// Resolve `col`, `rel.col` or `schema.rel.col`.
    pub(super) fn resolve(&self, parts: &[Ident], catalog: &Catalog) -> Resolved {
        let Some((column, qualifier)) = parts.split_last() else {
            return Resolved {
                table: None,
                column: String::new(),
            };
        };
        let column = fold(column);
        match qualifier {
            [] => self.unqualified(column, catalog),
            [.., schema, relation] => {
                self.qualified(Some(fold(schema)), fold(relation), column, catalog)
            }
            [relation] => self.qualified(None, fold(relation), column, catalog),
        }
    }

    fn qualified(
        &self,
        schema: Option<String>,
        relation: String,
        column: String,
        catalog: &Catalog,
    ) -> Resolved {
        let matches = |s: &&Source| {
            s.alias == relation
                && match (&schema, &s.relation) {
                    (None, _) => true,
                    (Some(schema), Relation::Base(t)) => {
                        t.schema.as_ref().is_none_or(|s| s == schema)
                    }
                    (Some(_), _) => false,
                }
        };
        for frame in self.frames.iter().rev() {
            if let Some(source) = frame.iter().find(matches) {
                return source.qualified(&column, catalog);
            }
        }
        Resolved {
            table: None,
            column,
        }
    }

    /// Innermost block first; within a block, the one relation that has the
    /// column (per the catalog), or the only relation that may have it.
    fn unqualified(&self, column: String, catalog: &Catalog) -> Resolved {
        for frame in self.frames.iter().rev() {
            if let Some(found) = frame_lookup(frame, &column, catalog) {
                return found;
            }
        }
        // No block claims it: with a single relation in the innermost block,
        // trust the query over a possibly stale catalog.
        match self.frame() {
            [only] => only.qualified(&column, catalog),
            _ => Resolved {
                table: None,
                column,
            },
        }
    }
}

fn frame_lookup(frame: &[Source], column: &str, catalog: &Catalog) -> Option<Resolved> {
    let mut yes = Vec::new();
    let mut maybe = Vec::new();
    for source in frame {
        match source.lookup(column, catalog) {
            Lookup::Yes(table, column) => yes.push(Resolved { table, column }),
            Lookup::Maybe(table) => maybe.push(table),
            Lookup::No => {}
        }
    }
    let ambiguous = Resolved {
        table: None,
        column: column.to_string(),
    };
    match (yes.len(), maybe.len()) {
        (1, _) => yes.pop(),
        (0, 0) => None,
        (0, 1) => Some(Resolved {
            table: maybe.pop().flatten(),
            column: column.to_string(),
        }),
        _ => Some(ambiguous),
    }
}
