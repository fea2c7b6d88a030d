//! Number and text formatting shared by the markdown and the chart.

/// Shown where a number is missing or not finite.
pub const MISSING: &str = "–";

/// Milliseconds: three decimals below 10 ms, one above.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        MISSING.to_string()
    } else if v.abs() < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// A rate (queries or writes per second).
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        MISSING.to_string()
    } else if v.abs() < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A speed-up ratio such as `42.0×`; fewer decimals as it grows.
pub fn ratio(v: f64) -> String {
    if !v.is_finite() {
        MISSING.to_string()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}×")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}×")
    } else {
        format!("{v:.2}×")
    }
}

/// `before / after`, when both are positive and finite.
pub fn divide(before: f64, after: f64) -> Option<f64> {
    let q = before / after;
    (before > 0.0 && after > 0.0 && q.is_finite()).then_some(q)
}

/// A byte count in binary units.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A plain JSON scalar as text: strings unquoted, numbers as written.
pub fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Text safe inside a markdown table cell: one line, pipes escaped, and no
/// `<` a renderer could take for an HTML tag.
pub fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
        .replace('<', "&lt;")
}

/// Text safe inside XML content and attribute values.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
