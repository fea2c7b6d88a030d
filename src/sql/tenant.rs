//! The tenant of a statement and the value of a `SET`.
//!
//! The tenant is the first `<tenant_column> = constant|$n` (either side,
//! casts allowed) among the top-level AND conditions (WHERE and inner-join
//! ON) of the statement's outer query block; failing that, of the first
//! nested block (CTE, subquery) that has one; for `INSERT .. VALUES`, the
//! tenant column's value in the first row. A constant is reported by its
//! index in [`super::Normalized::literals`], found by its byte offset.

use sqlparser::ast::{BinaryOperator, ContextModifier, Expr, ObjectName, Set, Value, Values};
use sqlparser::tokenizer::Location;

use super::analyze::Analyzer;
use super::expr::{self, column_ref, strip_nested};
use super::normalize::{normalize, Normalized};
use super::scope::fold;
use super::shape::{Shape, TenantValue};

/// A tenant value before constants are mapped to literal indexes.
#[derive(Debug, Clone, Copy)]
pub(super) enum RawTenant {
    Constant(Location),
    Param(u16),
}

impl Analyzer<'_> {
    pub(super) fn find_tenant(&mut self, conds: &[&Expr]) {
        if self.tenant_outer.is_some() || (self.depth > 0 && self.tenant_inner.is_some()) {
            return;
        }
        let found = conds
            .iter()
            .flat_map(|c| expr::flatten(c, BinaryOperator::And))
            .find_map(|c| match c {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => self
                    .tenant_equality(left, right)
                    .or_else(|| self.tenant_equality(right, left)),
                _ => None,
            });
        self.found_tenant(found);
    }

    pub(super) fn tenant_from_values(&mut self, columns: &[String], values: &Values) {
        let found = columns
            .iter()
            .position(|c| c == self.tenant_column)
            .and_then(|i| values.rows.first()?.content.get(i))
            .and_then(tenant_value);
        self.found_tenant(found);
    }

    fn found_tenant(&mut self, found: Option<RawTenant>) {
        if found.is_none() {
            return;
        }
        if self.depth == 0 {
            self.tenant_outer = self.tenant_outer.or(found);
        } else {
            self.tenant_inner = self.tenant_inner.or(found);
        }
    }

    fn tenant_equality(&self, column: &Expr, value: &Expr) -> Option<RawTenant> {
        let name = column_ref(column)?.last()?;
        if fold(name) != self.tenant_column {
            return None;
        }
        tenant_value(value)
    }

    /// The finished shape; `literals` is the statement text's normalization,
    /// computed once per query string when first needed.
    pub(super) fn finish(self, sql: &str, literals: &mut Option<Normalized>) -> Shape {
        let mut shape = self.shape;
        shape.tenant = match self.tenant_outer.or(self.tenant_inner) {
            Some(RawTenant::Param(n)) => Some(TenantValue::Param(n)),
            Some(RawTenant::Constant(location)) => {
                let offset = byte_offset(sql, location);
                let literals = &literals
                    .get_or_insert_with(|| normalize(sql.as_bytes()))
                    .literals;
                offset
                    .and_then(|o| literals.binary_search_by_key(&o, |span| span.start).ok())
                    .map(TenantValue::Literal)
            }
            None => None,
        };
        shape
    }
}

fn tenant_value(e: &Expr) -> Option<RawTenant> {
    match strip_nested(e) {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok().map(RawTenant::Param),
            Value::Number(..)
            | Value::SingleQuotedString(_)
            | Value::EscapedStringLiteral(_)
            | Value::DollarQuotedString(_)
            | Value::NationalStringLiteral(_) => Some(RawTenant::Constant(v.span.start)),
            _ => None,
        },
        Expr::Cast { expr, .. } => tenant_value(expr),
        Expr::TypedString(t) => Some(RawTenant::Constant(t.value.span.start)),
        _ => None,
    }
}

/// sqlparser locations are 1-based lines and 1-based columns in characters.
fn byte_offset(sql: &str, location: Location) -> Option<usize> {
    let line = usize::try_from(location.line).ok()?.checked_sub(1)?;
    let column = usize::try_from(location.column).ok()?.checked_sub(1)?;
    let mut start = 0;
    for _ in 0..line {
        start += sql[start..].find('\n')? + 1;
    }
    sql[start..]
        .char_indices()
        .nth(column)
        .map(|(i, _)| start + i)
}

/// `SET [SESSION] name = value`, `SET TIME ZONE`, `SET ROLE`; `None` for
/// `SET LOCAL` (it ends with the transaction) and other forms.
pub(super) fn set_variable(set: &Set) -> Option<(String, String)> {
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } if !matches!(scope, Some(ContextModifier::Local)) => {
            let value = values.iter().map(set_value).collect::<Vec<_>>().join(", ");
            Some((object_name(variable), value))
        }
        Set::SetTimeZone {
            local: false,
            value,
        } => Some(("timezone".to_string(), set_value(value))),
        Set::SetRole {
            context_modifier,
            role_name,
        } if !matches!(context_modifier, Some(ContextModifier::Local)) => {
            let role = role_name.as_ref().map_or_else(|| "none".to_string(), fold);
            Some(("role".to_string(), role))
        }
        _ => None,
    }
}

fn object_name(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(fold)
        .collect();
    parts.join(".")
}

fn set_value(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.clone(),
            Value::Boolean(b) => b.to_string(),
            value => value
                .clone()
                .into_string()
                .unwrap_or_else(|| value.to_string()),
        },
        Expr::Identifier(ident) => fold(ident),
        other => other.to_string(),
    }
}
