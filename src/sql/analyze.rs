//! The slow path: parse with sqlparser (PostgreSQL dialect) and walk each
//! statement into its [`Shape`]. Callers cache the result per fingerprint.
//!
//! This file owns the statement walk (statement kinds, queries, CTEs, set
//! operations, DML targets); `relations.rs` handles FROM items and joins,
//! `predicate.rs` the conditions, `tenant.rs` the tenant and `SET` values.

use std::rc::Rc;

use sqlparser::ast::{
    CopySource, Delete, Expr, FromTable, Insert, ObjectType, OrderBy, Query, Select, SelectItem,
    SetExpr, Statement, TableObject, Update, UpdateTableFromKind,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::predicate::Use;
use super::scope::{fold, table_name, Derived, Resolved, Scopes};
use super::tenant::RawTenant;

pub use super::shape::{
    Catalog, ColumnUse, PredicateClass, Shape, StatementKind, TableName, TenantValue,
};

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("cannot parse statement: {0}")]
    Parse(String),
    #[error("no statement")]
    Empty,
}

/// Analyze one query string (may hold several statements: one Shape each).
/// `tenant_column` is named as Postgres stores it, e.g. `tenant_id`.
pub fn analyze(
    sql: &str,
    catalog: &Catalog,
    tenant_column: &str,
) -> Result<Vec<Shape>, AnalyzeError> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| AnalyzeError::Parse(e.to_string()))?;
    if statements.is_empty() {
        return Err(AnalyzeError::Empty);
    }
    let mut literals = None;
    Ok(statements
        .iter()
        .map(|statement| {
            let mut analyzer = Analyzer::new(catalog, tenant_column);
            analyzer.statement(statement);
            analyzer.finish(sql, &mut literals)
        })
        .collect())
}

/// The walk over one statement.
pub(super) struct Analyzer<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) tenant_column: &'a str,
    pub(super) scopes: Scopes,
    pub(super) shape: Shape,
    pub(super) next_group: u16,
    /// Query nesting: 0 is the statement's own (outer) query block.
    pub(super) depth: usize,
    /// Tenant equality of the outer block, else of the first inner block.
    pub(super) tenant_outer: Option<RawTenant>,
    pub(super) tenant_inner: Option<RawTenant>,
}

impl<'a> Analyzer<'a> {
    fn new(catalog: &'a Catalog, tenant_column: &'a str) -> Analyzer<'a> {
        Analyzer {
            catalog,
            tenant_column,
            scopes: Scopes::default(),
            shape: Shape::new(StatementKind::Other),
            next_group: 0,
            depth: 0,
            tenant_outer: None,
            tenant_inner: None,
        }
    }

    fn statement(&mut self, statement: &Statement) {
        self.shape.kind = kind(statement);
        match statement {
            Statement::Query(q) => {
                self.query(q);
            }
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Copy { source, .. } => match source {
                CopySource::Table {
                    table_name: name, ..
                } => self.base_table(name),
                CopySource::Query(q) => {
                    self.query(q);
                }
            },
            Statement::Set(set) => self.shape.set_variable = super::tenant::set_variable(set),
            Statement::CreateTable(t) => self.base_table(&t.name),
            Statement::CreateIndex(i) => self.base_table(&i.table_name),
            Statement::AlterTable(t) => self.base_table(&t.name),
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => names.iter().for_each(|n| self.base_table(n)),
            Statement::Truncate(t) => t.table_names.iter().for_each(|t| self.base_table(&t.name)),
            _ => {}
        }
    }

    pub(super) fn base_table(&mut self, name: &sqlparser::ast::ObjectName) {
        if let Some(table) = table_name(name) {
            self.note_table(&table);
        }
    }

    pub(super) fn note_table(&mut self, table: &TableName) {
        if !self.shape.tables.contains(table) {
            self.shape.tables.push(table.clone());
        }
    }

    /// A nested query: a subquery, a CTE body.
    pub(super) fn subquery(&mut self, q: &Query) -> Derived {
        self.depth += 1;
        let derived = self.query(q);
        self.depth -= 1;
        derived
    }

    pub(super) fn query(&mut self, q: &Query) -> Derived {
        let mark = self.scopes.cte_mark();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = fold(&cte.alias.name);
                if with.recursive {
                    // Its own references inside are to the CTE, not a table.
                    self.scopes
                        .define_cte(name.clone(), Rc::new(Derived::open()));
                }
                let derived = self.subquery(&cte.query);
                let derived = derived.renamed(cte.alias.columns.iter().map(|c| fold(&c.name)));
                self.scopes.define_cte(name, Rc::new(derived));
            }
        }
        let derived = self.set_expr(&q.body, q.order_by.as_ref());
        self.scopes.forget_ctes(mark);
        derived
    }

    fn set_expr(&mut self, body: &SetExpr, order_by: Option<&OrderBy>) -> Derived {
        match body {
            SetExpr::Select(select) => self.select(select, order_by),
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                let derived = self.set_expr(left, None);
                self.set_expr(right, None);
                derived
            }
            SetExpr::Values(values) => {
                values
                    .rows
                    .iter()
                    .flat_map(|row| &row.content)
                    .for_each(|e| self.visit_subqueries(e));
                Derived::open()
            }
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement) => {
                self.statement_inside(statement);
                Derived::open()
            }
            SetExpr::Table(table) => {
                if let Some(name) = &table.table_name {
                    let name = TableName {
                        schema: table.schema_name.as_ref().map(fold),
                        name: fold(name),
                    };
                    self.note_table(&name);
                    return Derived {
                        star: Some(name),
                        ..Derived::default()
                    };
                }
                Derived::open()
            }
            SetExpr::Merge(_) => Derived::open(),
        }
    }

    /// A data-modifying statement as a query body (`WITH .. UPDATE`, or a
    /// CTE's `DELETE .. RETURNING`): the shape keeps the outer kind.
    fn statement_inside(&mut self, statement: &Statement) {
        let kind = self.shape.kind;
        self.statement(statement);
        self.shape.kind = kind;
    }

    fn select(&mut self, s: &Select, order_by: Option<&OrderBy>) -> Derived {
        self.scopes.push_frame();
        let mut conds = Vec::new();
        let mut tenant_conds = Vec::new();
        let mut extra = Vec::new();
        for twj in &s.from {
            self.table_with_joins(twj, &mut conds, &mut tenant_conds, &mut extra);
        }
        if let Some(w) = &s.selection {
            conds.push(w);
            tenant_conds.push(w);
        }
        self.find_tenant(&tenant_conds);
        let group = self.predicate(&conds, extra);
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                self.visit_subqueries(e);
            }
        }
        if let Some(having) = &s.having {
            self.visit_subqueries(having);
        }
        self.group_by(&s.group_by, &s.projection, group);
        if let Some(order_by) = order_by {
            self.order_by(order_by, &s.projection, group);
        }
        let derived = self.derived_of(&s.projection);
        self.scopes.pop_frame();
        derived
    }

    pub(super) fn resolve(&self, parts: &[sqlparser::ast::Ident]) -> Resolved {
        self.scopes.resolve(parts, self.catalog)
    }

    fn insert(&mut self, insert: &Insert) {
        let TableObject::TableName(name) = &insert.table else {
            return;
        };
        self.base_table(name);
        let Some(source) = &insert.source else {
            return;
        };
        let columns: Vec<String> = insert
            .columns
            .iter()
            .filter_map(|c| c.0.last().and_then(|p| p.as_ident()).map(fold))
            .collect();
        if let SetExpr::Values(values) = &*source.body {
            self.tenant_from_values(&columns, values);
        }
        self.query(source);
    }

    fn update(&mut self, update: &Update) {
        self.scopes.push_frame();
        let mut conds = Vec::new();
        let mut tenant_conds = Vec::new();
        let mut extra = Vec::new();
        self.table_with_joins(&update.table, &mut conds, &mut tenant_conds, &mut extra);
        if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
            &update.from
        {
            for twj in from {
                self.table_with_joins(twj, &mut conds, &mut tenant_conds, &mut extra);
            }
        }
        for assignment in &update.assignments {
            self.visit_subqueries(&assignment.value);
        }
        self.where_clause(update.selection.as_ref(), conds, tenant_conds, extra);
        self.scopes.pop_frame();
    }

    fn delete(&mut self, delete: &Delete) {
        self.scopes.push_frame();
        let mut conds = Vec::new();
        let mut tenant_conds = Vec::new();
        let mut extra = Vec::new();
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
        for twj in from.iter().chain(delete.using.iter().flatten()) {
            self.table_with_joins(twj, &mut conds, &mut tenant_conds, &mut extra);
        }
        self.where_clause(delete.selection.as_ref(), conds, tenant_conds, extra);
        self.scopes.pop_frame();
    }

    /// The conditions of an UPDATE/DELETE: joins' and WHERE.
    fn where_clause<'s>(
        &mut self,
        selection: Option<&'s Expr>,
        mut conds: Vec<&'s Expr>,
        mut tenant_conds: Vec<&'s Expr>,
        extra: Vec<Use>,
    ) {
        if let Some(w) = selection {
            conds.push(w);
            tenant_conds.push(w);
        }
        self.find_tenant(&tenant_conds);
        self.predicate(&conds, extra);
    }
}

fn kind(statement: &Statement) -> StatementKind {
    use Statement as S;
    match statement {
        S::Query(q) => match &*q.body {
            SetExpr::Insert(_) => StatementKind::Insert,
            SetExpr::Update(_) => StatementKind::Update,
            SetExpr::Delete(_) => StatementKind::Delete,
            _ => StatementKind::Select,
        },
        S::Insert(_) => StatementKind::Insert,
        S::Update(_) => StatementKind::Update,
        S::Delete(_) => StatementKind::Delete,
        S::Copy { .. } => StatementKind::Copy,
        S::Set(sqlparser::ast::Set::SetTransaction { .. }) => StatementKind::Transaction,
        S::Set(_) | S::Reset(_) => StatementKind::Set,
        S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        | S::Savepoint { .. } => StatementKind::Transaction,
        S::ReleaseSavepoint { .. } => StatementKind::Transaction,
        S::CreateTable(_)
        | S::CreateIndex(_)
        | S::CreateView(_)
        | S::CreateSchema { .. }
        | S::CreateSequence { .. }
        | S::CreateType { .. }
        | S::CreateExtension(_)
        | S::CreateFunction(_)
        | S::CreateTrigger(_)
        | S::CreateDomain(_)
        | S::CreatePolicy(_)
        | S::AlterTable(_)
        | S::AlterIndex { .. }
        | S::AlterView(_)
        | S::AlterSchema(_)
        | S::AlterType(_)
        | S::AlterPolicy(_)
        | S::Drop { .. }
        | S::DropFunction(_)
        | S::DropTrigger(_)
        | S::DropExtension(_)
        | S::DropPolicy(_)
        | S::Truncate(_)
        | S::Comment { .. }
        | S::RenameTable(_)
        | S::RefreshMaterializedView(_) => StatementKind::Ddl,
        _ => StatementKind::Other,
    }
}
