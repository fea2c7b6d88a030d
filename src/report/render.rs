//! Renders a [`Report`] as the three files of the before/after report:
//! `report.md` for people, `report.json` for tools and `latency.svg`, the
//! chart the markdown embeds.

mod chart;
mod evidence;
mod format;
mod markdown;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use super::Report;

/// File names inside the output directory; the markdown links the chart by
/// this relative name, so the three must stay together.
pub const MARKDOWN_FILE: &str = "report.md";
pub const JSON_FILE: &str = "report.json";
pub const CHART_FILE: &str = "latency.svg";

/// `report.md`: a human report.
pub fn markdown(r: &Report) -> String {
    markdown::render(r)
}

/// `report.json`: the whole [`Report`], pretty-printed.
pub fn json(r: &Report) -> String {
    // Every map key in a Report is a string and serde_json writes non-finite
    // floats as null, so serializing cannot fail.
    serde_json::to_string_pretty(r).expect("a Report always serializes to JSON")
}

/// `latency.svg`: p95 latency over time for both phases, on a log scale,
/// with IndexPilot's index events marked.
pub fn svg(r: &Report) -> String {
    chart::render(r)
}

/// Creates `dir` (and its parents) and writes the three files into it.
/// Returns their paths: markdown, JSON, chart.
pub fn write_all(r: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        (MARKDOWN_FILE, markdown(r)),
        (JSON_FILE, json(r)),
        (CHART_FILE, svg(r)),
    ];
    let mut paths = Vec::with_capacity(files.len());
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    Ok(paths)
}
