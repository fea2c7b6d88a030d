//! Issue 6 end to end: `indexpilot demo --scenario tiny` seeds a throwaway
//! PostgreSQL, measures the CRM workload without and with automatic
//! indexing, and writes a report in which indexes appear on the hot fields
//! and not on cold ones, the drift phase reverts or drops one, and the p95
//! of filtered queries improves.

use std::process::Command;

use serde_json::Value;

#[test]
fn tiny_demo_indexes_hot_fields_survives_drift_and_reports() {
    let out = std::env::temp_dir().join(format!("indexpilot-demo-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_indexpilot"))
        .args(["demo", "--scenario", "tiny", "--out"])
        .arg(&out)
        .output()
        .expect("run indexpilot demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("filtered queries: p95"), "{stdout}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for phase in ["baseline", "auto"] {
        for key in ["queries", "mean_ms", "p50_ms", "p95_ms", "p99_ms"] {
            assert!(report[phase][key].is_number(), "{phase}.{key}: {report:#}");
        }
    }
    let indexes = report["indexes"].as_array().expect("indexes list");
    let created: Vec<String> = indexes
        .iter()
        .filter(|i| i["action"] == "create")
        .map(|i| {
            assert!(i["at_s"].is_number() && i["table"].is_string(), "{i}");
            assert!(i.get("tenant").is_some(), "{i}");
            format!(
                "{}.{}",
                i["table"].as_str().unwrap(),
                i["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    for hot in ["email", "phone"] {
        assert!(
            created
                .iter()
                .any(|c| c.starts_with("contacts.") && c.contains(hot)),
            "no index on contacts.{hot}: {created:#?}"
        );
    }
    for cold in ["first_name", "custom_text_2", "notes", "size"] {
        assert!(
            !created.iter().any(|c| c.contains(cold)),
            "index on cold field {cold}: {created:#?}"
        );
    }
    assert!(
        indexes
            .iter()
            .any(|i| i["action"] == "revert" || i["action"] == "drop"),
        "the drift phase reverted or dropped nothing: {indexes:#?}"
    );
    let before = report["baseline"]["filtered"]["p95_ms"].as_f64().unwrap();
    let after = report["auto"]["filtered"]["p95_ms"].as_f64().unwrap();
    assert!(
        after < before,
        "filtered p95 did not improve: {before} -> {after}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("latency.svg"), "{md}");
    let svg = std::fs::read_to_string(out.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_dir_all(&out);
}

/// Ctrl-C during the demo stops it with a message, and its throwaway
/// PostgreSQL (process and directory) is gone afterwards.
#[test]
fn interrupted_demo_removes_its_postgres() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let out = std::env::temp_dir().join(format!("indexpilot-demo-int-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_indexpilot"))
        .args(["demo", "--scenario", "tiny", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run indexpilot demo");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = None;
    let mut seen = String::new();
    // Read up to the end of seeding (lines end in \n; progress bars in \r).
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stderr.read_until(b'\n', &mut line).unwrap();
        assert!(n > 0, "the demo ended before seeding finished:\n{seen}");
        let text = String::from_utf8_lossy(&line).to_string();
        seen.push_str(&text);
        if let Some(rest) = text.split("(log: ").nth(1) {
            log = rest.split(';').next().map(std::path::PathBuf::from);
        }
        if text.contains("demo: seeded") {
            break;
        }
    }
    let log = log.unwrap_or_else(|| panic!("no PostgreSQL log path printed:\n{seen}"));
    assert!(log.exists(), "{}", log.display());
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted demo must not exit 0");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(
        !log.exists(),
        "the demo's PostgreSQL directory is still there: {}",
        log.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}
