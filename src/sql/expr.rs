//! Pure helpers over sqlparser expressions: their direct sub-expressions and
//! subqueries, the column references they hold, AND/OR flattening, and the
//! normalized text of an indexable expression.

use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, InTarget, Query, Subscript,
};

/// Deeper expressions than this are not looked into (the parser bounds
/// nesting, but not left-deep operator chains).
pub(super) const MAX_DEPTH: usize = 256;

pub(super) fn strip_nested(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// A plain column reference: `col`, `t.col`, `s.t.col`.
pub(super) fn column_ref(e: &Expr) -> Option<&[Ident]> {
    match strip_nested(e) {
        Expr::Identifier(ident) => Some(std::slice::from_ref(ident)),
        Expr::CompoundIdentifier(parts) => Some(parts),
        _ => None,
    }
}

/// The operands of a chain of `op` (AND or OR), left to right, through
/// parentheses. Iterative: chains can be long.
pub(super) fn flatten(e: &Expr, op: BinaryOperator) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match strip_nested(e) {
            Expr::BinaryOp { left, op: o, right } if *o == op => {
                stack.push(right);
                stack.push(left);
            }
            other => out.push(other),
        }
    }
    out
}

/// Direct sub-expressions and subqueries of `e`.
pub(super) fn children<'e>(e: &'e Expr, exprs: &mut Vec<&'e Expr>, queries: &mut Vec<&'e Query>) {
    match e {
        Expr::BinaryOp { left, right, .. }
        | Expr::AnyOp { left, right, .. }
        | Expr::AllOp { left, right, .. }
        | Expr::IsDistinctFrom(left, right)
        | Expr::IsNotDistinctFrom(left, right) => exprs.extend([&**left, &**right]),
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::Cast { expr, .. }
        | Expr::Collate { expr, .. }
        | Expr::Extract { expr, .. }
        | Expr::Ceil { expr, .. }
        | Expr::Floor { expr, .. }
        | Expr::Named { expr, .. }
        | Expr::IsFalse(expr)
        | Expr::IsNotFalse(expr)
        | Expr::IsTrue(expr)
        | Expr::IsNotTrue(expr)
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr)
        | Expr::IsUnknown(expr)
        | Expr::IsNotUnknown(expr)
        | Expr::JsonAccess { value: expr, .. } => exprs.push(expr),
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => exprs.extend([&**timestamp, &**time_zone]),
        Expr::Position { expr, r#in } => exprs.extend([&**expr, &**r#in]),
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            exprs.push(expr);
            exprs.extend(substring_from.iter().chain(substring_for).map(|b| &**b));
        }
        Expr::Trim {
            expr,
            trim_what,
            trim_characters,
            ..
        } => {
            exprs.push(expr);
            exprs.extend(trim_what.as_deref());
            exprs.extend(trim_characters.iter().flatten());
        }
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            exprs.extend([&**expr, &**overlay_what, &**overlay_from]);
            exprs.extend(overlay_for.as_deref());
        }
        Expr::In { expr, target, .. } => {
            exprs.push(expr);
            match target {
                InTarget::List(items) => exprs.extend(items),
                InTarget::Subquery(q) => queries.push(q),
                InTarget::Unnest(array) => exprs.push(array),
                InTarget::Table { .. } => {}
            }
        }
        Expr::Between {
            expr, low, high, ..
        } => exprs.extend([&**expr, &**low, &**high]),
        Expr::Like { expr, pattern, .. }
        | Expr::ILike { expr, pattern, .. }
        | Expr::SimilarTo { expr, pattern, .. }
        | Expr::RLike { expr, pattern, .. } => exprs.extend([&**expr, &**pattern]),
        Expr::Function(f) => function_children(f, exprs, queries),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            exprs.extend(operand.as_deref());
            for when in conditions {
                exprs.extend([&when.condition, &when.result]);
            }
            exprs.extend(else_result.as_deref());
        }
        Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => queries.push(subquery),
        Expr::Tuple(items) => exprs.extend(items),
        Expr::Array(array) => exprs.extend(&array.elem),
        Expr::Interval(interval) => exprs.push(&interval.value),
        Expr::CompoundFieldAccess { root, access_chain } => {
            exprs.push(root);
            for access in access_chain {
                match access {
                    AccessExpr::Dot(e) | AccessExpr::Subscript(Subscript::Index { index: e }) => {
                        exprs.push(e)
                    }
                    AccessExpr::Subscript(Subscript::Slice {
                        lower_bound,
                        upper_bound,
                        stride,
                    }) => exprs.extend(lower_bound.iter().chain(upper_bound).chain(stride)),
                }
            }
        }
        Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
            exprs.extend(sets.iter().flatten())
        }
        _ => {}
    }
}

fn function_children<'e>(f: &'e Function, exprs: &mut Vec<&'e Expr>, queries: &mut Vec<&'e Query>) {
    for args in [&f.parameters, &f.args] {
        match args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(q) => queries.push(q),
            FunctionArguments::List(list) => {
                exprs.extend(list.args.iter().filter_map(arg_expr));
            }
        }
    }
    exprs.extend(f.filter.as_deref());
    exprs.extend(f.within_group.iter().map(|o| &o.expr));
}

/// The expression of a function argument (not a `*`).
pub(super) fn arg_expr(arg: &FunctionArg) -> Option<&Expr> {
    let (FunctionArg::Unnamed(arg)
    | FunctionArg::Named { arg, .. }
    | FunctionArg::ExprNamed { arg, .. }) = arg;
    match arg {
        FunctionArgExpr::Expr(e) => Some(e),
        _ => None,
    }
}

/// Every column reference in `e` (not inside its subqueries), in order, and
/// every subquery directly in it.
pub(super) fn references(e: &Expr) -> (Vec<&[Ident]>, Vec<&Query>) {
    let mut columns = Vec::new();
    let mut queries = Vec::new();
    let mut stack = vec![(e, 0usize)];
    let mut kids = Vec::new();
    while let Some((e, depth)) = stack.pop() {
        if let Some(parts) = column_ref(e) {
            columns.push(parts);
            continue;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        children(e, &mut kids, &mut queries);
        stack.extend(kids.drain(..).rev().map(|k| (k, depth + 1)));
    }
    (columns, queries)
}

/// Normalized text of an expression for an expression index: lower-case
/// outside quotes and without table qualifiers, e.g. `lower(email)`,
/// `data ->> 'plan'`. Constants are kept (`'plan'` matters).
pub(super) fn expression_text(e: &Expr) -> String {
    let text = e.to_string();
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let is_name = c == b'"' || is_word_start(c);
        let end = match c {
            b'\'' | b'"' => quoted_end(b, i),
            c if is_word_start(c) => word_end(b, i),
            _ => i + 1,
        };
        let qualifier = is_name
            && b.get(end) == Some(&b'.')
            && b.get(end + 1)
                .is_some_and(|&n| n == b'"' || is_word_start(n));
        if qualifier {
            i = end + 1;
            continue;
        }
        let token = &text[i..end];
        if c == b'\'' || c == b'"' {
            out.push_str(token);
        } else {
            out.push_str(&token.to_ascii_lowercase());
        }
        i = end;
    }
    out
}

fn quoted_end(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

fn word_end(b: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < b.len()
        && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
    {
        i += 1;
    }
    i
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}
