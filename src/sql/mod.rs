//! SQL analysis without I/O: the hot-path fingerprint ([`normalize`]), the
//! cached slow-path shape ([`analyze`]: tables, filtered columns and their
//! predicate classes, tenant) and Bind parameter decoding ([`bind_param_text`]).
//!
//! # Layout
//!
//! - `lex`: byte-level PostgreSQL tokens, shared by the fingerprint
//! - [`normalize`]: fingerprint, normalized text, literal spans
//! - [`analyze`]: sqlparser walk over statements and relations
//! - `scope`: name resolution (aliases, subqueries, CTEs, catalog)
//! - `relations`: FROM items, joins, output columns of subqueries/CTEs
//! - `predicate`: conditions → column uses, AND-groups, ORDER/GROUP BY
//! - `expr`: expression helpers (children, column refs, expression text)
//! - `tenant`: the tenant predicate and `SET` values
//! - [`params`]: Bind parameter values as text
//! - `shape`: the output types and the [`Catalog`]

pub mod analyze;
mod expr;
mod lex;
pub mod normalize;
pub mod params;
mod predicate;
mod relations;
mod scope;
mod shape;
mod tenant;

#[cfg(test)]
mod tests;

pub use analyze::{analyze, AnalyzeError};
pub use normalize::{literal_value, normalize, normalized_text, Normalized};
pub use params::bind_param_text;
pub use shape::{Catalog, ColumnUse, PredicateClass, Shape, StatementKind, TableName, TenantValue};
