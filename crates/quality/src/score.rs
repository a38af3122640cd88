//! Scoring an anomaly detector on labelled series: `heal quality detect-eval`.
//!
//! A corpus is a directory with a `labels.json` that maps each series file (a path relative to
//! the directory, CSV as `heal quality detect` reads it) to its labelled anomaly windows, each
//! a pair of timestamps `[start, end]`; a series with an empty list is clean. Every flag inside
//! a window is a hit, every other flag a false alarm.
//!
//! Measured per series and over the corpus:
//! - **window recall**: share of windows with at least one flag inside;
//! - **flag precision**: share of flags inside a window;
//! - **episode precision**: flags close together (at most [`EPISODE_GAP_STEPS`] steps apart)
//!   form one episode, the unit an operator sees; share of episodes that touch a window;
//! - **F1** of window recall with each precision;
//! - **delay**: from a window's start to its first flag, as a share of the window's length.
//!
//! The same measures are taken of a naive rolling z-score ([`naive_zscore`]) in the same run,
//! so that a figure always has its reference beside it.

use crate::series::Point;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Flags at most this many grid steps apart belong to one episode.
pub const EPISODE_GAP_STEPS: i64 = 3;

/// A labelled anomaly window (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t <= self.end
    }
}

/// What one detector achieved on one series (or, summed, on a corpus).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    pub windows: usize,
    pub windows_found: usize,
    pub flags: usize,
    pub flags_inside: usize,
    pub episodes: usize,
    pub episodes_inside: usize,
    /// Delay of each found window, as a share of its length (0: flagged at its start).
    #[serde(skip)]
    pub delays: Vec<f64>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn f1(p: Option<f64>, r: Option<f64>) -> Option<f64> {
    match (p, r) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    }
}

impl Score {
    pub fn recall(&self) -> Option<f64> {
        ratio(self.windows_found, self.windows)
    }
    pub fn flag_precision(&self) -> Option<f64> {
        ratio(self.flags_inside, self.flags)
    }
    pub fn episode_precision(&self) -> Option<f64> {
        ratio(self.episodes_inside, self.episodes)
    }
    pub fn f1_flags(&self) -> Option<f64> {
        f1(self.flag_precision(), self.recall())
    }
    pub fn f1_episodes(&self) -> Option<f64> {
        f1(self.episode_precision(), self.recall())
    }
    /// Median delay as a share of the window's length.
    pub fn median_delay(&self) -> Option<f64> {
        if self.delays.is_empty() {
            return None;
        }
        let mut d = self.delays.clone();
        d.sort_by(f64::total_cmp);
        Some(d[d.len() / 2])
    }

    pub fn add(&mut self, o: &Score) {
        self.windows += o.windows;
        self.windows_found += o.windows_found;
        self.flags += o.flags;
        self.flags_inside += o.flags_inside;
        self.episodes += o.episodes;
        self.episodes_inside += o.episodes_inside;
        self.delays.extend_from_slice(&o.delays);
    }

    /// The figures as JSON, derived ratios included.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "windows": self.windows,
            "windows_found": self.windows_found,
            "flags": self.flags,
            "flags_inside": self.flags_inside,
            "episodes": self.episodes,
            "episodes_inside": self.episodes_inside,
            "window_recall": self.recall(),
            "flag_precision": self.flag_precision(),
            "episode_precision": self.episode_precision(),
            "f1_flags": self.f1_flags(),
            "f1_episodes": self.f1_episodes(),
            "median_delay_share": self.median_delay(),
        })
    }
}

/// Scores flags (their times, in order or not) against the windows of one series whose grid
/// step is `step`.
pub fn score(flags: &[DateTime<Utc>], windows: &[Window], step: Duration) -> Score {
    let mut flags = flags.to_vec();
    flags.sort();
    let inside = |t: DateTime<Utc>| windows.iter().any(|w| w.contains(t));
    let mut s = Score {
        windows: windows.len(),
        flags: flags.len(),
        flags_inside: flags.iter().filter(|t| inside(**t)).count(),
        ..Score::default()
    };
    for w in windows {
        if let Some(first) = flags.iter().find(|t| w.contains(**t)) {
            s.windows_found += 1;
            let len = (w.end - w.start).num_seconds().max(1) as f64;
            s.delays.push((*first - w.start).num_seconds() as f64 / len);
        }
    }
    let gap = step * EPISODE_GAP_STEPS as i32;
    let mut i = 0;
    while i < flags.len() {
        let mut j = i;
        while j + 1 < flags.len() && flags[j + 1] - flags[j] <= gap {
            j += 1;
        }
        s.episodes += 1;
        if flags[i..=j].iter().any(|t| inside(*t)) {
            s.episodes_inside += 1;
        }
        i = j + 1;
    }
    s
}

/// The median spacing of the points (at least a second).
pub fn median_step(points: &[Point]) -> Duration {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.at);
    Duration::seconds(crate::detect::median_spacing(&sorted))
}

/// The reference: a point is flagged when it lies more than `threshold` standard deviations
/// from the mean of the `window` points before it (judged once `window` points exist).
pub fn naive_zscore(points: &[Point], window: usize, threshold: f64) -> Vec<DateTime<Utc>> {
    let mut pts = points.to_vec();
    pts.sort_by_key(|p| p.at);
    let mut out = Vec::new();
    let (mut sum, mut sum2) = (0.0f64, 0.0f64);
    for (i, p) in pts.iter().enumerate() {
        if i >= window {
            let n = window as f64;
            let mean = sum / n;
            let var = (sum2 / n - mean * mean).max(0.0);
            let sd = var.sqrt();
            if sd > 0.0 && ((p.value - mean) / sd).abs() > threshold {
                out.push(p.at);
            }
            let old = pts[i - window].value;
            sum -= old;
            sum2 -= old * old;
        }
        sum += p.value;
        sum2 += p.value * p.value;
    }
    out
}

/// Why a corpus cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {reason}")]
    Labels { path: String, reason: String },
}

/// Reads `labels.json`: series path → windows.
pub fn parse_labels(path: &str, text: &str) -> Result<Vec<(String, Vec<Window>)>, CorpusError> {
    let bad = |reason: String| CorpusError::Labels {
        path: path.to_string(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("expected an object of series path → [[start, end], …]".into()))?;
    let mut out = Vec::new();
    for (name, windows) in obj {
        let list = windows
            .as_array()
            .ok_or_else(|| bad(format!("{name}: expected a list of [start, end] pairs")))?;
        let mut ws = Vec::new();
        for (k, w) in list.iter().enumerate() {
            let pair = w
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| bad(format!("{name}[{k}]: expected a pair [start, end]")))?;
            let t = |x: &serde_json::Value| {
                x.as_str()
                    .and_then(crate::series::parse_time)
                    .ok_or_else(|| bad(format!("{name}[{k}]: {x} is not a timestamp")))
            };
            let (start, end) = (t(&pair[0])?, t(&pair[1])?);
            if end < start {
                return Err(bad(format!(
                    "{name}[{k}]: the window ends before it starts"
                )));
            }
            ws.push(Window { start, end });
        }
        out.push((name.clone(), ws));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
    }

    #[test]
    fn flags_episodes_and_delay_are_counted_against_windows() {
        let windows = [
            Window {
                start: t(10),
                end: t(20),
            },
            Window {
                start: t(50),
                end: t(60),
            },
        ];
        // One episode of three flags in the first window (from hour 15), one false alarm
        // episode of two flags, one lone false alarm; the second window is missed.
        let flags = [t(15), t(16), t(17), t(30), t(31), t(40)];
        let s = score(&flags, &windows, Duration::hours(1));
        assert_eq!((s.windows, s.windows_found), (2, 1));
        assert_eq!((s.flags, s.flags_inside), (6, 3));
        assert_eq!((s.episodes, s.episodes_inside), (3, 1));
        assert_eq!(s.recall(), Some(0.5));
        assert_eq!(s.flag_precision(), Some(0.5));
        assert!((s.episode_precision().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.median_delay(), Some(0.5));
        assert!((s.f1_episodes().unwrap() - 0.4).abs() < 1e-12);
        // Nothing flagged: recall 0, precision undefined.
        let none = score(&[], &windows, Duration::hours(1));
        assert_eq!(none.recall(), Some(0.0));
        assert_eq!(none.flag_precision(), None);
    }

    #[test]
    fn the_naive_zscore_flags_a_jump_after_its_window() {
        let mut pts: Vec<Point> = (0..400)
            .map(|i| Point {
                at: t(i),
                value: 10.0 + (i % 5) as f64,
            })
            .collect();
        pts[350].value = 100.0;
        pts[100].value = 100.0; // inside the first window: not judged
        assert_eq!(naive_zscore(&pts, 288, 4.0), vec![t(350)]);
    }

    #[test]
    fn labels_are_read_and_mistakes_named() {
        let l = parse_labels(
            "labels.json",
            r#"{"b.csv": [], "a.csv": [["2026-01-01 10:00:00", "2026-01-01T20:00:00Z"]]}"#,
        )
        .unwrap();
        assert_eq!(l[0].0, "a.csv");
        assert_eq!(l[0].1[0].end, t(20));
        assert!(l[1].1.is_empty());
        let e = parse_labels("labels.json", r#"{"a.csv": [["x", "y"]]}"#).unwrap_err();
        assert!(e.to_string().contains("a.csv[0]"), "{e}");
        let e = parse_labels("l", r#"{"a.csv": [["2026-01-02", "2026-01-01"]]}"#).unwrap_err();
        assert!(e.to_string().contains("ends before"), "{e}");
    }
}
