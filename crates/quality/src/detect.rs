//! Anomaly detection on a metric's history against a seasonal baseline.
//!
//! 1. The series is put on a regular grid: the step is the median spacing of the points,
//!    points falling in one step are averaged, steps without a point stay empty.
//! 2. The period (in steps) is inferred from the autocorrelation of the series: the shortest
//!    strong repeating lag (at least 80 % as strong as the strongest), snapped to a day or a
//!    week when it is within 2 % of one. A period can also be given.
//! 3. Each point is compared with the same phase in earlier cycles (the `window_cycles` before
//!    it: hour-of-day for hourly data with a daily period, hour-of-week with a weekly one).
//!    The seasonal value is their median, scaled by the current level: recent values against
//!    their own seasonal values, half of the measured shift applied, so that a weekend or
//!    growth moves the baseline while a few noisy points barely do.
//! 4. The noise is what the detector has seen: the spread of the residuals (value minus its
//!    baseline) of the same phase and its three neighbours on each side in the earlier cycles
//!    (root mean square, residuals beyond 3.5 robust standard deviations left out),
//!    so it follows noise that grows with the level and includes the baseline's own error.
//!    A point is flagged when `(value − expected) / noise` exceeds `sensitivity`
//!    in either direction (a spike or a drop). Flagged points do not feed the noise or the
//!    level, so an outage does not hide the next one.
//! 5. Warm-up: a phase needs `warmup_cycles` earlier cycles for a baseline, and 12 residuals
//!    around it for a noise estimate; until then its points are learned from, not judged.
//!    Without a period, the previous points form the baseline and the noise.
//!
//! Only earlier points judge a point: what the detector says about a moment is what it would
//! have said at that moment.

use crate::series::Point;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::VecDeque;

/// How the detector judges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Robust score above which a point is flagged; higher flags less.
    pub sensitivity: f64,
    /// Period in grid steps; `None`: inferred from the series.
    pub period: Option<usize>,
    /// Earlier cycles that form the baseline of a phase (the training window).
    pub window_cycles: usize,
    /// Earlier cycles a phase needs before its points are judged (the warm-up).
    pub warmup_cycles: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sensitivity: 5.0,
            period: None,
            window_cycles: 8,
            warmup_cycles: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Spike,
    Drop,
}

/// A point judged anomalous.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub at: DateTime<Utc>,
    pub value: f64,
    pub expected: f64,
    /// The band the value was expected in (`expected ± sensitivity · spread`).
    pub lower: f64,
    pub upper: f64,
    /// Robust score: distance from the expected value in units of spread (signed).
    pub score: f64,
    pub direction: Direction,
}

/// What the detector found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub points: usize,
    /// The grid step (median spacing), in seconds.
    pub step_secs: i64,
    /// The period in steps, when the series has one.
    pub period: Option<usize>,
    pub period_secs: Option<i64>,
    /// True when the period was inferred rather than given.
    pub period_inferred: bool,
    /// Points before this time were not judged (warm-up).
    pub warmup_until: Option<DateTime<Utc>>,
    /// Points judged.
    pub judged: usize,
    pub sensitivity: f64,
    pub flags: Vec<Flag>,
    /// The times of the points judged (each phase warms up on its own).
    #[serde(skip)]
    pub judged_at: Vec<DateTime<Utc>>,
}

/// Why a series cannot be judged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DetectError {
    #[error("the points span {span_secs} s at a typical spacing of {step_secs} s: {steps} steps for {points} points; is a timestamp far off (a wrong year)?")]
    Sparse {
        span_secs: i64,
        step_secs: i64,
        steps: u64,
        points: usize,
    },
}

/// A series on a regular grid: start, step in seconds, one value (or none) per step.
pub type Grid = (DateTime<Utc>, i64, Vec<Option<f64>>);

/// The regular grid of `points`. Refused when it would be mostly empty (more than 100 steps
/// per point).
pub fn regularize(points: &[Point]) -> Result<Grid, DetectError> {
    let mut pts: Vec<Point> = points.to_vec();
    pts.sort_by_key(|p| p.at);
    let start = pts[0].at;
    let mut gaps: Vec<i64> = pts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_seconds())
        .filter(|g| *g > 0)
        .collect();
    gaps.sort_unstable();
    let median_gap = gaps.get(gaps.len() / 2).copied().unwrap_or(1).max(1);
    // Clock-like steps win when the median spacing is within 10 % of one (jittered readings).
    let step = [
        1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
    ]
    .into_iter()
    .find(|n| (median_gap - n).abs() * 10 <= *n)
    .unwrap_or(median_gap);
    let span = (pts[pts.len() - 1].at - start).num_seconds();
    let steps = (span as f64 / step as f64).round() as u64 + 1;
    if steps > 100 * pts.len() as u64 + 1000 {
        return Err(DetectError::Sparse {
            span_secs: span,
            step_secs: step,
            steps,
            points: pts.len(),
        });
    }
    let n = steps as usize;
    let mut sum = vec![0.0; n];
    let mut count = vec![0u32; n];
    for p in &pts {
        let i = (((p.at - start).num_seconds() as f64) / step as f64).round() as usize;
        sum[i] += p.value;
        count[i] += 1;
    }
    let grid = sum
        .into_iter()
        .zip(count)
        .map(|(s, c)| (c > 0).then(|| s / c as f64))
        .collect();
    Ok((start, step, grid))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The period (in steps) of a gridded series, if it has a clear one.
pub fn infer_period(grid: &[Option<f64>], step_secs: i64) -> Option<usize> {
    let n = grid.len();
    if n < 16 {
        return None;
    }
    // Fill gaps linearly (edges: nearest value).
    let mut x: Vec<f64> = Vec::with_capacity(n);
    let known: Vec<(usize, f64)> = grid
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if known.len() < 16 {
        return None;
    }
    let mut k = 0;
    for i in 0..n {
        while k + 1 < known.len() && known[k + 1].0 <= i {
            k += 1;
        }
        let (i0, v0) = known[k];
        let v = if i <= i0 || k + 1 == known.len() {
            v0
        } else {
            let (i1, v1) = known[k + 1];
            v0 + (v1 - v0) * (i - i0) as f64 / (i1 - i0) as f64
        };
        x.push(v);
    }
    // Remove a linear trend so that growth does not look like correlation at every lag.
    let nf = n as f64;
    let mean_t = (nf - 1.0) / 2.0;
    let mean_x = x.iter().sum::<f64>() / nf;
    let cov: f64 = x
        .iter()
        .enumerate()
        .map(|(t, v)| (t as f64 - mean_t) * (v - mean_x))
        .sum();
    let var_t: f64 = (0..n).map(|t| (t as f64 - mean_t).powi(2)).sum();
    let slope = cov / var_t;
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(t, v)| v - mean_x - slope * (t as f64 - mean_t))
        .collect();
    let var: f64 = y.iter().map(|v| v * v).sum::<f64>() / nf;
    if var <= f64::EPSILON {
        return None;
    }
    let max_lag = (n / 2).min(5000);
    let acf: Vec<f64> = (0..=max_lag)
        .map(|lag| {
            if lag == 0 {
                return 1.0;
            }
            let s: f64 = (0..n - lag).map(|t| y[t] * y[t + lag]).sum();
            s / (n - lag) as f64 / var
        })
        .collect();
    let peaks: Vec<usize> = (2..max_lag)
        .filter(|&l| acf[l] > 0.3 && acf[l] > acf[l - 1] && acf[l] >= acf[l + 1])
        .collect();
    let best = peaks.iter().map(|&l| acf[l]).fold(f64::MIN, f64::max);
    let lag = *peaks.iter().find(|&&l| acf[l] >= 0.8 * best)?;
    // Calendar periods win when they are this close.
    for calendar in [86_400i64, 604_800] {
        if calendar % step_secs == 0 {
            let c = (calendar / step_secs) as usize;
            if c <= max_lag && lag.abs_diff(c) <= (c / 50).max(1) {
                return Some(c);
            }
        }
    }
    Some(lag)
}

/// Judges every point of `points` against its seasonal baseline.
pub fn detect(points: &[Point], settings: &Settings) -> Result<Detection, DetectError> {
    let sensitivity = settings.sensitivity;
    if points.is_empty() {
        return Ok(Detection {
            points: 0,
            step_secs: 0,
            period: None,
            period_secs: None,
            period_inferred: false,
            warmup_until: None,
            judged: 0,
            sensitivity,
            flags: vec![],
            judged_at: vec![],
        });
    }
    let (start, step, grid) = regularize(points)?;
    let (period, inferred) = match settings.period {
        Some(p) if p >= 2 => (Some(p), false),
        _ => (infer_period(&grid, step), true),
    };
    let window = settings.window_cycles.max(1);
    let fallback_len = period.unwrap_or(24).max(24);
    // Residual of each earlier unflagged point against its own baseline: the noise the
    // detector has actually seen, phase by phase (baseline error included).
    let mut residuals: Vec<Option<f64>> = vec![None; grid.len()];
    let mut recent: VecDeque<f64> = VecDeque::with_capacity(fallback_len);
    let mut level_window: VecDeque<(f64, f64)> = VecDeque::with_capacity(LEVEL_POINTS);
    let mut flags = Vec::new();
    let mut judged = 0;
    let mut judged_at = Vec::new();
    let mut first_judged: Option<usize> = None;
    for (i, v) in grid.iter().enumerate() {
        let Some(value) = *v else { continue };
        let prior: Vec<f64> = match period {
            Some(p) => (1..=window)
                .filter_map(|k| i.checked_sub(k * p).and_then(|j| grid[j]))
                .collect(),
            None => (1..=window * 3)
                .filter_map(|k| i.checked_sub(k).and_then(|j| grid[j]))
                .collect(),
        };
        let needed = match period {
            Some(_) => settings.warmup_cycles.max(1),
            None => 8,
        };
        if prior.len() < needed {
            continue;
        }
        let seasonal = median(&mut prior.clone());
        // The level: recent values against their seasonal baselines, as a ratio (half the
        // measured shift: a real shift such as a weekend is mostly followed, noise in the few
        // points measured mostly ignored).
        let (sum_v, sum_e) = level_window
            .iter()
            .fold((0.0, 0.0), |(a, b), (v, e)| (a + v, b + e));
        let ratio = if period.is_some() && level_window.len() >= 3 && sum_e > 0.0 && sum_v > 0.0 {
            1.0 + 0.5 * ((sum_v / sum_e).clamp(0.2, 5.0) - 1.0)
        } else {
            1.0
        };
        let expected = seasonal * ratio;
        let residual = value - expected;
        // Noise: residuals of this phase and its neighbours (±3) in earlier cycles,
        // or of the recent points when the series has no period.
        let mut pooled: Vec<f64> = match period {
            Some(p) => (1..=window)
                .flat_map(|k| (-3i64..=3).map(move |o| i as i64 - (k * p) as i64 + o))
                .filter(|j| *j >= 0 && (*j as usize) < i)
                .filter_map(|j| residuals[j as usize])
                .collect(),
            None => recent.iter().copied().collect(),
        };
        if pooled.len() < MIN_NOISE_SAMPLES {
            // Not enough seen yet to know the noise: learn, do not judge.
            residuals[i] = Some(residual);
            push(&mut recent, residual, fallback_len);
            push_level(&mut level_window, value, seasonal);
            continue;
        }
        let floor = 1e-9 * expected.abs().max(1.0);
        let sigma = noise(&mut pooled).max(floor);
        let score = residual / sigma;
        judged += 1;
        judged_at.push(start + Duration::seconds(step * i as i64));
        first_judged.get_or_insert(i);
        if score.abs() > sensitivity {
            flags.push(Flag {
                at: start + Duration::seconds(step * i as i64),
                value,
                expected,
                lower: expected - sensitivity * sigma,
                upper: expected + sensitivity * sigma,
                score,
                direction: if score > 0.0 {
                    Direction::Spike
                } else {
                    Direction::Drop
                },
            });
        } else {
            residuals[i] = Some(residual);
            push(&mut recent, residual, fallback_len);
            push_level(&mut level_window, value, seasonal);
        }
    }
    Ok(Detection {
        points: points.len(),
        step_secs: step,
        period,
        period_secs: period.map(|p| p as i64 * step),
        period_inferred: inferred,
        warmup_until: first_judged.map(|i| start + Duration::seconds(step * i as i64)),
        judged,
        sensitivity,
        flags,
        judged_at,
    })
}

/// The spread of residuals: their root mean square after leaving out those beyond 3.5 robust
/// standard deviations (from the median absolute residual), which keeps most of the precision
/// of a standard deviation without letting one outlier inflate it.
fn noise(residuals: &mut [f64]) -> f64 {
    let mut abs: Vec<f64> = residuals.iter().map(|r| r.abs()).collect();
    let robust = 1.4826 * median(&mut abs);
    let kept: Vec<f64> = residuals
        .iter()
        .copied()
        .filter(|r| r.abs() <= 3.5 * robust)
        .collect();
    if kept.is_empty() {
        return robust;
    }
    (kept.iter().map(|r| r * r).sum::<f64>() / kept.len() as f64).sqrt()
}

/// Recent points that set the level.
const LEVEL_POINTS: usize = 12;
/// Residuals needed before the noise of a phase is known.
const MIN_NOISE_SAMPLES: usize = 12;

fn push_level(w: &mut VecDeque<(f64, f64)>, value: f64, seasonal: f64) {
    if w.len() == LEVEL_POINTS {
        w.pop_front();
    }
    w.push_back((value, seasonal));
}

fn push(recent: &mut VecDeque<f64>, r: f64, cap: usize) {
    if recent.len() == cap {
        recent.pop_front();
    }
    recent.push_back(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Hourly traffic with a daily cycle and noise that grows with the level, like event
    /// counts; with `weekend`, Saturdays and Sundays run 15 % lower.
    fn traffic_with(days: usize, seed: u64, weekend: bool) -> Vec<Point> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let start: DateTime<Utc> = "2026-03-02T00:00:00Z".parse().unwrap();
        (0..days * 24)
            .map(|h| {
                let hour = (h % 24) as f64;
                let weekday = (h / 24) % 7;
                let daily = 1000.0 + 700.0 * (std::f64::consts::TAU * (hour - 15.0) / 24.0).cos();
                let weekly = if weekend && weekday >= 5 { 0.85 } else { 1.0 };
                let mean = daily * weekly;
                let noise = Normal::new(0.0, mean.sqrt() * 1.5)
                    .unwrap()
                    .sample(&mut rng);
                Point {
                    at: start + Duration::hours(h as i64),
                    value: (mean + noise).max(0.0),
                }
            })
            .collect()
    }

    fn traffic(days: usize, seed: u64) -> Vec<Point> {
        traffic_with(days, seed, false)
    }

    #[test]
    fn infers_a_daily_period_from_hourly_traffic() {
        let (_, step, grid) = regularize(&traffic_with(21, 1, true)).unwrap();
        assert_eq!(
            infer_period(&grid, step),
            Some(24),
            "a weekend dip keeps the daily period"
        );
        let (_, step, grid) = regularize(&traffic(21, 1)).unwrap();
        assert_eq!(step, 3600);
        assert_eq!(infer_period(&grid, step), Some(24));
    }

    #[test]
    fn clean_traffic_raises_almost_nothing_after_warm_up() {
        // 50 simulated series of 21 days, ~16 days of hourly points judged in each after
        // warm-up: at most 3 false alarms in those ~850 judged days (noise is Gaussian here,
        // so 4-sigma points do occur); almost every series sees none.
        let mut alarms = 0;
        let mut days = 0.0;
        let mut quiet = 0;
        for seed in 1..=50 {
            let d = detect(&traffic(21, seed), &Settings::default()).unwrap();
            assert_eq!(d.period, Some(24));
            assert!(
                d.judged >= 14 * 24,
                "14 days judged after warm-up: {}",
                d.judged
            );
            alarms += d.flags.len();
            days += d.judged as f64 / 24.0;
            quiet += usize::from(d.flags.is_empty());
        }
        assert!(
            alarms <= 3,
            "{alarms} false alarms in {days:.0} judged days"
        );
        assert!(quiet >= 47);
        // A weekly dip (weekends 15 % lower) is followed by the level, not flagged.
        for seed in 1..=10 {
            let d = detect(&traffic_with(21, seed, true), &Settings::default()).unwrap();
            assert!(d.flags.is_empty(), "seed {seed}: {:?}", d.flags);
        }
    }

    #[test]
    fn spikes_and_drops_are_flagged_where_they_are() {
        let mut s = traffic(21, 3);
        let spike = 15 * 24 + 10;
        let drop = 18 * 24 + 14;
        s[spike].value *= 1.6;
        s[drop].value *= 0.3;
        let d = detect(&s, &Settings::default()).unwrap();
        let at: Vec<(DateTime<Utc>, Direction)> =
            d.flags.iter().map(|f| (f.at, f.direction)).collect();
        assert_eq!(
            at,
            vec![
                (s[spike].at, Direction::Spike),
                (s[drop].at, Direction::Drop)
            ]
        );
        let f = &d.flags[1];
        assert!(f.value < f.lower && f.lower < f.expected && f.expected < f.upper);
        // A higher sensitivity threshold lets the smaller one through.
        let lax = detect(
            &s,
            &Settings {
                sensitivity: 40.0,
                ..Settings::default()
            },
        )
        .unwrap();
        assert!(lax.flags.len() < 2, "{:?}", lax.flags);
    }

    #[test]
    fn irregular_spacing_and_gaps_are_handled() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut s: Vec<Point> = traffic(21, 4)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 17 != 5)
            .map(|(_, mut p)| {
                let jitter = rand::Rng::gen_range(&mut rng, -600..=600);
                p.at += Duration::seconds(jitter);
                p
            })
            .collect();
        let target = 16 * 24 + 13;
        let idx = s
            .iter()
            .position(|p| (p.at - s[0].at).num_minutes().abs_diff(target as i64 * 60) <= 15)
            .unwrap();
        s[idx].value *= 0.1;
        let d = detect(&s, &Settings::default()).unwrap();
        assert_eq!(d.step_secs, 3600);
        assert_eq!(d.period, Some(24));
        assert_eq!(d.flags.len(), 1, "{:?}", d.flags);
        assert_eq!(d.flags[0].direction, Direction::Drop);
    }

    #[test]
    fn a_flat_series_flags_its_jump_and_a_short_one_is_all_warm_up() {
        let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let mut s: Vec<Point> = (0..60)
            .map(|i| Point {
                at: start + Duration::minutes(5 * i),
                value: 100.0 + (i % 3) as f64,
            })
            .collect();
        s[50].value = 180.0;
        let d = detect(&s, &Settings::default()).unwrap();
        assert_eq!(d.flags.len(), 1, "{:?}", d.flags);
        assert_eq!(d.flags[0].at, s[50].at);
        let short = detect(&s[..5], &Settings::default()).unwrap();
        assert_eq!(short.judged, 0);
        assert!(short.flags.is_empty());
        // A timestamp in the wrong year is refused, not turned into a huge empty grid.
        let mut typo = s.clone();
        typo[30].at = "2062-03-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            detect(&typo, &Settings::default()),
            Err(DetectError::Sparse { .. })
        ));
    }
}
