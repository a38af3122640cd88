//! ISO-8601 durations (`P2W`, `P1DT12H`, `PT30M`, `PT0.5S`), the way scenario files write
//! fault windows, delays and skews: parsing into and formatting from [`chrono::Duration`].
//!
//! Years and months are rejected because their length varies. A fraction is allowed on the
//! last component only (`PT1.5H`, `P0.5D`) and is kept to the millisecond. A leading `-`
//! gives a negative duration, which callers reject where it makes no sense.

use chrono::Duration;

const MS_PER_SECOND: i128 = 1_000;
const MS_PER_MINUTE: i128 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i128 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i128 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: i128 = 7 * MS_PER_DAY;

/// Parses `[-]P[nW][nD][T[nH][nM][n[.f]S]]` into a duration (millisecond precision).
pub fn parse_iso_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let body = unsigned.strip_prefix(['P', 'p']).ok_or_else(|| {
        format!("{text:?} is not an ISO-8601 duration: it must start with `P` (e.g. PT3H, P1DT12H)")
    })?;
    if body.is_empty() {
        return Err(format!(
            "{text:?} has no components; write e.g. P1D, PT3H or PT90S"
        ));
    }

    let mut total: i128 = 0;
    let mut in_time = false;
    let mut time_components = 0;
    let mut last_rank = 0u8;
    let mut number = String::new();
    let mut fraction_seen = false;

    for c in body.chars() {
        match c {
            '0'..='9' => number.push(c),
            '.' | ',' => {
                if number.is_empty() || number.contains('.') {
                    return Err(format!("{text:?}: misplaced decimal separator"));
                }
                number.push('.');
            }
            'T' | 't' => {
                if in_time || !number.is_empty() {
                    return Err(format!("{text:?}: misplaced `T`"));
                }
                in_time = true;
            }
            _ => {
                let designator = c.to_ascii_uppercase();
                let (rank, unit) = match (in_time, designator) {
                    (false, 'W') => (1, MS_PER_WEEK),
                    (false, 'D') => (2, MS_PER_DAY),
                    (true, 'H') => (3, MS_PER_HOUR),
                    (true, 'M') => (4, MS_PER_MINUTE),
                    (true, 'S') => (5, MS_PER_SECOND),
                    (false, 'Y') | (false, 'M') => {
                        return Err(format!(
                            "{text:?}: years and months are not supported (their length varies); use weeks (W) or days (D)"
                        ))
                    }
                    (false, 'H') | (false, 'S') => {
                        return Err(format!(
                            "{text:?}: hours, minutes and seconds must follow `T` (e.g. PT{}{designator})",
                            if number.is_empty() { "1" } else { &number }
                        ))
                    }
                    _ => return Err(format!("{text:?}: unexpected character {c:?}")),
                };
                if number.is_empty() || number.ends_with('.') {
                    return Err(format!("{text:?}: `{designator}` has no number before it"));
                }
                if rank <= last_rank {
                    return Err(format!(
                        "{text:?}: components must appear once each, in the order W, D, T, H, M, S"
                    ));
                }
                if fraction_seen {
                    return Err(format!(
                        "{text:?}: only the last component may have a fraction"
                    ));
                }
                fraction_seen = number.contains('.');
                total = total
                    .checked_add(component_ms(&number, unit).ok_or_else(|| too_long(text))?)
                    .ok_or_else(|| too_long(text))?;
                last_rank = rank;
                if in_time {
                    time_components += 1;
                }
                number.clear();
            }
        }
    }
    if !number.is_empty() {
        return Err(format!(
            "{text:?}: number {number} has no unit designator (W, D, H, M or S)"
        ));
    }
    if in_time && time_components == 0 {
        return Err(format!(
            "{text:?}: `T` must be followed by hours, minutes or seconds"
        ));
    }
    if last_rank == 0 {
        return Err(format!(
            "{text:?} has no components; write e.g. P1D or PT3H"
        ));
    }
    let signed = if negative { -total } else { total };
    i64::try_from(signed)
        .ok()
        .and_then(Duration::try_milliseconds)
        .ok_or_else(|| too_long(text))
}

fn too_long(text: &str) -> String {
    format!("{text:?} is too long a duration")
}

/// Milliseconds in `number` (digits with an optional `.fraction`) units of `unit_ms`.
fn component_ms(number: &str, unit_ms: i128) -> Option<i128> {
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.len() > 18 {
        return None;
    }
    let int: i128 = int_part.parse().ok()?;
    let mut ms = int.checked_mul(unit_ms)?;
    let frac_digits = &frac_part[..frac_part.len().min(12)];
    if !frac_digits.is_empty() {
        let frac: i128 = frac_digits.parse().ok()?;
        let scale = 10i128.pow(frac_digits.len() as u32);
        ms = ms.checked_add(frac * unit_ms / scale)?;
    }
    Some(ms)
}

/// Formats a duration as ISO-8601 with days, hours, minutes and (fractional) seconds, e.g.
/// `P1DT6H`, `PT30M`, `PT1.5S`; zero is `PT0S`.
pub fn format_iso_duration(duration: Duration) -> String {
    let total = duration.num_milliseconds();
    if total == 0 {
        return "PT0S".to_string();
    }
    let mut out = String::new();
    if total < 0 {
        out.push('-');
    }
    let ms = i128::from(total).abs();
    out.push('P');
    let days = ms / MS_PER_DAY;
    let hours = ms % MS_PER_DAY / MS_PER_HOUR;
    let minutes = ms % MS_PER_HOUR / MS_PER_MINUTE;
    let seconds = ms % MS_PER_MINUTE / MS_PER_SECOND;
    let millis = ms % MS_PER_SECOND;
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours > 0 || minutes > 0 || seconds > 0 || millis > 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if millis > 0 {
            let frac = format!("{millis:03}");
            out.push_str(&format!("{seconds}.{}S", frac.trim_end_matches('0')));
        } else if seconds > 0 {
            out.push_str(&format!("{seconds}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(text: &str) -> i64 {
        parse_iso_duration(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .num_milliseconds()
    }

    #[test]
    fn parses_every_component() {
        assert_eq!(ms("PT3H"), 3 * 3_600_000);
        assert_eq!(ms("P8DT10H"), (8 * 24 + 10) * 3_600_000);
        assert_eq!(ms("P2W"), 14 * 86_400_000);
        assert_eq!(ms("P1W2DT3H4M5S"), ((9 * 24 + 3) * 60 + 4) * 60_000 + 5_000);
        assert_eq!(ms("PT0.5S"), 500);
        assert_eq!(ms("PT1,25S"), 1_250);
        assert_eq!(ms("PT1.5H"), 90 * 60_000);
        assert_eq!(ms("P0.5D"), 12 * 3_600_000);
        assert_eq!(ms("PT90M"), 90 * 60_000);
        assert_eq!(ms("PT0S"), 0);
        assert_eq!(ms("-PT1H"), -3_600_000);
        assert_eq!(ms(" pt2m "), 120_000);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "P",
            "PT",
            "3H",
            "P3H",
            "PT3D",
            "P1M",
            "P1Y",
            "PT1H2H",
            "PT2M1H",
            "PT1.5H30M",
            "P1DT",
            "PT1",
            "PTH",
            "P1.D",
            "P..1D",
            "PT1HX",
            "P1D1W",
            "P99999999999999999999D",
        ] {
            assert!(
                parse_iso_duration(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn errors_explain_the_problem() {
        let e = parse_iso_duration("P1M").unwrap_err();
        assert!(e.contains("months"), "{e}");
        let e = parse_iso_duration("3h").unwrap_err();
        assert!(e.contains("must start with `P`"), "{e}");
        let e = parse_iso_duration("P3H").unwrap_err();
        assert!(e.contains("follow `T`"), "{e}");
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_iso_duration(Duration::hours(6)), "PT6H");
        assert_eq!(format_iso_duration(Duration::days(1)), "P1D");
        assert_eq!(format_iso_duration(Duration::milliseconds(1_500)), "PT1.5S");
        assert_eq!(format_iso_duration(Duration::zero()), "PT0S");
        assert_eq!(format_iso_duration(Duration::minutes(-90)), "-PT1H30M");
        assert_eq!(
            format_iso_duration(Duration::milliseconds(
                ((2 * 24 + 3) * 60 + 4) * 60_000 + 5_020
            )),
            "P2DT3H4M5.02S"
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in -10_000_000_000_000i64..10_000_000_000_000i64) {
            let d = Duration::milliseconds(ms);
            prop_assert_eq!(parse_iso_duration(&format_iso_duration(d)).unwrap(), d);
        }
    }
}
