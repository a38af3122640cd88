//! How busy the shop is at each instant: a diurnal curve in UTC (trough around 04:00, peak
//! around 20:00), a weekly pattern (weekends busier), and hourly and daily noise derived from
//! the seed. [`Intensity`] scales that shape so the expected number of events over a bounded run
//! equals the scenario's volume exactly (or, open-ended, averages the requested rate).

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Relative activity at each full hour UTC; linearly interpolated in between.
const DIURNAL: [f64; 24] = [
    0.85, 0.70, 0.56, 0.46, 0.40, 0.42, 0.50, 0.62, 0.75, 0.85, 0.92, 0.97, //
    1.00, 1.02, 1.05, 1.08, 1.12, 1.20, 1.32, 1.45, 1.50, 1.40, 1.20, 1.00,
];

/// Relative activity per weekday, Monday first.
const WEEKLY: [f64; 7] = [0.97, 0.95, 0.96, 0.98, 1.01, 1.06, 1.10];

/// Standard deviation of the log of the hourly and daily noise factors.
const HOURLY_NOISE: f64 = 0.08;
const DAILY_NOISE: f64 = 0.04;

/// The diurnal factor at `t_ms` (milliseconds since the epoch).
pub(crate) fn diurnal(t_ms: i64) -> f64 {
    let in_day = t_ms.rem_euclid(MS_PER_DAY) as f64 / MS_PER_HOUR as f64;
    let hour = in_day.floor() as usize % 24;
    let frac = in_day - in_day.floor();
    DIURNAL[hour] * (1.0 - frac) + DIURNAL[(hour + 1) % 24] * frac
}

/// The weekday factor at `t_ms` (1970-01-01 was a Thursday).
pub(crate) fn weekly(t_ms: i64) -> f64 {
    let weekday = (t_ms.div_euclid(MS_PER_DAY) + 3).rem_euclid(7) as usize;
    WEEKLY[weekday]
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An approximately standard-normal number determined by `(seed, salt, n)`.
fn normal(seed: u64, salt: u64, n: i64) -> f64 {
    let mut h = splitmix(seed ^ splitmix(salt ^ (n as u64)));
    let mut sum = 0.0;
    for _ in 0..4 {
        h = splitmix(h);
        sum += (h >> 11) as f64 / (1u64 << 53) as f64;
    }
    // The sum of 4 uniforms has mean 2 and variance 1/3.
    (sum - 2.0) * 3f64.sqrt()
}

/// A mean-one log-normal noise factor, constant for each hour and each day.
fn noise(seed: u64, t_ms: i64) -> f64 {
    let hourly = normal(seed, 0x484F_5552, t_ms.div_euclid(MS_PER_HOUR));
    let daily = normal(seed, 0x4441_5953, t_ms.div_euclid(MS_PER_DAY));
    let log = HOURLY_NOISE * hourly + DAILY_NOISE * daily;
    (log - 0.5 * (HOURLY_NOISE * HOURLY_NOISE + DAILY_NOISE * DAILY_NOISE)).exp()
}

/// The unscaled activity at `t_ms`.
fn shape(seed: u64, t_ms: i64) -> f64 {
    diurnal(t_ms) * weekly(t_ms) * noise(seed, t_ms)
}

/// The expected event rate over time.
#[derive(Debug, Clone)]
pub(crate) struct Intensity {
    seed: u64,
    /// Events per millisecond per unit of shape.
    scale: f64,
}

impl Intensity {
    /// Scaled so that the expected number of events in `[start_ms, end_ms)` is `total`.
    pub fn bounded(seed: u64, start_ms: i64, end_ms: i64, total: f64) -> Intensity {
        let unit = Intensity { seed, scale: 1.0 };
        let integral = unit.expected_between(start_ms, end_ms);
        Intensity {
            seed,
            scale: if integral > 0.0 {
                total / integral
            } else {
                0.0
            },
        }
    }

    /// Scaled so that the rate averages `events_per_ms` over the week following `start_ms`.
    pub fn open(seed: u64, start_ms: i64, events_per_ms: f64) -> Intensity {
        let unit = Intensity { seed, scale: 1.0 };
        let week = 7 * MS_PER_DAY;
        let mean = unit.expected_between(start_ms, start_ms + week) / week as f64;
        Intensity {
            seed,
            scale: events_per_ms / mean,
        }
    }

    /// Expected events per millisecond at `t_ms`.
    pub fn events_per_ms(&self, t_ms: i64) -> f64 {
        self.scale * shape(self.seed, t_ms)
    }

    /// Expected events in `[a_ms, b_ms)` (integrated per minute).
    pub fn expected_between(&self, a_ms: i64, b_ms: i64) -> f64 {
        let mut sum = 0.0;
        let mut t = a_ms;
        while t < b_ms {
            let width = MS_PER_MINUTE.min(b_ms - t);
            sum += shape(self.seed, t + width / 2) * width as f64;
            t += width;
        }
        self.scale * sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trough_is_early_morning_and_peak_is_evening() {
        let day = 20_513 * MS_PER_DAY; // some day
        let at = |h: f64| diurnal(day + (h * MS_PER_HOUR as f64) as i64);
        let (mut min_h, mut max_h) = (0.0, 0.0);
        for q in 0..96 {
            let h = q as f64 / 4.0;
            if at(h) < at(min_h) {
                min_h = h;
            }
            if at(h) > at(max_h) {
                max_h = h;
            }
        }
        assert_eq!(min_h, 4.0);
        assert_eq!(max_h, 20.0);
        assert!(at(20.0) / at(4.0) > 3.0);
    }

    #[test]
    fn weekends_are_busier() {
        // 2026-03-07 is a Saturday, 2026-03-04 a Wednesday.
        let saturday = chrono::DateTime::parse_from_rfc3339("2026-03-07T12:00:00Z").unwrap();
        let wednesday = chrono::DateTime::parse_from_rfc3339("2026-03-04T12:00:00Z").unwrap();
        assert!(weekly(saturday.timestamp_millis()) > weekly(wednesday.timestamp_millis()));
    }

    #[test]
    fn noise_is_deterministic_mean_one_and_modest() {
        let n = 20_000;
        let mean: f64 = (0..n).map(|h| noise(7, h * MS_PER_HOUR)).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert_eq!(noise(7, 123_456_789), noise(7, 123_456_789));
        assert_ne!(noise(7, 123_456_789), noise(8, 123_456_789));
    }

    #[test]
    fn bounded_intensity_integrates_to_the_total() {
        let start = 1_772_323_200_000; // 2026-03-01
        let end = start + MS_PER_DAY / 2 + 12_345;
        let i = Intensity::bounded(3, start, end, 10_000.0);
        assert!((i.expected_between(start, end) - 10_000.0).abs() < 1e-6);
        let open = Intensity::open(3, start, 2.0 / 1000.0);
        let week = open.expected_between(start, start + 7 * MS_PER_DAY);
        assert!((week / (7.0 * 86_400.0) - 2.0).abs() < 1e-9);
    }
}
