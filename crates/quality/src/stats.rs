//! Exact tail probabilities and quantiles the checks judge with, from `statrs`.

use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// P(X ≥ k) for X ~ Binomial(n, p).
pub fn binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    match Binomial::new(p, n) {
        // P(X ≥ k) = P(X > k − 1).
        Ok(b) => b.sf(k - 1).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// The value a χ² variable with `df` degrees of freedom exceeds with probability `tail`.
pub fn chi2_quantile(df: f64, tail: f64) -> f64 {
    match ChiSquared::new(df.max(f64::MIN_POSITIVE)) {
        Ok(c) => c.inverse_cdf(1.0 - tail),
        Err(_) => f64::INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tails_match_hand_computed_values() {
        // P(X ≥ 1 | n = 10, p = 0.1) = 1 − 0.9^10.
        assert!((binomial_tail(1, 10, 0.1) - (1.0 - 0.9f64.powi(10))).abs() < 1e-12);
        // P(X ≥ 10 | n = 10, p = 0.5) = 2^-10.
        assert!((binomial_tail(10, 10, 0.5) - 0.5f64.powi(10)).abs() < 1e-15);
        assert_eq!(binomial_tail(0, 10, 0.3), 1.0);
        assert_eq!(binomial_tail(11, 10, 0.3), 0.0);
        // Nine wild values among 45 where the baseline had one in 330: hopeless by chance.
        assert!(binomial_tail(9, 45, 1.0 / 330.0) < 1e-10);
        assert!(binomial_tail(1, 45, 1.0 / 330.0) > 0.1);
        // Large n stays finite and monotone.
        let a = binomial_tail(40, 20_000, 0.001);
        let b = binomial_tail(60, 20_000, 0.001);
        assert!(a > b && b > 0.0, "{a} {b}");
    }

    #[test]
    fn chi2_quantiles_match_the_tables() {
        // χ²(1) at p = 0.05 is 3.841; χ²(5) at 0.001 is 20.515; χ²(10) at 1e-6 is 46.86.
        assert!((chi2_quantile(1.0, 0.05) - 3.841).abs() < 0.01);
        assert!((chi2_quantile(5.0, 0.001) - 20.515).abs() < 0.01);
        let q = chi2_quantile(10.0, 1e-6);
        assert!((q - 46.86).abs() < 0.1, "{q}");
    }
}
