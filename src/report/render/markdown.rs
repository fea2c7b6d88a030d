//! `report.md`: the sections in reading order, each a function from the
//! [`Report`] to its lines.

use serde_json::Value;

use super::super::{ClassLatency, Latency, Phase, Report, ServerWrites};
use super::{evidence, format, CHART_FILE};

/// Longer reasons are cut so the index table stays readable.
const MAX_REASON_CHARS: usize = 160;
/// Field sets listed in the expression summary before "… and N more".
const MAX_TENANTS: usize = 30;
/// Tenants named per field set in the expression summary.
const MAX_NAMED: usize = 8;

/// The whole markdown document.
pub fn render(r: &Report) -> String {
    let sections: [fn(&Report) -> Vec<String>; 12] = [
        title,
        headline,
        phase_tables,
        comparison,
        writes,
        spike,
        indexes,
        index_sizes,
        expression,
        configuration,
        notes,
        chart,
    ];
    let mut out = sections
        .iter()
        .map(|section| section(r))
        .filter(|lines| !lines.is_empty())
        .map(|lines| lines.join("\n"))
        .collect::<Vec<_>>()
        .join("\n\n");
    out.push('\n');
    out
}

/// The title and a one-paragraph summary of the scenario and the outcome.
fn title(r: &Report) -> Vec<String> {
    let name = r.scenario.get("name").map(format::scalar);
    let heading = match &name {
        Some(name) => format!("# IndexPilot before/after: {name}"),
        None => "# IndexPilot before/after".to_string(),
    };
    let summary = format!(
        "{} The **{}** phase ran with automatic indexing off; the **{}** phase ran \
         with IndexPilot creating, verifying and reverting indexes by itself. {}",
        scenario_sentence(&r.scenario),
        r.baseline.name,
        r.auto.name,
        event_counts(r),
    );
    vec![heading, String::new(), summary]
}

/// E.g. "Scenario: 50 tenants, 100000 contacts, ...", from the keys present.
fn scenario_sentence(scenario: &Value) -> String {
    let Some(map) = scenario.as_object() else {
        return "The scenario was not recorded.".to_string();
    };
    let known = [
        ("tenants", "{} tenants"),
        ("contacts", "{} contacts"),
        ("queries", "{} queries"),
        ("concurrency", "concurrency {}"),
        ("trials", "{} trials"),
        ("seed", "seed {}"),
    ];
    let mut parts: Vec<String> = known
        .iter()
        .filter_map(|(key, pattern)| {
            let v = map.get(*key)?;
            Some(pattern.replace("{}", &format::scalar(v)))
        })
        .collect();
    let others = map
        .iter()
        .filter(|(k, _)| *k != "name" && !known.iter().any(|(key, _)| key == k))
        .map(|(k, v)| format!("{k} = {}", format::scalar(v)));
    parts.extend(others);
    if parts.is_empty() {
        "The scenario has no recorded size.".to_string()
    } else {
        format!("Scenario: {}.", parts.join(", "))
    }
}

/// E.g. "IndexPilot recorded 3 index events (2 create, 1 revert)."
fn event_counts(r: &Report) -> String {
    if r.indexes.is_empty() {
        return "IndexPilot recorded no index events.".to_string();
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for e in &r.indexes {
        match counts.iter_mut().find(|(action, _)| *action == e.action) {
            Some((_, n)) => *n += 1,
            None => counts.push((&e.action, 1)),
        }
    }
    let detail: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    format!(
        "IndexPilot recorded {} index events ({}).",
        r.indexes.len(),
        detail.join(", ")
    )
}

/// The filtered-query p95 before → after and every ratio `improvement` has.
fn headline(r: &Report) -> Vec<String> {
    let (before, after) = (r.baseline.filtered.p95_ms, r.auto.filtered.p95_ms);
    let ratio = r
        .improvement
        .get("filtered_p95")
        .and_then(Value::as_f64)
        .or_else(|| format::divide(before, after));
    let verdict = match ratio {
        Some(q) if q >= 1.0 => format!("{} faster", format::ratio(q)),
        Some(q) if q > 0.0 => format!("{} slower", format::ratio(1.0 / q)),
        _ => "ratio unknown".to_string(),
    };
    let mut lines = vec![
        "## Headline".to_string(),
        String::new(),
        format!(
            "**Filtered-query p95: {} ms → {} ms, {verdict}.**",
            format::ms(before),
            format::ms(after)
        ),
    ];
    if let Some(map) = r.improvement.as_object().filter(|m| !m.is_empty()) {
        lines.push(String::new());
        lines.push("Baseline / auto ratios (above 1 means auto is faster):".to_string());
        lines.push(String::new());
        for (key, v) in ratios_in_order(map) {
            let shown = v.as_f64().map_or_else(|| format::scalar(v), format::ratio);
            lines.push(format!("- {}: {shown}", key.replace('_', " ")));
        }
    }
    lines
}

/// The filtered-read ratios first (the headline's kin), then the rest by
/// name.
fn ratios_in_order(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    const FIRST: [&str; 4] = [
        "filtered_p95",
        "filtered_p50",
        "filtered_p99",
        "filtered_mean",
    ];
    let rank = |k: &str| FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len());
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    entries
}

/// One latency table per phase, a row per query class.
fn phase_tables(r: &Report) -> Vec<String> {
    let mut lines = vec!["## Latency by query class".to_string()];
    for phase in [&r.baseline, &r.auto] {
        lines.push(String::new());
        lines.extend(phase_table(phase));
    }
    lines
}

fn phase_table(p: &Phase) -> Vec<String> {
    let mut lines = vec![
        format!("### {} ({} trials, medians)", p.name, p.trials),
        String::new(),
        "| class | kind | queries | q/s | mean ms | p50 ms | p95 ms | p99 ms |".to_string(),
        "|---|---|--:|--:|--:|--:|--:|--:|".to_string(),
    ];
    for c in &p.classes {
        lines.push(latency_row(&format::cell(&c.class), kind(c), &c.latency));
    }
    lines.push(latency_row("**filtered reads**", "", &p.filtered));
    lines.push(latency_row("**all queries**", "", &p.overall));
    lines
}

fn kind(c: &ClassLatency) -> &'static str {
    match (c.write, c.filtered) {
        (true, _) => "write",
        (false, true) => "filtered read",
        (false, false) => "read",
    }
}

fn latency_row(label: &str, kind: &str, l: &Latency) -> String {
    format!(
        "| {label} | {kind} | {} | {} | {} | {} | {} | {} |",
        l.queries,
        format::rate(l.throughput),
        format::ms(l.mean_ms),
        format::ms(l.p50_ms),
        format::ms(l.p95_ms),
        format::ms(l.p99_ms),
    )
}

/// p95 per class, baseline against auto.
fn comparison(r: &Report) -> Vec<String> {
    let mut lines = vec![
        "## Baseline vs auto (p95)".to_string(),
        String::new(),
        format!(
            "| class | {} p95 ms | {} p95 ms | ratio |",
            format::cell(&r.baseline.name),
            format::cell(&r.auto.name)
        ),
        "|---|--:|--:|--:|".to_string(),
    ];
    let mut names: Vec<&str> = r
        .baseline
        .classes
        .iter()
        .map(|c| c.class.as_str())
        .collect();
    for c in &r.auto.classes {
        if !names.contains(&c.class.as_str()) {
            names.push(&c.class);
        }
    }
    for name in names {
        let p95 = |p: &Phase| {
            p.classes
                .iter()
                .find(|c| c.class == name)
                .map(|c| c.latency.p95_ms)
        };
        lines.push(comparison_row(
            &format::cell(name),
            p95(&r.baseline),
            p95(&r.auto),
        ));
    }
    let (b, a) = (&r.baseline, &r.auto);
    lines.push(comparison_row(
        "**filtered reads**",
        Some(b.filtered.p95_ms),
        Some(a.filtered.p95_ms),
    ));
    lines.push(comparison_row(
        "**all queries**",
        Some(b.overall.p95_ms),
        Some(a.overall.p95_ms),
    ));
    lines
}

fn comparison_row(label: &str, before: Option<f64>, after: Option<f64>) -> String {
    let show = |v: Option<f64>| v.map_or_else(|| format::MISSING.to_string(), format::ms);
    let ratio = before
        .zip(after)
        .and_then(|(b, a)| format::divide(b, a))
        .map_or_else(|| format::MISSING.to_string(), format::ratio);
    format!("| {label} | {} | {} | {ratio} |", show(before), show(after))
}

/// Write throughput before and after (write-only runs): indexes cost
/// writes something.
fn writes(r: &Report) -> Vec<String> {
    let (b, a) = (&r.baseline, &r.auto);
    let change = match format::divide(a.write_throughput, b.write_throughput) {
        Some(q) => format!(" ({:+.1}%)", (q - 1.0) * 100.0),
        None => String::new(),
    };
    let mut lines = vec![
        "## Writes".to_string(),
        String::new(),
        format!(
            "Write throughput in the write-only runs: {} writes/s in {} → {} writes/s in \
             {}{change}; write p95 {} ms → {} ms.",
            format::rate(b.write_throughput),
            b.name,
            format::rate(a.write_throughput),
            a.name,
            format::ms(b.writes.p95_ms),
            format::ms(a.writes.p95_ms),
        ),
    ];
    let runs = |p: &Phase| {
        let each: Vec<String> = p.write_runs.iter().map(|w| format::rate(*w)).collect();
        format!("{}: {}", p.name, each.join(", "))
    };
    if !b.write_runs.is_empty() && !a.write_runs.is_empty() {
        lines.push(String::new());
        lines.push(format!("Each run, writes/s — {}; {}.", runs(b), runs(a)));
    }
    lines.extend(server_writes(b, a));
    lines
}

/// WAL per write and the checkpoints of both phases; a warning when WAL
/// volume forced checkpoints, which make every extra index leaf a write
/// touches cost a full page of WAL again.
fn server_writes(b: &Phase, a: &Phase) -> Vec<String> {
    let (Some(sb), Some(sa)) = (&b.server, &a.server) else {
        return Vec::new();
    };
    let checkpoints = |p: &Phase, w: &ServerWrites| {
        format!(
            "{} {} by time, {} requested",
            p.name, w.checkpoints_timed, w.checkpoints_requested
        )
    };
    let mut lines = vec![
        String::new(),
        format!(
            "WAL written per write in those runs: {} → {}. Checkpoints from the end of the \
             warm-up to the end of the spike: {}; {}.",
            format::bytes(sb.wal_bytes_per_write),
            format::bytes(sa.wal_bytes_per_write),
            checkpoints(b, sb),
            checkpoints(a, sa),
        ),
    ];
    if let (Some(fb), Some(fa), Some(nb), Some(na)) = (
        sb.wal_sync_ms,
        sa.wal_sync_ms,
        sb.wal_syncs_per_write,
        sa.wal_syncs_per_write,
    ) {
        lines.push(String::new());
        lines.push(format!(
            "Every commit waits for a WAL flush to disk: {fb:.3} ms → {fa:.3} ms per flush, \
             {nb:.2} → {na:.2} flushes per write (server-wide, IndexPilot's own commits \
             included). A slower flush lowers the write throughput whatever the indexes \
             cost, so compare the two before reading the write figures as index upkeep."
        ));
    }
    let forced = sb.checkpoints_requested + sa.checkpoints_requested;
    if forced > 0 {
        lines.push(String::new());
        lines.push(format!(
            "**{forced} checkpoint(s) were requested during the measured runs**, by WAL \
             volume past `max_wal_size` (or by someone's CHECKPOINT). After each one, the \
             first change to every page writes the whole page to WAL, so each index a write \
             maintains costs up to 8 KiB more until its pages are touched again; the write \
             figures above then read lower than on a server whose `max_wal_size` fits this \
             write rate (PostgreSQL logs \"checkpoints are occurring too frequently\" and \
             advises raising it)."
        ));
    }
    lines
}

/// The traffic spike and failed queries: nothing may fail.
fn spike(r: &Report) -> Vec<String> {
    let mut lines = vec![
        "## Traffic spike and errors".to_string(),
        String::new(),
        "| phase | failed per trial | spike clients | spike q/s | spike filtered p95 ms | spike failed |"
            .to_string(),
        "|---|--:|--:|--:|--:|--:|".to_string(),
    ];
    for p in [&r.baseline, &r.auto] {
        let spike = match &p.spike {
            Some(s) => format!(
                "{} | {} | {} | {}",
                s.clients,
                format::rate(s.overall.throughput),
                format::ms(s.filtered.p95_ms),
                s.errors
            ),
            None => [format::MISSING; 4].join(" | "),
        };
        lines.push(format!(
            "| {} | {} | {spike} |",
            format::cell(&p.name),
            p.errors
        ));
    }
    lines
}

/// What IndexPilot did, when and why.
fn indexes(r: &Report) -> Vec<String> {
    let mut lines = vec!["## Indexes".to_string(), String::new()];
    if r.indexes.is_empty() {
        lines.push("IndexPilot recorded no index events.".to_string());
        return lines;
    }
    lines.push(format!(
        "Times are seconds since the {} phase started.",
        r.auto.name
    ));
    lines.push(String::new());
    lines.push("| time (s) | action | table | columns | tenant | reason | evidence |".to_string());
    lines.push("|--:|---|---|---|---|---|---|".to_string());
    for e in &r.indexes {
        lines.push(format!(
            "| {:.1} | {} | {} | {} | {} | {} | {} |",
            e.at_s,
            format::cell(&e.action),
            format::cell(&e.table),
            format::cell(&e.columns.join(", ")),
            format::cell(e.tenant.as_deref().unwrap_or("all")),
            format::cell(&format::truncate(&e.reason, MAX_REASON_CHARS)),
            format::cell(&evidence::summary(&e.evidence)),
        ));
    }
    lines
}

/// IndexPilot's indexes as they are now, with their sizes.
fn index_sizes(r: &Report) -> Vec<String> {
    let mut lines = vec!["## Indexes in place".to_string(), String::new()];
    if r.index_sizes.is_empty() {
        lines.push("No index of IndexPilot's is in place.".to_string());
        return lines;
    }
    lines.push("| index | table | columns | tenant | size |".to_string());
    lines.push("|---|---|---|---|--:|".to_string());
    for i in &r.index_sizes {
        lines.push(format!(
            "| {} | {} | {} | {} | {} |",
            format::cell(&i.index_name),
            format::cell(&i.table),
            format::cell(&i.columns.join(", ")),
            format::cell(i.tenant.as_deref().unwrap_or("all")),
            format::bytes(i.bytes as f64),
        ));
    }
    let total: i64 = r.index_sizes.iter().map(|i| i.bytes).sum();
    lines.push(String::new());
    lines.push(format!(
        "{} index(es), {} in all.",
        r.index_sizes.len(),
        format::bytes(total as f64)
    ));
    lines
}

/// Which fields the tenants express: per field, then tenants grouped by
/// their set of fields (the first [`MAX_TENANTS`] sets).
fn expression(r: &Report) -> Vec<String> {
    let mut lines = vec!["## Per-tenant expression".to_string(), String::new()];
    if r.expression.is_empty() {
        lines.push("No expression profiles were recorded.".to_string());
        return lines;
    }
    // Per field first: how many tenants use it is what decides between
    // one shared index, partial indexes and none.
    let mut fields: Vec<(&str, usize)> = Vec::new();
    for t in &r.expression {
        for f in &t.fields {
            match fields.iter_mut().find(|(name, _)| *name == f.as_str()) {
                Some((_, n)) => *n += 1,
                None => fields.push((f, 1)),
            }
        }
    }
    fields.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let tenants = r.expression.len();
    lines.push(format!("| field | tenants using it (of {tenants}) |"));
    lines.push("|---|--:|".to_string());
    for (field, n) in fields {
        lines.push(format!("| {} | {n} |", format::cell(field)));
    }
    lines.push(String::new());
    // Per tenant, grouped: most tenants share one of a few field sets.
    let mut groups: Vec<(&[String], Vec<&str>)> = Vec::new();
    for t in &r.expression {
        match groups.iter_mut().find(|(f, _)| *f == &t.fields[..]) {
            Some((_, ts)) => ts.push(&t.tenant),
            None => groups.push((&t.fields, vec![&t.tenant])),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    lines.push(format!(
        "Tenants by the set of fields they express ({} distinct sets):",
        groups.len()
    ));
    lines.push(String::new());
    for (fields, ts) in groups.iter().take(MAX_TENANTS) {
        let fields = if fields.is_empty() {
            "(none)".to_string()
        } else {
            fields.join(", ")
        };
        let mut named: Vec<String> = ts.iter().take(MAX_NAMED).map(|t| code(t)).collect();
        if ts.len() > MAX_NAMED {
            named.push("…".to_string());
        }
        let count = match ts.len() {
            1 => "1 tenant".to_string(),
            n => format!("{n} tenants"),
        };
        lines.push(format!("- {count} ({}) → {fields}", named.join(", ")));
    }
    if groups.len() > MAX_TENANTS {
        lines.push(format!("- … and {} more sets", groups.len() - MAX_TENANTS));
    }
    lines
}

/// The proxy's configuration, `key = value`.
fn configuration(r: &Report) -> Vec<String> {
    let mut lines = vec!["## Configuration".to_string(), String::new()];
    if r.config.is_empty() {
        lines.push("No configuration was recorded.".to_string());
    }
    for (key, value) in &r.config {
        lines.push(format!("- {}", code(&format!("{key} = {value}"))));
    }
    lines
}

/// Free-form notes from the run; no section when there are none.
fn notes(r: &Report) -> Vec<String> {
    if r.notes.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["## Notes".to_string(), String::new()];
    lines.extend(r.notes.iter().map(|n| format!("- {}", n.trim())));
    lines
}

/// The chart, which `write_all` puts next to this file.
fn chart(_: &Report) -> Vec<String> {
    vec![
        "## Latency over time".to_string(),
        String::new(),
        format!("![latency]({CHART_FILE})"),
        String::new(),
        "p95 latency of the filtered reads per second over each whole phase (log scale): \
         baseline from its warm-up to its spike; auto from the moment IndexPilot started \
         learning, through the measured trials and the spike, to the end of the drift. \
         Vertical lines mark the index events on the auto clock."
            .to_string(),
    ]
}

/// An inline code span that survives backticks in `s`.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}
