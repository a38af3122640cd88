//! Pictures drawn on the server as SVG: sparklines with a baseline band, a metric's history
//! with its band and flagged windows, and a lineage graph laid out left to right. Every
//! picture carries a text alternative; the page beside it has the numbers as a table.

use crate::layout;
use maud::{html, Markup, PreEscaped};
use std::fmt::Write;

/// A small line chart of `values` (gaps allowed) over a `band` of (low, high) per point, with
/// the points in `mark` (a range of indexes) shaded: an incident's span, say.
pub fn sparkline(
    label: &str,
    values: &[Option<f64>],
    band: &[Option<(f64, f64)>],
    mark: Option<(usize, usize)>,
) -> Markup {
    let (w, h, pad) = (160.0, 40.0, 3.0);
    let all = values
        .iter()
        .flatten()
        .copied()
        .chain(band.iter().flatten().flat_map(|(a, b)| [*a, *b]));
    let (lo, hi) = bounds(all);
    let n = values.len().max(band.len()).max(2);
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let mut s = String::new();
    if let Some((a, b)) = mark {
        let (x0, x1) = (x(a.min(n - 1)) - 2.0, x(b.min(n - 1)) + 2.0);
        let _ = write!(
            s,
            r#"<rect class="mark" x="{x0:.1}" y="0" width="{:.1}" height="{h}"/>"#,
            (x1 - x0).max(2.0)
        );
    }
    s.push_str(&band_path(band, &x, &y));
    s.push_str(&line_path(values, &x, &y, "line"));
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, v)| v.map(|v| (i, v)))
    {
        let _ = write!(
            s,
            r#"<circle class="last" cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
            x(i),
            y(v)
        );
    }
    html! {
        svg.spark viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="img" aria-label=(label) {
            title { (label) }
            (PreEscaped(s))
        }
    }
}

/// One window of a check's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub label: String,
    pub metric: Option<f64>,
    pub band: Option<(f64, f64)>,
    pub flagged: bool,
}

/// A metric over time with its expected band; flagged windows are drawn as red dots.
pub fn history(label: &str, windows: &[Window]) -> Markup {
    let (w, h, left, pad) = (900.0, 260.0, 60.0, 16.0);
    let (lo, hi) = bounds(windows.iter().flat_map(|p| {
        p.metric
            .into_iter()
            .chain(p.band.into_iter().flat_map(|(a, b)| [a, b]))
    }));
    let n = windows.len().max(2);
    let x = |i: usize| left + (w - left - pad) * i as f64 / (n - 1) as f64;
    let y = |v: f64| h - 28.0 - (h - 28.0 - pad) * (v - lo) / (hi - lo);
    let mut s = String::new();
    for t in 0..=4 {
        let v = lo + (hi - lo) * t as f64 / 4.0;
        let _ = write!(
            s,
            r#"<line class="grid" x1="{left}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - pad,
            left - 6.0,
            y(v) + 4.0,
            short_number(v),
            yy = y(v)
        );
    }
    let bands: Vec<Option<(f64, f64)>> = windows.iter().map(|p| p.band).collect();
    s.push_str(&band_path(&bands, &x, &y));
    let values: Vec<Option<f64>> = windows.iter().map(|p| p.metric).collect();
    s.push_str(&line_path(&values, &x, &y, "line"));
    for (i, p) in windows.iter().enumerate() {
        if let (true, Some(v)) = (p.flagged, p.metric) {
            let _ = write!(
                s,
                r#"<circle class="flag" cx="{:.1}" cy="{:.1}" r="4"><title>{}: {} (flagged)</title></circle>"#,
                x(i),
                y(v),
                esc(&p.label),
                short_number(v)
            );
        }
    }
    let ticks = 6.min(windows.len());
    for t in 0..ticks {
        let i = if ticks < 2 {
            0
        } else {
            t * (windows.len() - 1) / (ticks - 1)
        };
        let _ = write!(
            s,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(i),
            h - 8.0,
            esc(&windows[i].label)
        );
    }
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) preserveAspectRatio="xMidYMid meet" role="img" aria-label=(label) {
            title { (label) }
            (PreEscaped(s))
        }
    }
}

/// A node of a drawn graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GNode {
    pub key: String,
    pub label: String,
    pub kind: String,
    /// CSS classes for its state: `failing`, `root`, `blast`, `focus`.
    pub state: Vec<&'static str>,
    pub href: String,
}

/// Column width and row height of a drawn graph.
const COL: f64 = 210.0;
const ROW: f64 = 46.0;
const NODE_W: f64 = 170.0;
const NODE_H: f64 = 30.0;

/// A graph laid out in layers, left to right; `highlight` edges (by index) are drawn bold.
pub fn graph(label: &str, nodes: &[GNode], edges: &[(usize, usize)], highlight: &[bool]) -> Markup {
    let l = layout::layered(nodes.len(), edges);
    let w = (l.layers.max(1) as f64) * COL + 20.0;
    let h = (l.rows.max(1) as f64) * ROW + 20.0;
    // Each layer is centred vertically.
    let mut per_layer = vec![0usize; l.layers.max(1)];
    for &ly in &l.layer {
        per_layer[ly] += 1;
    }
    let pos = |v: usize| {
        let off = (l.rows - per_layer[l.layer[v]]) as f64 * ROW / 2.0;
        (
            10.0 + l.layer[v] as f64 * COL,
            10.0 + off + l.row[v] as f64 * ROW,
        )
    };
    let mut s = String::new();
    for (i, &(a, b)) in edges.iter().enumerate() {
        if a >= nodes.len() || b >= nodes.len() {
            continue;
        }
        let ((ax, ay), (bx, by)) = (pos(a), pos(b));
        let (x1, y1, x2, y2) = (ax + NODE_W, ay + NODE_H / 2.0, bx, by + NODE_H / 2.0);
        let mid = (x1 + x2) / 2.0;
        let class = if highlight.get(i).copied().unwrap_or(false) {
            "edge hot"
        } else {
            "edge"
        };
        let _ = write!(
            s,
            r#"<path class="{class}" d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}" marker-end="url(#arrow)"/>"#
        );
    }
    for (v, n) in nodes.iter().enumerate() {
        let (x, y) = pos(v);
        let mut class = format!("node {}", n.kind);
        for st in &n.state {
            class.push(' ');
            class.push_str(st);
        }
        let text: String = if n.label.chars().count() > 24 {
            format!("{}…", n.label.chars().take(23).collect::<String>())
        } else {
            n.label.clone()
        };
        let state = if n.state.is_empty() {
            String::new()
        } else {
            format!(" ({})", n.state.join(", "))
        };
        let _ = write!(
            s,
            r#"<a href="{href}" class="{class}" data-key="{key}"><title>{kind} {full}{state}</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="6"/><text x="{tx:.1}" y="{ty:.1}">{text}</text></a>"#,
            href = esc(&n.href),
            key = esc(&n.key),
            kind = esc(&n.kind),
            full = esc(&n.label),
            text = esc(&text),
            tx = x + 8.0,
            ty = y + 19.0,
        );
    }
    html! {
        svg.graph viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="group" aria-label=(label) {
            title { (label) }
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            (PreEscaped(s))
        }
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    let m = (hi - lo) * 0.05;
    (lo - m, hi + m)
}

fn line_path(
    values: &[Option<f64>],
    x: &impl Fn(usize) -> f64,
    y: &impl Fn(f64) -> f64,
    class: &str,
) -> String {
    let mut d = String::new();
    let mut pen = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if pen { "L" } else { "M" },
                    x(i),
                    y(*v)
                );
                pen = true;
            }
            _ => pen = false,
        }
    }
    if d.is_empty() {
        return String::new();
    }
    format!(r#"<path class="{class}" d="{}"/>"#, d.trim_end())
}

/// The band as one polygon per unbroken run of points that have one.
fn band_path(
    band: &[Option<(f64, f64)>],
    x: &impl Fn(usize) -> f64,
    y: &impl Fn(f64) -> f64,
) -> String {
    let mut s = String::new();
    let mut run: Vec<(usize, f64, f64)> = Vec::new();
    let flush = |run: &mut Vec<(usize, f64, f64)>, s: &mut String| {
        if run.len() >= 2 {
            let mut d = String::new();
            for (k, (i, _, hi)) in run.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if k == 0 { "M" } else { "L" },
                    x(*i),
                    y(*hi)
                );
            }
            for (i, lo, _) in run.iter().rev() {
                let _ = write!(d, "L{:.1},{:.1} ", x(*i), y(*lo));
            }
            let _ = write!(s, r#"<path class="band" d="{}Z"/>"#, d);
        }
        run.clear();
    };
    for (i, b) in band.iter().enumerate() {
        match b {
            Some((lo, hi)) if lo.is_finite() && hi.is_finite() => run.push((i, *lo, *hi)),
            _ => flush(&mut run, &mut s),
        }
    }
    flush(&mut run, &mut s);
    s
}

/// A number as people read it on an axis: 1.2k, 3.4M, 0.97.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Escapes text for SVG written by hand.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_breaks_its_line_at_gaps_and_draws_the_band() {
        let s = sparkline(
            "revenue",
            &[Some(1.0), Some(2.0), None, Some(3.0)],
            &[Some((0.5, 1.5)), Some((1.0, 3.0)), None, None],
            Some((1, 2)),
        )
        .into_string();
        assert_eq!(s.matches(" M").count() + s.matches("\"M").count(), 3, "{s}");
        assert!(s.contains(r#"class="band""#));
        assert!(s.contains(r#"class="mark""#));
        assert!(s.contains("<title>revenue</title>"));
    }

    #[test]
    fn history_marks_flagged_windows_only() {
        let w = |m: f64, f: bool| Window {
            label: "t".into(),
            metric: Some(m),
            band: Some((0.0, 10.0)),
            flagged: f,
        };
        let s = history(
            "orders volume",
            &[w(5.0, false), w(50.0, true), w(4.0, false)],
        )
        .into_string();
        assert_eq!(s.matches(r#"class="flag""#).count(), 1);
    }

    #[test]
    fn graph_text_is_escaped_and_long_labels_are_cut() {
        let n = |k: &str| GNode {
            key: k.into(),
            label: k.into(),
            kind: "dataset".into(),
            state: vec!["failing"],
            href: format!("/lineage?focus={k}&x=1"),
        };
        let s = graph(
            "g",
            &[n("<script>"), n("a_very_long_dataset_name_that_goes_on")],
            &[(0, 1)],
            &[true],
        )
        .into_string();
        assert!(!s.contains("<script>"));
        assert!(s.contains("&lt;script&gt;"));
        assert!(s.contains("&amp;x=1"));
        assert!(s.contains("a_very_long_dataset_nam…"));
        assert!(s.contains("edge hot"));
    }

    #[test]
    fn numbers_read_short() {
        assert_eq!(short_number(1_234_567.0), "1.2M");
        assert_eq!(short_number(12_345.0), "12.3k");
        assert_eq!(short_number(0.5), "0.500");
        assert_eq!(short_number(0.0), "0");
    }
}
