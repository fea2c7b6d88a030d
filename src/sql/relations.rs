//! The relations of a query block: FROM items and joins (base tables,
//! subqueries, CTE references, functions) added to the current scope, join
//! conditions collected, and a select list's output columns traced back.

use std::rc::Rc;

use sqlparser::ast::{
    Expr, JoinConstraint, JoinOperator, ObjectName, SelectItem, SelectItemQualifiedWildcardKind,
    TableAlias, TableFactor, TableWithJoins,
};

use super::analyze::Analyzer;
use super::expr::{self, column_ref};
use super::predicate::Use;
use super::scope::{fold, table_name, Derived, Relation, Resolved, Source};
use super::shape::PredicateClass;

impl Analyzer<'_> {
    pub(super) fn table_with_joins<'s>(
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
        let alias_of = |alias: &Option<TableAlias>| alias.as_ref().map(|a| fold(&a.name));
        let alias_columns = |alias: &Option<TableAlias>| -> Vec<String> {
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
    pub(super) fn derived_of(&self, projection: &[SelectItem]) -> Derived {
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
}

fn fold_last(name: &ObjectName) -> String {
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
