//! A one-line summary of an index event's evidence JSON: the few numbers a
//! reader wants (traffic, benefit, measured gain, size), whatever is there.

use serde_json::Value;

use super::format;

/// How one evidence number is shown.
#[derive(Clone, Copy)]
enum Unit {
    PerSec,
    Ms,
    Gain,
    Bytes,
    Count,
}

/// JSON pointers into the evidence, in display order, with their label.
/// The shapes are those `indexer::run` records for create, keep, revert and
/// drop; anything absent is skipped.
const FIELDS: [(&str, &str, Unit); 9] = [
    ("/proposal/calls_per_sec", "calls", Unit::PerSec),
    ("/proposal/writes_per_sec", "writes", Unit::PerSec),
    ("/proposal/net_benefit", "net benefit", Unit::Count),
    ("/before/mean_ms", "before", Unit::Ms),
    ("/after/mean_ms", "after", Unit::Ms),
    ("/measured_gain", "gain", Unit::Gain),
    ("/build_ms", "build", Unit::Ms),
    ("/size_bytes", "size", Unit::Bytes),
    ("/idx_scan", "scans", Unit::Count),
];

/// E.g. `calls 120.0/s, before 45.2 ms, size 2.0 MiB`; empty when the
/// evidence holds none of the known numbers.
pub fn summary(evidence: &Value) -> String {
    FIELDS
        .iter()
        .filter_map(|&(pointer, label, unit)| {
            let v = evidence.pointer(pointer)?.as_f64()?;
            v.is_finite().then(|| format!("{label} {}", show(v, unit)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(v: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSec => format!("{}/s", format::rate(v)),
        Unit::Ms => format!("{} ms", format::ms(v)),
        Unit::Gain => format::ratio(v),
        Unit::Bytes => format::bytes(v),
        Unit::Count => format!("{v:.0}"),
    }
}
