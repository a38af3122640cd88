//! Money in minor units. Every amount in the canonical model is an integer number of the
//! currency's minor unit (cents, pence; yen have none), so sums never drift.

/// Currencies the platform knows, with their minor-unit exponent.
pub const CURRENCIES: [(&str, u32); 6] = [
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("JPY", 0),
    ("CAD", 2),
    ("AUD", 2),
];

/// The minor-unit exponent of an ISO-4217 code, or `None` for a currency we do not know.
pub fn exponent(currency: &str) -> Option<u32> {
    CURRENCIES
        .iter()
        .find(|(code, _)| *code == currency)
        .map(|(_, e)| *e)
}

/// Converts a decimal major-unit amount (the seed's `order_amount: 12.34`) to minor units.
pub fn to_minor(major: f64, currency: &str) -> Option<i64> {
    let exp = exponent(currency)?;
    let scaled = major * 10f64.powi(exp as i32);
    if !scaled.is_finite() || scaled.abs() > 9.0e15 {
        return None;
    }
    Some(scaled.round() as i64)
}

/// Converts minor units back to a decimal major-unit amount.
pub fn to_major(minor: i64, currency: &str) -> f64 {
    let exp = exponent(currency).unwrap_or(2);
    minor as f64 / 10f64.powi(exp as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_cents_and_yen() {
        assert_eq!(to_minor(12.34, "USD"), Some(1234));
        assert_eq!(to_minor(0.1 + 0.2, "EUR"), Some(30));
        assert_eq!(to_minor(1500.0, "JPY"), Some(1500));
        assert_eq!(to_major(1234, "USD"), 12.34);
        assert_eq!(to_minor(1.0, "XXX"), None);
        assert_eq!(to_minor(f64::NAN, "USD"), None);
    }
}
