//! Table-driven tests of the analyzer and the fingerprint, and of their
//! agreement on where the tenant constant is.

mod analyze;
mod normalize;
mod tenant;

use super::{Catalog, ColumnUse, Shape, TableName};

/// `[schema.]table.column:class[expression]@group`, `?` for an unresolved table.
fn render(u: &ColumnUse) -> String {
    let table = u
        .table
        .as_ref()
        .map_or_else(|| "?".to_string(), TableName::to_string);
    let expression = u
        .expression
        .as_ref()
        .map(|e| format!("[{e}]"))
        .unwrap_or_default();
    format!(
        "{table}.{}:{}{expression}@{}",
        u.column,
        u.class.as_str(),
        u.group
    )
}

fn render_all(uses: &[ColumnUse]) -> Vec<String> {
    uses.iter().map(render).collect()
}

fn tables(shape: &Shape) -> Vec<String> {
    shape.tables.iter().map(TableName::to_string).collect()
}

/// The CRM schema: contacts, organizations, interactions.
fn crm_catalog() -> Catalog {
    let mut catalog = Catalog::new();
    let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
    catalog.add_table(
        TableName::new(Some("public"), "contacts"),
        cols(&[
            "id",
            "tenant_id",
            "org_id",
            "email",
            "phone",
            "name",
            "custom",
            "created_at",
            "deleted_at",
        ]),
    );
    catalog.add_table(
        TableName::new(Some("public"), "organizations"),
        cols(&["id", "tenant_id", "name", "industry", "created_at"]),
    );
    catalog.add_table(
        TableName::new(Some("public"), "interactions"),
        cols(&[
            "id",
            "tenant_id",
            "contact_id",
            "kind",
            "occurred_at",
            "notes",
        ]),
    );
    catalog
}
