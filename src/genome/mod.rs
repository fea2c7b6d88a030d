//! The genome and expression profiles (DESIGN.md decision 10): the
//! [`catalog`] is the canonical schema, field by field, discovered from the
//! database and overridable in config; [`expression`] profiles say which
//! tenant uses which field, observed from traffic or declared. Both steer
//! which indexes the indexer proposes.

pub mod catalog;
pub mod expression;

/// Rows as an aligned text table under `header` (two spaces between
/// columns, widths by the widest cell), one line each.
pub(crate) fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(str::to_string));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}
