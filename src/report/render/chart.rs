//! `latency.svg`, hand-written: p95 latency per second of both phases on a
//! log scale, with IndexPilot's index events as labelled vertical lines.

use std::fmt::Write;

use super::super::{IndexEvent, Phase, Report};
use super::format;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
/// The plot area inside the margins (title and legend above, axis labels
/// left and below).
const LEFT: f64 = 80.0;
const RIGHT: f64 = WIDTH - 24.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = HEIGHT - 56.0;

const BASELINE_COLOR: &str = "#e6550d";
const AUTO_COLOR: &str = "#3182bd";
const CREATE_COLOR: &str = "#2ca02c";
const KEEP_COLOR: &str = "#8c8c8c";
const REVERT_COLOR: &str = "#d62728";

/// Decades the y axis may span: keeps a stray value from squashing the rest.
const MIN_EXP: i32 = -4;
const MAX_EXP: i32 = 7;

/// The whole SVG document.
pub fn render(r: &Report) -> String {
    let baseline = points(&r.baseline);
    let auto = points(&r.auto);
    let frame = Frame::fit(&[&baseline, &auto], &r.indexes);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"
    );
    title_and_legend(&mut svg, r);
    axes(&mut svg, &frame);
    series(&mut svg, &frame, &baseline, BASELINE_COLOR);
    series(&mut svg, &frame, &auto, AUTO_COLOR);
    for event in &r.indexes {
        marker(&mut svg, &frame, event);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The timeline points a log scale can show: finite, `t ≥ 0`, `ms > 0`.
fn points(p: &Phase) -> Vec<(f64, f64)> {
    p.timeline
        .iter()
        .copied()
        .filter(|&(t, ms)| t.is_finite() && ms.is_finite() && t >= 0.0 && ms > 0.0)
        .collect()
}

/// Maps data to pixels: x linear from 0 to `x_max` seconds, y logarithmic
/// over whole decades `10^lo ..= 10^hi` ms.
struct Frame {
    x_max: f64,
    x_step: f64,
    lo: i32,
    hi: i32,
}

impl Frame {
    /// A frame holding every point and event; a sane default when empty.
    fn fit(series: &[&[(f64, f64)]], events: &[IndexEvent]) -> Frame {
        let all = || series.iter().flat_map(|s| s.iter());
        let t_max = all()
            .map(|&(t, _)| t)
            .chain(events.iter().map(|e| e.at_s).filter(|t| t.is_finite()))
            .fold(1.0_f64, f64::max);
        let (x_max, x_step) = nice_axis(t_max);
        let decade = |ms: f64| ms.log10();
        let lo = all()
            .map(|&(_, ms)| decade(ms))
            .fold(f64::INFINITY, f64::min);
        let hi = all()
            .map(|&(_, ms)| decade(ms))
            .fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            // Float → int casts saturate, and the clamp bounds them anyway.
            (lo.floor() as i32, hi.ceil() as i32)
        } else {
            (0, 3)
        };
        let lo = lo.clamp(MIN_EXP, MAX_EXP - 1);
        let hi = hi.clamp(lo + 1, MAX_EXP);
        Frame {
            x_max,
            x_step,
            lo,
            hi,
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (t.clamp(0.0, self.x_max) / self.x_max) * (RIGHT - LEFT)
    }

    fn y(&self, ms: f64) -> f64 {
        let (lo, hi) = (f64::from(self.lo), f64::from(self.hi));
        let e = ms.log10().clamp(lo, hi);
        BOTTOM - (e - lo) / (hi - lo) * (BOTTOM - TOP)
    }
}

/// A round upper bound for `max` and a 1-2-5 tick step giving 4 to 10 ticks.
fn nice_axis(max: f64) -> (f64, f64) {
    let raw = max / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// The chart title and a legend row for the phases and event colours.
fn title_and_legend(svg: &mut String, r: &Report) {
    let title = format!(
        "p95 latency per second: {} vs {}",
        r.baseline.name, r.auto.name
    );
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"26\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        format::xml(&title)
    );
    let entries = [
        (r.baseline.name.as_str(), BASELINE_COLOR),
        (r.auto.name.as_str(), AUTO_COLOR),
        ("create", CREATE_COLOR),
        ("keep", KEEP_COLOR),
        ("revert / drop", REVERT_COLOR),
    ];
    let mut x = LEFT;
    for (label, color) in entries {
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"46\" x2=\"{:.1}\" y2=\"46\" stroke=\"{color}\" \
             stroke-width=\"3\"/><text x=\"{:.1}\" y=\"50\">{}</text>",
            x + 22.0,
            x + 28.0,
            format::xml(label)
        );
        // A rough width: 7 px per character at font-size 12.
        x += 28.0 + 7.0 * label.chars().count() as f64 + 20.0;
    }
}

/// Axes, grid lines, tick labels and axis titles.
fn axes(svg: &mut String, f: &Frame) {
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" \
         stroke=\"#333\"/>",
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let ticks = (f.x_max / f.x_step).round() as u32;
    for i in 0..=ticks {
        let t = f64::from(i) * f.x_step;
        let x = f.x(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{BOTTOM}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            BOTTOM + 16.0,
            trim_number(t)
        );
    }
    // Label every decade, or every other one when there are many.
    let every = if f.hi - f.lo > 8 { 2 } else { 1 };
    for e in (f.lo..=f.hi).step_by(every) {
        let y = f.y(10f64.powi(e));
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            decade_label(e)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since the phase started</text>",
        (LEFT + RIGHT) / 2.0,
        HEIGHT - 16.0
    );
    let (cx, cy) = (22.0, (TOP + BOTTOM) / 2.0);
    let _ = writeln!(
        svg,
        "<text x=\"{cx}\" y=\"{cy:.1}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {cx} {cy:.1})\">p95 latency (ms, log scale)</text>"
    );
}

/// One phase's timeline as a polyline (a dot when it has a single point).
fn series(svg: &mut String, f: &Frame, points: &[(f64, f64)], color: &str) {
    match points {
        [] => {}
        [(t, ms)] => {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                f.x(*t),
                f.y(*ms)
            );
        }
        _ => {
            let coords: Vec<String> = points
                .iter()
                .map(|&(t, ms)| format!("{:.1},{:.1}", f.x(t), f.y(ms)))
                .collect();
            let _ = writeln!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                coords.join(" ")
            );
        }
    }
}

/// An index event: a vertical line at `at_s` and its label along it.
fn marker(svg: &mut String, f: &Frame, e: &IndexEvent) {
    if !e.at_s.is_finite() {
        return;
    }
    let color = match e.action.as_str() {
        "create" => CREATE_COLOR,
        "revert" | "drop" => REVERT_COLOR,
        _ => KEEP_COLOR,
    };
    let x = f.x(e.at_s);
    let mut label = format!("{} {}({})", e.action, e.table, e.columns.join(", "));
    if let Some(tenant) = &e.tenant {
        let _ = write!(label, " [{tenant}]");
    }
    let (lx, ly) = (x - 4.0, TOP + 6.0);
    let _ = writeln!(
        svg,
        "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{BOTTOM}\" stroke=\"{color}\" \
         stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\
         <text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" fill=\"{color}\" text-anchor=\"end\" \
         paint-order=\"stroke\" stroke=\"white\" stroke-width=\"3\" transform=\"rotate(-90 {lx:.1} {ly:.1})\">{}</text>",
        format::xml(&label)
    );
}

/// `10^e` ms as a plain number: 0.01, 0.1, 1, 10, 100, ...
fn decade_label(e: i32) -> String {
    if e >= 0 {
        format!("{:.0}", 10f64.powi(e))
    } else {
        format!("{:.*}", e.unsigned_abs() as usize, 10f64.powi(e))
    }
}

/// A tick value without a useless `.0`.
fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
