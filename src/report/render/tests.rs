//! Rendering a hand-built [`Report`]: the markdown's sections, the JSON's
//! keys, the SVG's well-formedness and `write_all`'s files.

use serde_json::{json, Value};

use super::super::{
    ClassLatency, IndexEvent, IndexSize, Latency, Phase, Report, ServerWrites, Spike,
    TenantExpression,
};
use super::*;

fn latency(queries: u64, p95: f64) -> Latency {
    Latency {
        queries,
        throughput: queries as f64 / 60.0,
        mean_ms: p95 / 3.0,
        p50_ms: p95 / 4.0,
        p95_ms: p95,
        p99_ms: p95 * 1.5,
    }
}

fn class(name: &str, filtered: bool, write: bool, p95: f64) -> ClassLatency {
    ClassLatency {
        class: name.to_string(),
        filtered,
        write,
        latency: latency(1200, p95),
    }
}

fn phase(name: &str, scale: f64, timeline: Vec<(f64, f64)>) -> Phase {
    Phase {
        name: name.to_string(),
        overall: latency(6000, 240.0 * scale),
        classes: vec![
            class("email lookup", true, false, 480.0 * scale),
            class("industry filter", true, false, 910.0 * scale),
            class("insert contact", false, true, 2.5),
        ],
        filtered: latency(2400, 850.0 * scale),
        write_throughput: 40.0 - scale,
        writes: latency(500, 2.0 + scale),
        write_runs: vec![39.0 - scale, 40.0 - scale, 41.0 - scale],
        errors: 0,
        spike: Some(Spike {
            clients: 32,
            overall: latency(3000, 400.0 * scale),
            filtered: latency(1500, 900.0 * scale),
            errors: 0,
        }),
        server: None,
        trials: 3,
        timeline,
    }
}

fn event(action: &str, columns: &[&str], tenant: Option<&str>, at_s: f64) -> IndexEvent {
    IndexEvent {
        table: "contacts".to_string(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        tenant: tenant.map(str::to_string),
        action: action.to_string(),
        at_s,
        index_name: Some(format!("ip_contacts_{}", columns.join("_"))),
        reason: format!("{action}: seq scans on contacts <filtered> & slow"),
        evidence: json!({ "proposal": { "calls_per_sec": 120.5 }, "size_bytes": 2097152 }),
    }
}

fn sample() -> Report {
    let baseline_line = (0..30)
        .map(|s| (f64::from(s), 800.0 + f64::from(s)))
        .collect();
    let auto_line = (0..30)
        .map(|s| (f64::from(s), if s < 10 { 800.0 } else { 1.2 }))
        .collect();
    Report {
        scenario: json!({
            "name": "crm-small", "tenants": 50, "contacts": 100000, "queries": 20000,
            "concurrency": 8, "trials": 3, "seed": 42,
        }),
        baseline: phase("baseline", 1.0, baseline_line),
        auto: phase("auto", 0.002, auto_line),
        indexes: vec![
            event("create", &["tenant_id", "email"], None, 9.5),
            event("create", &["custom_1"], Some("t7"), 12.25),
            event("revert", &["custom_1"], Some("t7"), 24.0),
        ],
        index_sizes: vec![IndexSize {
            index_name: "ip_contacts_tenant_id_email".to_string(),
            table: "contacts".to_string(),
            columns: vec!["tenant_id".to_string(), "email".to_string()],
            tenant: None,
            bytes: 2_097_152,
        }],
        expression: (0..35)
            .map(|i| TenantExpression {
                tenant: format!("t{i}"),
                fields: vec!["email".to_string(), format!("custom_{}", i % 3)],
            })
            .collect(),
        config: vec![
            ("indexer.mode".to_string(), "apply".to_string()),
            ("indexer.interval".to_string(), "5s".to_string()),
        ],
        improvement: json!({ "filtered_p95": 500.0, "filtered_p50": 480.0, "all_p95": 12.5 }),
        notes: vec!["medians over 3 trials".to_string()],
    }
}

#[test]
fn markdown_has_every_section_in_order() {
    let md = markdown(&sample());
    let order = [
        "# IndexPilot before/after: crm-small",
        "50 tenants, 100000 contacts",
        "**Filtered-query p95: 850.0 ms → 1.700 ms, 500× faster.**",
        "### baseline (3 trials, medians)",
        "### auto (3 trials, medians)",
        "## Baseline vs auto (p95)",
        "Write throughput in the write-only runs: 39.0 writes/s in baseline → 40.0 writes/s in auto",
        "## Traffic spike and errors",
        "| auto | 0 | 32 |",
        "## Indexes",
        "## Indexes in place",
        "| ip_contacts_tenant_id_email | contacts | tenant_id, email | all | 2.0 MiB |",
        "## Per-tenant expression",
        "| email | 35 |",
        "## Configuration",
        "## Notes",
        "![latency](latency.svg)",
    ];
    let mut from = 0;
    for needle in order {
        let at = md[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing or out of order in\n{md}"));
        from += at + needle.len();
    }
}

#[test]
fn markdown_lists_classes_ratios_and_indexes() {
    let md = markdown(&sample());
    for class in ["email lookup", "industry filter", "insert contact"] {
        assert!(md.contains(&format!("| {class} |")), "{class}");
    }
    assert!(
        md.contains("| email lookup | 480.0 | 0.960 | 500× |"),
        "{md}"
    );
    assert!(md.contains("- filtered p95: 500×"));
    assert!(md.contains("- filtered p95: 500×\n- filtered p50: 480×\n- all p95: 12.5×"));
    assert!(md.contains("seq scans on contacts &lt;filtered> & slow"));
    assert!(md.contains("| 9.5 | create | contacts | tenant_id, email | all |"));
    assert!(md.contains("| 24.0 | revert | contacts | custom_1 | t7 |"));
    assert!(md.contains("calls 120/s, size 2.0 MiB"), "{md}");
    // Tenants grouped by field set, largest first, eight named per set.
    assert!(md.contains("(3 distinct sets)"), "{md}");
    assert!(
        md.contains(
            "- 12 tenants (`t0`, `t3`, `t6`, `t9`, `t12`, `t15`, `t18`, `t21`, …) → email, custom_0"
        ),
        "{md}"
    );
    assert!(md.contains("- 11 tenants (`t2`, `t5`, "), "{md}");
    assert!(!md.contains("`t24`"), "{md}");
    assert!(md.contains("- `indexer.mode = apply`"));
    assert!(
        md.contains("Each run, writes/s — baseline: 38.0, 39.0, 40.0; auto: 39.0, 40.0, 41.0."),
        "{md}"
    );
    assert!(md.contains("- medians over 3 trials"));
}

#[test]
fn markdown_shows_wal_per_write_and_warns_of_forced_checkpoints() {
    let mut r = sample();
    // Older reports have no server figures: no line, no warning.
    assert!(!markdown(&r).contains("WAL written per write"));
    let server = |wal: f64, requested: i64| ServerWrites {
        wal_bytes_per_write: wal,
        checkpoints_timed: 1,
        checkpoints_requested: requested,
        ..ServerWrites::default()
    };
    r.baseline.server = Some(server(10_240.0, 0));
    r.auto.server = Some(server(15_360.0, 0));
    let md = markdown(&r);
    assert!(
        md.contains(
            "WAL written per write in those runs: 10.0 KiB → 15.0 KiB. Checkpoints from the end \
             of the warm-up to the end of the spike: baseline 1 by time, 0 requested; auto 1 by \
             time, 0 requested."
        ),
        "{md}"
    );
    assert!(
        !md.contains("were requested during the measured runs"),
        "{md}"
    );
    r.auto.server = Some(server(15_360.0, 3));
    let md = markdown(&r);
    assert!(
        md.contains("**3 checkpoint(s) were requested during the measured runs**"),
        "{md}"
    );
    // Flush times only when both phases have them.
    assert!(!md.contains("per flush"), "{md}");
    let timed = |ms: f64, n: f64| ServerWrites {
        wal_sync_ms: Some(ms),
        wal_syncs_per_write: Some(n),
        ..server(15_360.0, 0)
    };
    r.baseline.server = Some(timed(1.25, 0.5));
    assert!(!markdown(&r).contains("per flush"));
    r.auto.server = Some(timed(2.5, 0.25));
    let md = markdown(&r);
    assert!(
        md.contains("1.250 ms → 2.500 ms per flush, 0.50 → 0.25 flushes per write"),
        "{md}"
    );
}

#[test]
fn markdown_caps_the_field_sets_listed() {
    let mut r = sample();
    for (i, t) in r.expression.iter_mut().enumerate() {
        t.fields = vec![format!("custom_{i}")];
    }
    let md = markdown(&r);
    assert!(md.contains("(35 distinct sets)"), "{md}");
    assert!(md.contains("- 1 tenant (`t0`) → custom_0"), "{md}");
    assert!(md.contains("- … and 5 more sets"), "{md}");
}

#[test]
fn markdown_truncates_long_reasons_and_escapes_pipes() {
    let mut r = sample();
    r.indexes[0].reason = format!("a|b {}", "x".repeat(300));
    let md = markdown(&r);
    let row = md.lines().find(|l| l.starts_with("| 9.5 |")).unwrap();
    assert!(row.contains("a\\|b"));
    assert!(row.contains('…'));
    assert!(!row.contains(&"x".repeat(160)));
}

#[test]
fn markdown_tolerates_an_empty_report() {
    let mut r = sample();
    r.scenario = Value::Null;
    r.improvement = Value::Null;
    r.indexes.clear();
    r.expression.clear();
    r.config.clear();
    r.notes.clear();
    r.auto.filtered.p95_ms = 0.0;
    let md = markdown(&r);
    assert!(md.contains("ratio unknown"));
    assert!(md.contains("IndexPilot recorded no index events."));
    assert!(!md.contains("## Notes"));
    assert!(md.contains("![latency](latency.svg)"));
}

#[test]
fn json_has_the_documented_keys() {
    let v: Value = serde_json::from_str(&json(&sample())).unwrap();
    for phase in ["baseline", "auto"] {
        let p = &v[phase];
        assert!(p.is_object(), "{phase}");
        for key in ["queries", "mean_ms", "p50_ms", "p95_ms", "p99_ms"] {
            assert!(p[key].is_number(), "{phase}.{key}");
        }
    }
    let indexes = v["indexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 3);
    assert_eq!(indexes[0]["table"], "contacts");
    assert_eq!(indexes[0]["columns"], json!(["tenant_id", "email"]));
    assert_eq!(indexes[0]["tenant"], Value::Null);
    assert_eq!(indexes[2]["tenant"], "t7");
    assert_eq!(indexes[2]["action"], "revert");
    assert_eq!(indexes[2]["at_s"], 24.0);
}

/// Opening tags minus self-closing ones must equal closing tags.
fn assert_well_formed(svg: &str) {
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    let (mut open, mut close) = (0, 0);
    for tag in svg.split('<').skip(1) {
        let body = &tag[..tag.find('>').expect("unterminated tag")];
        if body.starts_with('/') {
            close += 1;
        } else if !body.ends_with('/') {
            open += 1;
        }
    }
    assert_eq!(open, close, "{svg}");
    for bad in ["NaN", "inf"] {
        assert!(!svg.contains(bad), "{bad} in\n{svg}");
    }
}

#[test]
fn svg_is_well_formed_with_lines_legend_and_events() {
    let mut r = sample();
    r.indexes[0].table = "a&b<c>".to_string();
    let svg = svg(&r);
    assert_well_formed(&svg);
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains(">baseline</text>") && svg.contains(">auto</text>"));
    assert!(svg.contains("create a&amp;b&lt;c&gt;(tenant_id, email)"));
    assert!(svg.contains("revert contacts(custom_1) [t7]"));
    assert!(svg.contains("#d62728") && svg.contains("#2ca02c"));
    // Two to three decades and a label for 1 ms.
    assert!(svg.contains(">1</text>") && svg.contains(">1000</text>"));
}

#[test]
fn svg_handles_empty_and_degenerate_timelines() {
    let mut r = sample();
    r.baseline.timeline.clear();
    r.auto.timeline.clear();
    r.indexes.clear();
    assert_well_formed(&svg(&r));

    r.baseline.timeline = vec![(0.0, 5.0)];
    r.auto.timeline = vec![
        (f64::NAN, 1.0),
        (1.0, 0.0),
        (2.0, f64::INFINITY),
        (3.0, -1.0),
    ];
    r.indexes = vec![event("keep", &["email"], None, f64::NAN)];
    let svg = svg(&r);
    assert_well_formed(&svg);
    assert!(svg.contains("<circle"));
}

#[test]
fn write_all_writes_three_files() {
    let dir = std::env::temp_dir().join(format!("indexpilot-report-{}", std::process::id()));
    let paths = write_all(&sample(), &dir.join("nested")).unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["report.md", "report.json", "latency.svg"]);
    for p in &paths {
        assert!(std::fs::metadata(p).unwrap().len() > 100, "{}", p.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
