//! The latency-over-time plot, written by hand as SVG: one dot per operation at (invocation
//! time, latency) on a log scale, colored by outcome, over shaded fault intervals.
//! Pure: takes points and faults, returns the document.

use crate::history::{Op, OpKind};
use crate::nemesis::{FaultRecord, NemesisKind};
use std::collections::HashMap;
use std::fmt::Write;

/// Plot size in pixels, and the margins that hold the axes.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 70.0;
/// Latency axis range (log scale), in milliseconds.
const MIN_MS: f64 = 0.1;
const MAX_MS: f64 = 10_000.0;
/// At most this many dots are drawn (evenly subsampled beyond), to keep the file small.
pub const MAX_POINTS: usize = 30_000;

/// One completed (or abandoned) operation.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPoint {
    /// Invocation time, ns since the run started.
    pub start_ns: u64,
    /// Completion time minus invocation time, ns.
    pub latency_ns: u64,
    /// How it completed.
    pub outcome: OpKind,
}

/// Pairs each invocation with its completion by process; invocations that never completed
/// are dropped (they have no latency).
pub fn latency_points(history: &[Op]) -> Vec<LatencyPoint> {
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut points = Vec::new();
    for op in history {
        let Some(time) = op.time_ns else { continue };
        match op.kind {
            OpKind::Invoke => {
                open.insert(op.process, time);
            }
            outcome => {
                if let Some(start) = open.remove(&op.process) {
                    points.push(LatencyPoint {
                        start_ns: start,
                        latency_ns: time.saturating_sub(start),
                        outcome,
                    });
                }
            }
        }
    }
    points
}

fn fault_color(kind: NemesisKind) -> &'static str {
    match kind {
        NemesisKind::Kill => "#f4a6a6",
        NemesisKind::Pause => "#f7d794",
        NemesisKind::Partition => "#a6c8f4",
        NemesisKind::PowerLoss => "#c9a6f4",
        NemesisKind::Member => "#a6f4c8",
    }
}

fn outcome_color(outcome: OpKind) -> &'static str {
    match outcome {
        OpKind::Ok => "#2a7d2a",
        OpKind::Fail => "#e08a00",
        OpKind::Info | OpKind::Invoke => "#d02020",
    }
}

/// Renders the plot. `duration_ns` is the length of the x axis.
pub fn latency_svg(points: &[LatencyPoint], faults: &[FaultRecord], duration_ns: u64) -> String {
    let duration = duration_ns.max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |ns: u64| LEFT + plot_w * (ns as f64 / duration).min(1.0);
    let y = |ns: u64| {
        let ms = (ns as f64 / 1e6).clamp(MIN_MS, MAX_MS);
        TOP + plot_h * (1.0 - (ms / MIN_MS).log10() / (MAX_MS / MIN_MS).log10())
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    for fault in faults {
        let end = fault.end_ns.unwrap_or(duration_ns);
        let (x0, x1) = (x(fault.start_ns), x(end));
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="{}" opacity="0.6"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            fault_color(fault.kind),
            escape(&format!("{}: {}", fault.fault, fault.detail))
        );
    }
    axes(&mut svg, plot_w, plot_h, duration, &y);
    let step = points.len().div_ceil(MAX_POINTS).max(1);
    for point in points.iter().step_by(step) {
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="1.5" fill="{}"/>"#,
            x(point.start_ns),
            y(point.latency_ns),
            outcome_color(point.outcome)
        );
    }
    legend(&mut svg);
    svg.push_str("</svg>\n");
    svg
}

fn axes(svg: &mut String, plot_w: f64, plot_h: f64, duration: f64, y: &dyn Fn(u64) -> f64) {
    let bottom = TOP + plot_h;
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let mut ms = MIN_MS;
    while ms <= MAX_MS {
        let py = y((ms * 1e6) as u64);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms} ms</text>"##,
            LEFT + plot_w,
            LEFT - 4.0,
            py + 4.0
        );
        ms *= 10.0;
    }
    let seconds = duration / 1e9;
    let tick = [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|t| seconds / t <= 12.0)
        .unwrap_or(600.0);
    let mut t = 0.0;
    while t <= seconds {
        let px = LEFT + plot_w * (t / seconds);
        let _ = writeln!(
            svg,
            r#"<line x1="{px:.1}" y1="{bottom}" x2="{px:.1}" y2="{:.1}" stroke="black"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{t}s</text>"#,
            bottom + 4.0,
            bottom + 16.0
        );
        t += tick;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="18" text-anchor="middle">latency per operation (log scale) over time since the run started</text>"#,
        LEFT + plot_w / 2.0
    );
}

fn legend(svg: &mut String) {
    let y = HEIGHT - 22.0;
    let mut x = LEFT;
    for (label, color) in [
        ("ok", OpKind::Ok),
        ("fail", OpKind::Fail),
        ("info (unknown)", OpKind::Info),
    ] {
        let _ = writeln!(
            svg,
            r#"<circle cx="{x}" cy="{:.1}" r="4" fill="{}"/><text x="{}" y="{y}">{label}</text>"#,
            y - 4.0,
            outcome_color(color),
            x + 8.0
        );
        x += 110.0;
    }
    for kind in [
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
        NemesisKind::PowerLoss,
        NemesisKind::Member,
    ] {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{:.1}" width="14" height="10" fill="{}"/><text x="{}" y="{y}">{kind:?}</text>"#,
            y - 9.0,
            fault_color(kind),
            x + 18.0
        );
        x += 100.0;
    }
}

/// Escapes text for SVG/HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Latencies pair invocations with completions per process and skip open invocations.
    #[test]
    fn points_pair_by_process() {
        let mut ops = vec![
            Op::new(0, OpKind::Invoke, "read", None, json!(null)),
            Op::new(1, OpKind::Invoke, "write", None, json!(1)),
            Op::new(0, OpKind::Ok, "read", None, json!(null)),
            Op::new(2, OpKind::Invoke, "write", None, json!(2)),
            Op::new(1, OpKind::Info, "write", None, json!(null)),
        ];
        for (i, op) in ops.iter_mut().enumerate() {
            op.time_ns = Some(i as u64 * 1000);
        }
        let points = latency_points(&ops);
        assert_eq!(points.len(), 2);
        assert_eq!((points[0].start_ns, points[0].latency_ns), (0, 2000));
        assert_eq!(points[1].outcome, OpKind::Info);
    }

    /// The plot shades each fault with its description and draws one dot per point.
    #[test]
    fn svg_has_fault_bands_and_dots() {
        let fault = FaultRecord {
            kind: NemesisKind::Partition,
            fault: "partition: isolate m1".into(),
            detail: "m1 drops [m0 & m2]".into(),
            start_ns: 1_000_000_000,
            end_ns: Some(3_000_000_000),
            error: None,
        };
        let point = LatencyPoint {
            start_ns: 500,
            latency_ns: 2_000_000,
            outcome: OpKind::Ok,
        };
        let svg = latency_svg(&[point.clone(), point], &[fault], 10_000_000_000);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("m1 drops [m0 &amp; m2]"));
        assert_eq!(
            svg.matches("<circle cx").count(),
            2 + 3,
            "two dots and three legend dots"
        );
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
