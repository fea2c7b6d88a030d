//! The slow path: parse with sqlparser (PostgreSQL dialect) and walk each
//! statement into its [`Shape`]. Callers cache the result per fingerprint.
//!
//! This file owns the statement and relation walk (FROM, joins, CTEs,
//! subqueries, DML targets); `predicate.rs` classifies the conditions and
//! `tenant.rs` finds the tenant and `SET` values.

use std::rc::Rc;

use sqlparser::ast::{
    CopySource, Delete, Expr, FromTable, Insert, JoinConstraint, JoinOperator, ObjectType, OrderBy,
    Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, Update, UpdateTableFromKind,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::expr::{self, column_ref};
use super::predicate::Use;
use super::scope::{fold, table_name, Derived, Relation, Resolved, Scopes, Source};
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

    fn note_table(&mut self, table: &TableName) {
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

    /// A data-modifying statement inside a CTE: counts, but keeps the kind.
    fn statement_inside(&mut self, statement: &Statement) {
        let kind = self.shape.kind;
        self.depth += 1;
        self.statement(statement);
        self.depth -= 1;
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

    fn table_with_joins<'s>(
        &mut self,
        twj: &'s TableWithJoins,
        conds: &mut Vec<&'s Expr>,
        tenant_conds: &mut Vec<&'s Expr>,
        extra: &mut Vec<Use>,
    ) {
        self.table_factor(&twj.relation, conds, tenant_conds, extra);
        for join in &twj.joins {
            self.table_factor(&join.relation, conds, tenant_conds, extra);
            let (constraint, inner) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::StraightJoin(c) => {
                    (c, true)
                }
                JoinOperator::CrossJoin(c) => (c, true),
                JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c) => (c, false),
                JoinOperator::AsOf { constraint, .. } => (constraint, false),
                _ => continue,
            };
            match constraint {
                JoinConstraint::On(e) => {
                    conds.push(e);
                    if inner {
                        tenant_conds.push(e);
                    }
                }
                JoinConstraint::Using(names) | JoinConstraint::UsingAlias(names, _) => {
                    for name in names {
                        if let Some(column) = name.0.last().and_then(|p| p.as_ident()) {
                            self.using_join(&fold(column), extra);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// `JOIN right USING (col)`: the column of `right` and of the relation
    /// to its left that has it.
    fn using_join(&mut self, column: &str, extra: &mut Vec<Use>) {
        let Some((right, left)) = self.scopes.frame().split_last() else {
            return;
        };
        let resolve = |s: &Source| match &s.relation {
            Relation::Base(t) => Some(t.clone()),
            _ => None,
        };
        let right_table = resolve(right);
        let left_table = match left {
            [only] => resolve(only),
            _ => left
                .iter()
                .rev()
                .filter_map(resolve)
                .find(|t| self.catalog.has_column(t, column) == Some(true)),
        };
        for table in [left_table, right_table] {
            extra.push(Use::new(
                Resolved {
                    table,
                    column: column.to_string(),
                },
                PredicateClass::Join,
                None,
            ));
        }
    }

    fn table_factor<'s>(
        &mut self,
        factor: &'s TableFactor,
        conds: &mut Vec<&'s Expr>,
        tenant_conds: &mut Vec<&'s Expr>,
        extra: &mut Vec<Use>,
    ) {
        let alias_of =
            |alias: &Option<sqlparser::ast::TableAlias>| alias.as_ref().map(|a| fold(&a.name));
        let alias_columns = |alias: &Option<sqlparser::ast::TableAlias>| -> Vec<String> {
            alias
                .iter()
                .flat_map(|a| a.columns.iter().map(|c| fold(&c.name)))
                .collect()
        };
        let source = match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => match (self.scopes.cte(name), table_name(name)) {
                (Some(derived), _) => Source {
                    alias: alias_of(alias).unwrap_or_else(|| fold_last(name)),
                    relation: Relation::Derived(derived),
                },
                (None, Some(table)) => {
                    self.note_table(&table);
                    Source {
                        alias: alias_of(alias).unwrap_or_else(|| table.name.clone()),
                        relation: Relation::Base(table),
                    }
                }
                (None, None) => return,
            },
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let derived = self.subquery(subquery);
                let names = alias_columns(alias);
                Source {
                    alias: alias_of(alias).unwrap_or_default(),
                    relation: Relation::Derived(Rc::new(derived.renamed(names.into_iter()))),
                }
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                return self.table_with_joins(table_with_joins, conds, tenant_conds, extra);
            }
            TableFactor::Function { args, alias, .. } => {
                args.iter()
                    .filter_map(expr::arg_expr)
                    .for_each(|e| self.visit_subqueries(e));
                opaque(alias_of(alias), alias_columns(alias))
            }
            TableFactor::Table {
                args: Some(_),
                alias,
                ..
            } => opaque(alias_of(alias), alias_columns(alias)),
            TableFactor::TableFunction { expr, alias } => {
                self.visit_subqueries(expr);
                opaque(alias_of(alias), alias_columns(alias))
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                array_exprs.iter().for_each(|e| self.visit_subqueries(e));
                opaque(alias_of(alias), alias_columns(alias))
            }
            _ => opaque(None, Vec::new()),
        };
        self.scopes.add(source);
    }

    /// The output columns of a select list, traced to base columns.
    fn derived_of(&self, projection: &[SelectItem]) -> Derived {
        let mut derived = Derived::default();
        for item in projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let name = match expr::strip_nested(e) {
                        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(fold),
                        e => column_ref(e).and_then(|parts| parts.last()).map(fold),
                    };
                    let origin = column_ref(e).map(|parts| self.resolve(parts));
                    derived.columns.push((name.unwrap_or_default(), origin));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let origin = column_ref(expr).map(|parts| self.resolve(parts));
                    derived.columns.push((fold(alias), origin));
                }
                SelectItem::Wildcard(_) => self.star(&mut derived, self.scopes.frame()),
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => {
                    let alias = fold_last(name);
                    let sources: Vec<Source> = self
                        .scopes
                        .frame()
                        .iter()
                        .filter(|s| s.alias == alias)
                        .cloned()
                        .collect();
                    self.star(&mut derived, &sources);
                }
                _ => derived.open = true,
            }
        }
        derived
    }

    /// `*` over `sources`: one base table becomes the star, a derived
    /// table's columns are copied, anything else leaves the names unknown.
    fn star(&self, derived: &mut Derived, sources: &[Source]) {
        match sources {
            [Source {
                relation: Relation::Base(t),
                ..
            }] if derived.star.is_none() => derived.star = Some(t.clone()),
            [Source {
                relation: Relation::Derived(d),
                ..
            }] => {
                derived.columns.extend(d.columns.iter().cloned());
                derived.open |= d.open;
                if derived.star.is_none() {
                    derived.star = d.star.clone();
                }
            }
            _ => derived.open = true,
        }
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

fn fold_last(name: &sqlparser::ast::ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(fold)
        .unwrap_or_default()
}

fn opaque(alias: Option<String>, columns: Vec<String>) -> Source {
    Source {
        alias: alias.unwrap_or_default(),
        relation: Relation::Opaque(columns),
    }
}

fn kind(statement: &Statement) -> StatementKind {
    use Statement as S;
    match statement {
        S::Query(_) => StatementKind::Select,
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
