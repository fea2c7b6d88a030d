//! Predicate classification: a query block's conditions (WHERE and join ON)
//! in disjunctive normal form, each comparison turned into column uses with
//! a [`PredicateClass`]; plus ORDER BY and GROUP BY columns.
//!
//! `<>`, `NOT IN`, `NOT LIKE`, a leading-wildcard `LIKE`, regex and other
//! non-b-tree operators on a bare column give class `Expression` with no
//! expression text: the column is filtered, but no plain index serves it.

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, OrderBy, OrderByKind, Query, SelectItem, UnaryOperator,
    Value,
};

use super::analyze::Analyzer;
use super::expr::{self, column_ref, strip_nested, MAX_DEPTH};
use super::scope::Resolved;
use super::shape::{ColumnUse, PredicateClass};

/// Past this many AND-groups per query block, an OR is kept as one group
/// (over-approximating what is filtered together) instead of multiplied out.
const MAX_GROUPS: usize = 16;

/// A column use whose AND-group is not yet known.
#[derive(Debug, Clone)]
pub(super) struct Use {
    resolved: Resolved,
    class: PredicateClass,
    expression: Option<String>,
}

impl Use {
    pub(super) fn new(
        resolved: Resolved,
        class: PredicateClass,
        expression: Option<String>,
    ) -> Use {
        Use {
            resolved,
            class,
            expression,
        }
    }

    fn grouped(self, group: u16) -> ColumnUse {
        ColumnUse {
            table: self.resolved.table,
            column: self.resolved.column,
            class: self.class,
            expression: self.expression,
            group,
        }
    }
}

/// Conjunctions of column uses.
type Dnf = Vec<Vec<Use>>;

fn and(left: Dnf, right: Dnf) -> Dnf {
    let right = if left.len() * right.len() > MAX_GROUPS {
        vec![right.into_iter().flatten().collect()]
    } else {
        right
    };
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in &left {
        for r in &right {
            out.push(l.iter().chain(r).cloned().collect());
        }
    }
    out
}

/// One side of a comparison.
enum Side {
    Column(Resolved),
    /// A column inside a function or operator: its columns and its text.
    Wrapped(Vec<Resolved>, String),
    /// No column of any visible relation: a constant, parameter, subquery.
    Value,
}

impl Analyzer<'_> {
    /// Record the filters of one query block; returns its first AND-group.
    pub(super) fn predicate(&mut self, conds: &[&Expr], extra: Vec<Use>) -> u16 {
        let mut dnf: Dnf = vec![extra];
        for cond in conds {
            let next = self.dnf(cond, 0);
            dnf = and(dnf, next);
        }
        dnf.retain(|conjunction| !conjunction.is_empty());
        let first = self.next_group;
        self.next_group = self.next_group.saturating_add(1);
        for (i, conjunction) in dnf.into_iter().enumerate() {
            let group = if i == 0 { first } else { self.take_group() };
            self.shape
                .filters
                .extend(conjunction.into_iter().map(|u| u.grouped(group)));
        }
        first
    }

    fn take_group(&mut self) -> u16 {
        let group = self.next_group;
        self.next_group = self.next_group.saturating_add(1);
        group
    }

    fn dnf(&mut self, e: &Expr, depth: usize) -> Dnf {
        let e = strip_nested(e);
        match e {
            _ if depth > MAX_DEPTH => vec![self.opaque(e)],
            Expr::BinaryOp {
                op: BinaryOperator::And,
                ..
            } => expr::flatten(e, BinaryOperator::And).into_iter().fold(
                vec![Vec::new()],
                |acc, c| {
                    let next = self.dnf(c, depth + 1);
                    and(acc, next)
                },
            ),
            Expr::BinaryOp {
                op: BinaryOperator::Or,
                ..
            } => {
                let mut out: Dnf = Vec::new();
                for branch in expr::flatten(e, BinaryOperator::Or) {
                    out.extend(self.dnf(branch, depth + 1));
                }
                if out.len() > MAX_GROUPS {
                    out = vec![out.into_iter().flatten().collect()];
                }
                out
            }
            _ => vec![self.atom(e)],
        }
    }

    /// The column uses of one condition that is not an AND/OR.
    fn atom(&mut self, e: &Expr) -> Vec<Use> {
        use PredicateClass as C;
        let mut uses = Vec::new();
        match e {
            Expr::BinaryOp { left, op, right } => self.compare(left, op, right, &mut uses),
            Expr::IsNull(x) => self.unary(x, C::IsNull, &mut uses),
            Expr::IsNotNull(x) => self.unary(x, C::IsNotNull, &mut uses),
            Expr::IsTrue(x) | Expr::IsFalse(x) => self.unary(x, C::Equality, &mut uses),
            Expr::IsNotTrue(x)
            | Expr::IsNotFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x) => self.unary(x, C::Expression, &mut uses),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.compare(a, &BinaryOperator::NotEq, b, &mut uses)
            }
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::List(items),
                negated,
                ..
            } => {
                items.iter().for_each(|i| self.visit_subqueries(i));
                let class = if *negated { C::Expression } else { C::InList };
                self.unary(expr, class, &mut uses);
            }
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::Subquery(q),
                negated,
                ..
            } => {
                self.subquery(q);
                let class = if *negated { C::Expression } else { C::Join };
                self.unary(expr, class, &mut uses);
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            } => {
                let class = match (compare_op, strip_nested(right)) {
                    (BinaryOperator::Eq, Expr::Subquery(_)) => C::Join,
                    (BinaryOperator::Eq, _) => C::InList,
                    (op, _) => comparison_class(op),
                };
                self.visit_subqueries(right);
                self.unary(left, class, &mut uses);
            }
            Expr::AllOp {
                left,
                compare_op,
                right,
            } => {
                let class = match compare_op {
                    BinaryOperator::Eq => C::Expression,
                    op => comparison_class(op),
                };
                self.visit_subqueries(right);
                self.unary(left, class, &mut uses);
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                self.visit_subqueries(low);
                self.visit_subqueries(high);
                let class = if *negated { C::Expression } else { C::Between };
                self.unary(expr, class, &mut uses);
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                ..
            }
            | Expr::ILike {
                negated,
                expr,
                pattern,
                ..
            } => {
                self.visit_subqueries(pattern);
                let class = if *negated {
                    C::Expression
                } else {
                    like_class(pattern)
                };
                self.unary(expr, class, &mut uses);
            }
            Expr::SimilarTo { expr, pattern, .. } | Expr::RLike { expr, pattern, .. } => {
                self.visit_subqueries(pattern);
                self.unary(expr, C::Expression, &mut uses);
            }
            Expr::Exists { subquery, .. } => {
                self.subquery(subquery);
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => return self.not(expr),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.unary(e, C::Equality, &mut uses)
            }
            Expr::Value(_) => {}
            _ => match self.side(e) {
                Side::Column(_) | Side::Value => {}
                Side::Wrapped(columns, text) => uses.extend(
                    columns
                        .into_iter()
                        .map(|c| Use::new(c, C::Expression, Some(text.clone()))),
                ),
            },
        }
        uses
    }

    /// `NOT x`: a boolean column is `= false`, IS [NOT] NULL flips, anything
    /// else filters its columns in a way no plain index serves.
    fn not(&mut self, e: &Expr) -> Vec<Use> {
        let mut uses = Vec::new();
        match strip_nested(e) {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.unary(e, PredicateClass::Equality, &mut uses)
            }
            Expr::IsNull(x) => self.unary(x, PredicateClass::IsNotNull, &mut uses),
            Expr::IsNotNull(x) => self.unary(x, PredicateClass::IsNull, &mut uses),
            Expr::Exists { subquery, .. } => {
                self.subquery(subquery);
            }
            other => return self.opaque(other),
        }
        uses
    }

    /// Every column of `e` as `Expression` without text; subqueries walked.
    fn opaque(&mut self, e: &Expr) -> Vec<Use> {
        let (columns, queries) = expr::references(e);
        let uses = columns
            .into_iter()
            .map(|parts| Use::new(self.resolve(parts), PredicateClass::Expression, None))
            .collect();
        for q in queries {
            self.subquery(q);
        }
        uses
    }

    /// `x <class>`: a bare column gets the class, a wrapped one `Expression`
    /// with its text; a row `(a, b)` does so per item.
    fn unary(&mut self, x: &Expr, class: PredicateClass, uses: &mut Vec<Use>) {
        if let Expr::Tuple(items) = strip_nested(x) {
            return items.iter().for_each(|item| self.unary(item, class, uses));
        }
        match self.side(x) {
            Side::Column(c) => uses.push(Use::new(c, class, None)),
            Side::Wrapped(columns, text) => uses.extend(
                columns
                    .into_iter()
                    .map(|c| Use::new(c, PredicateClass::Expression, Some(text.clone()))),
            ),
            Side::Value => {}
        }
    }

    fn compare(&mut self, left: &Expr, op: &BinaryOperator, right: &Expr, uses: &mut Vec<Use>) {
        if let (Expr::Tuple(l), Expr::Tuple(r)) = (strip_nested(left), strip_nested(right)) {
            if l.len() == r.len() {
                return l
                    .iter()
                    .zip(r)
                    .for_each(|(l, r)| self.compare(l, op, r, uses));
            }
        }
        let class = comparison_class(op);
        let (left, right) = (self.side(left), self.side(right));
        match (left, right) {
            (Side::Column(c), Side::Value) | (Side::Value, Side::Column(c)) => {
                uses.push(Use::new(c, class, None))
            }
            (Side::Column(a), Side::Column(b)) => {
                let class = if a.table.is_some() && a.table == b.table {
                    PredicateClass::Expression
                } else {
                    PredicateClass::Join
                };
                uses.extend([Use::new(a, class, None), Use::new(b, class, None)]);
            }
            (Side::Column(c), Side::Wrapped(columns, text))
            | (Side::Wrapped(columns, text), Side::Column(c)) => {
                let joined = columns
                    .iter()
                    .any(|w| w.table.is_none() || w.table != c.table);
                let class = if joined {
                    PredicateClass::Join
                } else {
                    PredicateClass::Expression
                };
                uses.push(Use::new(c, class, None));
                uses.extend(wrapped(columns, text));
            }
            (Side::Wrapped(columns, text), Side::Value)
            | (Side::Value, Side::Wrapped(columns, text)) => uses.extend(wrapped(columns, text)),
            (Side::Wrapped(a, a_text), Side::Wrapped(b, b_text)) => {
                uses.extend(wrapped(a, a_text));
                uses.extend(wrapped(b, b_text));
            }
            (Side::Value, Side::Value) => {}
        }
    }

    fn side(&mut self, e: &Expr) -> Side {
        if let Some(parts) = column_ref(e) {
            return Side::Column(self.resolve(parts));
        }
        let (columns, queries) = expr::references(e);
        for q in queries {
            self.subquery(q);
        }
        if columns.is_empty() {
            return Side::Value;
        }
        let columns = columns
            .into_iter()
            .map(|parts| self.resolve(parts))
            .collect();
        Side::Wrapped(columns, expr::expression_text(strip_nested(e)))
    }

    /// Analyze the subqueries anywhere in `e` (scalar, EXISTS, IN, ARRAY(..)).
    pub(super) fn visit_subqueries(&mut self, e: &Expr) {
        let mut queries: Vec<&Query> = Vec::new();
        let mut kids = Vec::new();
        let mut stack = vec![(e, 0usize)];
        while let Some((e, depth)) = stack.pop() {
            if depth < MAX_DEPTH {
                expr::children(e, &mut kids, &mut queries);
                stack.extend(kids.drain(..).map(|k| (k, depth + 1)));
            }
        }
        for q in queries {
            self.subquery(q);
        }
    }

    pub(super) fn order_by(&mut self, order_by: &OrderBy, projection: &[SelectItem], group: u16) {
        if let OrderByKind::Expressions(items) = &order_by.kind {
            for item in items {
                let e = output_expr(&item.expr, projection);
                let uses = self.sort_key(e, PredicateClass::Range);
                self.shape
                    .order_by
                    .extend(uses.into_iter().map(|u| u.grouped(group)));
            }
        }
    }

    pub(super) fn group_by(
        &mut self,
        group_by: &GroupByExpr,
        projection: &[SelectItem],
        group: u16,
    ) {
        if let GroupByExpr::Expressions(exprs, _) = group_by {
            for e in exprs {
                let items: Vec<&Expr> = match e {
                    Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                        sets.iter().flatten().collect()
                    }
                    e => vec![e],
                };
                for e in items {
                    let uses = self.sort_key(output_expr(e, projection), PredicateClass::Equality);
                    self.shape
                        .group_by
                        .extend(uses.into_iter().map(|u| u.grouped(group)));
                }
            }
        }
    }

    /// An ORDER BY / GROUP BY key: a column with `class`, or wrapped.
    fn sort_key(&mut self, e: &Expr, class: PredicateClass) -> Vec<Use> {
        let mut uses = Vec::new();
        self.unary(e, class, &mut uses);
        uses
    }
}

fn wrapped(columns: Vec<Resolved>, text: String) -> impl Iterator<Item = Use> {
    columns
        .into_iter()
        .map(move |c| Use::new(c, PredicateClass::Expression, Some(text.clone())))
}

fn comparison_class(op: &BinaryOperator) -> PredicateClass {
    match op {
        BinaryOperator::Eq => PredicateClass::Equality,
        BinaryOperator::Lt | BinaryOperator::LtEq | BinaryOperator::Gt | BinaryOperator::GtEq => {
            PredicateClass::Range
        }
        _ => PredicateClass::Expression,
    }
}

/// A constant pattern with a non-wildcard first character is a prefix
/// search; so is a parameter or `$1 || '%'` (the usual way to bind one).
fn like_class(pattern: &Expr) -> PredicateClass {
    match strip_nested(pattern) {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(_) => PredicateClass::LikePrefix,
            value => match value.clone().into_string() {
                Some(s) if !s.is_empty() && !s.starts_with(['%', '_']) => {
                    PredicateClass::LikePrefix
                }
                _ => PredicateClass::Expression,
            },
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::StringConcat,
            ..
        } => like_class(left),
        Expr::Cast { expr, .. } => like_class(expr),
        _ => PredicateClass::Expression,
    }
}

/// ORDER BY / GROUP BY may name an output column or its position.
fn output_expr<'e>(e: &'e Expr, projection: &'e [SelectItem]) -> &'e Expr {
    let item_expr = |item: &'e SelectItem| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    };
    match strip_nested(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<usize>()
                .ok()
                .and_then(|i| projection.get(i.checked_sub(1)?))
                .and_then(item_expr)
                .unwrap_or(e),
            _ => e,
        },
        Expr::Identifier(name) => projection
            .iter()
            .find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias }
                    if super::scope::fold(alias) == super::scope::fold(name) =>
                {
                    Some(expr)
                }
                _ => None,
            })
            .unwrap_or(e),
        _ => e,
    }
}
