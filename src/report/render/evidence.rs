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
/// The shapes are those `indexer::run` records for create, keep, revert,
/// drop and redundancy advice; anything absent is skipped.
const FIELDS: [(&str, &str, Unit); 12] = [
    ("/proposal/calls_per_sec", "calls", Unit::PerSec),
    ("/proposal/writes_per_sec", "writes", Unit::PerSec),
    ("/proposal/net_benefit", "net benefit", Unit::Count),
    ("/before/mean_ms", "before", Unit::Ms),
    ("/after/mean_ms", "after", Unit::Ms),
    ("/measured_gain", "gain", Unit::Gain),
    ("/build_ms", "build", Unit::Ms),
    ("/size_bytes", "size", Unit::Bytes),
    ("/idx_scan", "scans", Unit::Count),
    ("/writes_per_sec", "writes", Unit::PerSec),
    ("/redundant/size_bytes", "size", Unit::Bytes),
    ("/redundant/scans", "scans", Unit::Count),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_pick_the_known_numbers() {
        let create = json!({ "proposal": { "calls_per_sec": 120.0, "writes_per_sec": 2.5 },
                             "build_ms": 1500.0, "size_bytes": 2_097_152 });
        assert_eq!(
            summary(&create),
            "calls 120/s, writes 2.5/s, build 1500.0 ms, size 2.0 MiB"
        );
        let redundant = json!({ "redundant": { "name": "t_tenant", "size_bytes": 1_048_576,
                                               "scans": 7 },
                                "writes_per_sec": 40.0 });
        assert_eq!(summary(&redundant), "writes 40.0/s, size 1.0 MiB, scans 7");
        assert_eq!(summary(&json!({ "other": 1 })), "");
    }
}
