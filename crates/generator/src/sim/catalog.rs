//! The fixed reference data of the simulated shop: countries (with their currency and share of
//! customers), devices, acquisition channels, payment methods, failure and refund reasons, and
//! a product catalog generated from a fixed seed (the same products in every run), with each
//! category's own price range and local prices per currency.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A weighted table: labels and relative weights.
pub(crate) type Table = [(&'static str, f64)];

/// Picks an index of `table` with probability proportional to its weight.
pub(crate) fn pick(rng: &mut impl Rng, table: &Table) -> usize {
    let total: f64 = table.iter().map(|(_, w)| w).sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, (_, w)) in table.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    table.len() - 1
}

/// Country code, currency, share of customers.
pub(crate) const COUNTRIES: [(&str, &str, f64); 11] = [
    ("US", "USD", 0.38),
    ("GB", "GBP", 0.10),
    ("DE", "EUR", 0.12),
    ("FR", "EUR", 0.08),
    ("JP", "JPY", 0.07),
    ("CA", "CAD", 0.07),
    ("AU", "AUD", 0.05),
    ("ES", "EUR", 0.04),
    ("IT", "EUR", 0.04),
    ("NL", "EUR", 0.03),
    ("IE", "EUR", 0.02),
];

pub(crate) fn country_table() -> [(&'static str, f64); 11] {
    COUNTRIES.map(|(code, _, weight)| (code, weight))
}

pub(crate) const DEVICES: [(&str, f64); 3] =
    [("mobile", 0.58), ("desktop", 0.34), ("tablet", 0.08)];

/// How new customers find the shop.
pub(crate) const SIGNUP_CHANNELS: [(&str, f64); 5] = [
    ("organic", 0.38),
    ("paid_search", 0.24),
    ("social", 0.16),
    ("email", 0.07),
    ("referral", 0.15),
];

/// How returning customers come back (e-mail campaigns matter more).
pub(crate) const RETURN_CHANNELS: [(&str, f64); 5] = [
    ("organic", 0.36),
    ("paid_search", 0.16),
    ("social", 0.12),
    ("email", 0.28),
    ("referral", 0.08),
];

pub(crate) const PAYMENT_METHODS: [(&str, f64); 5] = [
    ("card", 0.55),
    ("paypal", 0.20),
    ("apple_pay", 0.12),
    ("bank_transfer", 0.08),
    ("gift_card", 0.05),
];

pub(crate) const FAILURE_REASONS: [(&str, f64); 5] = [
    ("card_declined", 0.45),
    ("insufficient_funds", 0.25),
    ("processor_timeout", 0.12),
    ("expired_card", 0.10),
    ("fraud_suspected", 0.08),
];

pub(crate) const REFUND_REASONS: [(&str, f64); 5] = [
    ("damaged", 0.26),
    ("not_as_described", 0.22),
    ("changed_mind", 0.30),
    ("late_delivery", 0.14),
    ("wrong_item", 0.08),
];

pub(crate) const FIRST_NAMES: [&str; 16] = [
    "alex", "maria", "james", "sofia", "liam", "emma", "noah", "yuki", "lena", "omar", "chloe",
    "lucas", "hannah", "mateo", "aiko", "olivia",
];
pub(crate) const LAST_NAMES: [&str; 12] = [
    "smith", "mueller", "garcia", "tanaka", "brown", "martin", "rossi", "jansen", "wilson",
    "dubois", "murphy", "lee",
];
pub(crate) const MAIL_DOMAINS: [&str; 5] = [
    "example.com",
    "mail.example.org",
    "inbox.example.net",
    "post.example.de",
    "example.co.uk",
];

/// A product category: name, share of product views, price range in US cents, product count.
struct Category {
    name: &'static str,
    code: &'static str,
    weight: f64,
    min_usd_cents: i64,
    max_usd_cents: i64,
    products: usize,
}

const CATEGORIES: [Category; 8] = [
    Category {
        name: "electronics",
        code: "ELEC",
        weight: 0.20,
        min_usd_cents: 1_999,
        max_usd_cents: 149_999,
        products: 90,
    },
    Category {
        name: "clothing",
        code: "CLTH",
        weight: 0.22,
        min_usd_cents: 999,
        max_usd_cents: 14_999,
        products: 120,
    },
    Category {
        name: "home",
        code: "HOME",
        weight: 0.14,
        min_usd_cents: 799,
        max_usd_cents: 39_999,
        products: 80,
    },
    Category {
        name: "books",
        code: "BOOK",
        weight: 0.12,
        min_usd_cents: 499,
        max_usd_cents: 4_999,
        products: 150,
    },
    Category {
        name: "beauty",
        code: "BEAU",
        weight: 0.11,
        min_usd_cents: 399,
        max_usd_cents: 8_999,
        products: 70,
    },
    Category {
        name: "sports",
        code: "SPRT",
        weight: 0.10,
        min_usd_cents: 1_299,
        max_usd_cents: 29_999,
        products: 60,
    },
    Category {
        name: "toys",
        code: "TOYS",
        weight: 0.08,
        min_usd_cents: 599,
        max_usd_cents: 9_999,
        products: 60,
    },
    Category {
        name: "garden",
        code: "GRDN",
        weight: 0.03,
        min_usd_cents: 899,
        max_usd_cents: 24_999,
        products: 40,
    },
];

/// Units of each currency per US dollar (fixed for the simulation).
fn usd_rate(currency: &str) -> f64 {
    match currency {
        "EUR" => 0.92,
        "GBP" => 0.79,
        "JPY" => 150.0,
        "CAD" => 1.36,
        "AUD" => 1.52,
        _ => 1.0,
    }
}

/// A price in US cents converted to `currency` minor units with shop-style rounding
/// (x.99, or whole tens of yen).
pub(crate) fn local_price(usd_cents: i64, currency: &str) -> i64 {
    let major = usd_cents as f64 / 100.0 * usd_rate(currency);
    if currency == "JPY" {
        ((major / 10.0).round() as i64 * 10).max(10)
    } else {
        (major.ceil() as i64 * 100 - 1).max(99)
    }
}

/// One product.
pub(crate) struct Product {
    pub id: String,
    pub category: &'static str,
    pub usd_cents: i64,
}

/// The shop's products, grouped by category.
pub(crate) struct Catalog {
    products: Vec<Product>,
    /// Start index and count of each category's products.
    ranges: Vec<(usize, usize)>,
    weights: Vec<(&'static str, f64)>,
}

/// The catalog is the same in every run, whatever the scenario seed.
const CATALOG_SEED: u64 = 0x5EED_CA7A_1060;

impl Catalog {
    pub fn new() -> Catalog {
        let mut rng = ChaCha8Rng::seed_from_u64(CATALOG_SEED);
        let mut products = Vec::new();
        let mut ranges = Vec::new();
        for category in &CATEGORIES {
            ranges.push((products.len(), category.products));
            let (lo, hi) = (
                (category.min_usd_cents as f64).ln(),
                (category.max_usd_cents as f64).ln(),
            );
            for n in 1..=category.products {
                // Log-uniform prices, then charm pricing in dollars.
                let cents = rng.gen_range(lo..hi).exp();
                let usd_cents = ((cents / 100.0).ceil() as i64 * 100 - 1).max(99);
                products.push(Product {
                    id: format!("SKU-{}-{n:04}", category.code),
                    category: category.name,
                    usd_cents,
                });
            }
        }
        Catalog {
            products,
            ranges,
            weights: CATEGORIES.iter().map(|c| (c.name, c.weight)).collect(),
        }
    }

    /// A product to view: a category by weight, then a product skewed towards the category's
    /// best sellers.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        let (start, count) = self.ranges[pick(rng, &self.weights)];
        let u: f64 = rng.gen();
        start + ((u * u * u) * count as f64) as usize % count
    }

    pub fn product(&self, index: usize) -> &Product {
        &self.products[index]
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.products.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_fixed_and_prices_fall_in_their_category_range() {
        let a = Catalog::new();
        let b = Catalog::new();
        assert_eq!(
            a.len(),
            CATEGORIES.iter().map(|c| c.products).sum::<usize>()
        );
        for (i, category) in CATEGORIES.iter().enumerate() {
            let (start, count) = a.ranges[i];
            for p in &a.products[start..start + count] {
                assert_eq!(p.category, category.name);
                assert!(
                    p.usd_cents >= category.min_usd_cents - 100,
                    "{} {}",
                    p.id,
                    p.usd_cents
                );
                assert!(
                    p.usd_cents <= category.max_usd_cents + 100,
                    "{} {}",
                    p.id,
                    p.usd_cents
                );
            }
        }
        assert!(a
            .products
            .iter()
            .zip(&b.products)
            .all(|(x, y)| x.id == y.id && x.usd_cents == y.usd_cents));
    }

    #[test]
    fn distribution_shift_default_is_a_rare_category() {
        let rare = crate::fields::default_shift_value("category").unwrap();
        let category = CATEGORIES
            .iter()
            .find(|c| c.name == rare)
            .expect("a catalog category");
        assert!(CATEGORIES.iter().all(|c| c.weight >= category.weight));
    }

    #[test]
    fn local_prices_use_the_minor_unit_of_each_currency() {
        assert_eq!(local_price(1999, "USD"), 1999);
        assert_eq!(local_price(1999, "EUR"), 1899);
        assert_eq!(local_price(1999, "JPY"), 3000);
        assert!(local_price(99, "GBP") >= 99);
        for (_, currency, _) in COUNTRIES {
            assert!(
                heal_model::money::exponent(currency).is_some(),
                "{currency}"
            );
        }
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[pick(&mut rng, &DEVICES)] += 1;
        }
        assert!((16_500..18_300).contains(&counts[0]), "{counts:?}");
        assert!((1_900..2_900).contains(&counts[2]), "{counts:?}");
    }
}
