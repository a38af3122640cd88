//! Fixture of the batch tests: generated traffic ingested through the real ingest path, and an
//! oracle that computes every metric again in plain Rust from the decoded events — written
//! separately from the SQL jobs, so that a mistake in either shows as a difference.

#![allow(dead_code, clippy::type_complexity)]

use chrono::{DateTime, NaiveDate, Utc};
use heal_generator::{Generator, Scenario};
use heal_ingest::{Incoming, Source};
use heal_model::event::PaymentStatus;
use heal_model::{decode, CanonicalEvent, EventBody};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub fn source() -> Source {
    Source::Topic {
        group: "batch-test".into(),
        topic: "raw-events".into(),
    }
}

/// A clean simulation of `days` days: the encoded messages, in production order.
pub fn generate(seed: u64, days: f64, events_per_day: f64) -> Vec<(Vec<u8>, DateTime<Utc>)> {
    let scenario = Scenario::clean(
        "batch-test",
        seed,
        "2026-03-01T00:00:00Z".parse().unwrap(),
        days,
        events_per_day,
    );
    Generator::new(&scenario)
        .map(|e| (e.payload, e.produced_at))
        .collect()
}

/// Ingests messages in batches of 1000 on partition 0, continuing at `first_offset`.
pub async fn ingest(pool: &PgPool, messages: &[(Vec<u8>, DateTime<Utc>)], first_offset: i64) {
    let items: Vec<Incoming> = messages
        .iter()
        .zip(first_offset..)
        .map(|((payload, at), offset)| Incoming {
            partition: Some(0),
            offset: Some(offset),
            payload: payload.clone(),
            produced_at: Some(*at),
        })
        .collect();
    let outcome = heal_testkit::pipeline::ingest_all(pool, &source(), &items, 1000).await;
    assert!(
        outcome.quarantined.is_empty(),
        "clean traffic is not quarantined"
    );
}

pub fn decoded(messages: &[(Vec<u8>, DateTime<Utc>)]) -> Vec<CanonicalEvent> {
    messages.iter().map(|(p, _)| decode(p).unwrap()).collect()
}

/// The test's own copy of the reference rates: (minor-unit exponent, USD per unit).
fn rate(currency: &str) -> Option<(i32, f64)> {
    Some(match currency {
        "USD" => (2, 1.0),
        "EUR" => (2, 1.08),
        "GBP" => (2, 1.27),
        "JPY" => (0, 0.0067),
        "CAD" => (2, 0.73),
        "AUD" => (2, 0.66),
        _ => return None,
    })
}

fn usd(minor: i64, currency: &str) -> f64 {
    let (exp, r) = rate(currency).unwrap();
    minor as f64 / 10f64.powi(exp) * r
}

fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Revenue {
    pub orders: i64,
    pub order_value_usd: f64,
    pub gross_usd: f64,
    pub refunds_usd: f64,
    pub paying_customers: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrencyRevenue {
    pub orders: i64,
    pub order_value_minor: i64,
    pub gross_minor: i64,
    pub refunds_minor: i64,
    pub paying_customers: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Funnel {
    pub sessions: i64,
    pub views: i64,
    pub carts: i64,
    pub orders: i64,
    pub payments: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retention {
    pub size: i64,
    pub d1: i64,
    pub d7: i64,
    pub d30: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MethodStats {
    pub attempts: i64,
    pub succeeded: i64,
    pub succeeded_usd: f64,
}

/// Every metric, computed from the decoded events.
#[derive(Debug, Default)]
pub struct Oracle {
    pub revenue: BTreeMap<NaiveDate, Revenue>,
    pub by_currency: BTreeMap<(NaiveDate, String), CurrencyRevenue>,
    pub funnel: BTreeMap<NaiveDate, Funnel>,
    pub retention: BTreeMap<NaiveDate, Retention>,
    pub payments: BTreeMap<(NaiveDate, String), MethodStats>,
}

impl Oracle {
    pub fn new(events: &[CanonicalEvent]) -> Oracle {
        let mut o = Oracle::default();
        // Keep the first of each business id, as staging does.
        let mut seen_orders = HashSet::new();
        let mut seen_payments = HashSet::new();
        let mut seen_refunds = HashSet::new();
        let mut sorted: Vec<&CanonicalEvent> = events.iter().collect();
        sorted.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        let mut sessions: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
        let mut session_times: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
        let mut views: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
        let mut carts: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
        let mut orderers: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
        let mut payers: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
        let mut payers_by_currency: HashMap<(NaiveDate, String), HashSet<&str>> = HashMap::new();
        let mut signups: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
        for e in sorted {
            let d = day(e.occurred_at);
            let user = e.user_id.as_str();
            match &e.body {
                EventBody::User { .. } => {
                    signups.entry(d).or_default().insert(user);
                }
                EventBody::Session { .. } => {
                    sessions.entry(d).or_default().insert(user);
                    session_times.entry(user).or_default().push(e.occurred_at);
                }
                EventBody::ProductView { .. } => {
                    views.entry(d).or_default().insert(user);
                }
                EventBody::CartItem { .. } => {
                    carts.entry(d).or_default().insert(user);
                }
                EventBody::Order {
                    order_id,
                    amount_minor,
                    currency,
                    ..
                } => {
                    if *amount_minor <= 0
                        || rate(currency).is_none()
                        || !seen_orders.insert(order_id.clone())
                    {
                        continue;
                    }
                    let r = o.revenue.entry(d).or_default();
                    r.orders += 1;
                    r.order_value_usd += usd(*amount_minor, currency);
                    let c = o.by_currency.entry((d, currency.clone())).or_default();
                    c.orders += 1;
                    c.order_value_minor += amount_minor;
                    orderers.entry(d).or_default().insert(user);
                }
                EventBody::Payment {
                    payment_id,
                    amount_minor,
                    currency,
                    method,
                    status,
                    ..
                } => {
                    if *amount_minor <= 0
                        || rate(currency).is_none()
                        || !seen_payments.insert(payment_id.clone())
                    {
                        continue;
                    }
                    let m = o.payments.entry((d, method.clone())).or_default();
                    m.attempts += 1;
                    if *status == PaymentStatus::Succeeded {
                        m.succeeded += 1;
                        m.succeeded_usd += usd(*amount_minor, currency);
                        o.revenue.entry(d).or_default().gross_usd += usd(*amount_minor, currency);
                        o.by_currency
                            .entry((d, currency.clone()))
                            .or_default()
                            .gross_minor += amount_minor;
                        payers.entry(d).or_default().insert(user);
                        payers_by_currency
                            .entry((d, currency.clone()))
                            .or_default()
                            .insert(user);
                    }
                }
                EventBody::Refund {
                    refund_id,
                    amount_minor,
                    currency,
                    ..
                } => {
                    if *amount_minor <= 0
                        || rate(currency).is_none()
                        || !seen_refunds.insert(refund_id.clone())
                    {
                        continue;
                    }
                    o.revenue.entry(d).or_default().refunds_usd += usd(*amount_minor, currency);
                    o.by_currency
                        .entry((d, currency.clone()))
                        .or_default()
                        .refunds_minor += amount_minor;
                }
            }
        }
        for (d, users) in &payers {
            o.revenue.entry(*d).or_default().paying_customers = users.len() as i64;
        }
        for (k, users) in &payers_by_currency {
            o.by_currency.entry(k.clone()).or_default().paying_customers = users.len() as i64;
        }
        let empty = HashSet::new();
        for (d, s) in &sessions {
            let v: HashSet<&str> = views
                .get(d)
                .unwrap_or(&empty)
                .intersection(s)
                .copied()
                .collect();
            let c: HashSet<&str> = carts
                .get(d)
                .unwrap_or(&empty)
                .intersection(&v)
                .copied()
                .collect();
            let or: HashSet<&str> = orderers
                .get(d)
                .unwrap_or(&empty)
                .intersection(&c)
                .copied()
                .collect();
            let p: HashSet<&str> = payers
                .get(d)
                .unwrap_or(&empty)
                .intersection(&or)
                .copied()
                .collect();
            o.funnel.insert(
                *d,
                Funnel {
                    sessions: s.len() as i64,
                    views: v.len() as i64,
                    carts: c.len() as i64,
                    orders: or.len() as i64,
                    payments: p.len() as i64,
                },
            );
        }
        for (d, cohort) in &signups {
            let start = d.and_hms_opt(0, 0, 0).unwrap().and_utc() + chrono::Duration::days(1);
            let mut r = Retention {
                size: cohort.len() as i64,
                ..Retention::default()
            };
            for u in cohort {
                let times = session_times.get(u).map(Vec::as_slice).unwrap_or(&[]);
                let within = |days: i64| {
                    times
                        .iter()
                        .any(|t| *t >= start && *t < start + chrono::Duration::days(days))
                };
                r.d1 += i64::from(within(1));
                r.d7 += i64::from(within(7));
                r.d30 += i64::from(within(30));
            }
            o.retention.insert(*d, r);
        }
        o
    }

    pub fn days(&self) -> BTreeSet<NaiveDate> {
        self.funnel.keys().copied().collect()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.011
}

/// Compares every analytics table with the oracle; returns the differences.
pub async fn differences(pool: &PgPool, o: &Oracle) -> Vec<String> {
    let mut diffs = Vec::new();
    let rows: Vec<(NaiveDate, i64, f64, f64, f64, f64, i64, Option<f64>)> = sqlx::query_as(
        "SELECT day, orders, order_value_usd::float8, gross_revenue_usd::float8, refunds_usd::float8,
                net_revenue_usd::float8, paying_customers, avg_order_value_usd::float8
         FROM daily_revenue ORDER BY day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let got: BTreeSet<NaiveDate> = rows.iter().map(|r| r.0).collect();
    let want: BTreeSet<NaiveDate> = o.revenue.keys().copied().collect();
    if !want.is_subset(&got) {
        diffs.push(format!(
            "daily_revenue days {got:?}, expected at least {want:?}"
        ));
    }
    for (d, orders, value, gross, refunds, net, customers, aov) in rows {
        let e = o.revenue.get(&d).cloned().unwrap_or_default();
        let e_aov = (e.orders > 0).then(|| e.order_value_usd / e.orders as f64);
        let aov_ok = match (aov, e_aov) {
            (Some(a), Some(b)) => close(a, b),
            (None, None) => true,
            _ => false,
        };
        if orders != e.orders
            || !close(value, e.order_value_usd)
            || !close(gross, e.gross_usd)
            || !close(refunds, e.refunds_usd)
            || !close(net, e.gross_usd - e.refunds_usd)
            || customers != e.paying_customers
            || !aov_ok
        {
            diffs.push(format!(
                "daily_revenue {d}: got orders={orders} value={value} gross={gross} refunds={refunds} net={net} customers={customers} aov={aov:?}; expected {e:?}"
            ));
        }
    }
    let rows: Vec<(NaiveDate, String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT day, currency, orders, order_value_minor, gross_revenue_minor, refunds_minor,
                net_revenue_minor, paying_customers
         FROM daily_revenue_by_currency ORDER BY day, currency",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if rows.len() != o.by_currency.len() {
        diffs.push(format!(
            "daily_revenue_by_currency has {} rows, expected {}",
            rows.len(),
            o.by_currency.len()
        ));
    }
    for (d, c, orders, value, gross, refunds, net, customers) in rows {
        let e = o
            .by_currency
            .get(&(d, c.clone()))
            .cloned()
            .unwrap_or_default();
        let got = CurrencyRevenue {
            orders,
            order_value_minor: value,
            gross_minor: gross,
            refunds_minor: refunds,
            paying_customers: customers,
        };
        if got != e || net != e.gross_minor - e.refunds_minor {
            diffs.push(format!(
                "daily_revenue_by_currency {d} {c}: got {got:?} net={net}; expected {e:?}"
            ));
        }
    }
    let rows: Vec<(NaiveDate, i64, i64, i64, i64, i64, Option<f64>, Option<f64>)> = sqlx::query_as(
        "SELECT day, sessions, product_views, add_to_cart, orders, payments, view_rate, overall_rate
         FROM user_funnel ORDER BY day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let got: BTreeSet<NaiveDate> = rows.iter().map(|r| r.0).collect();
    if got != o.days() {
        diffs.push(format!("user_funnel days {got:?}, expected {:?}", o.days()));
    }
    for (d, s, v, c, or, p, view_rate, overall) in rows {
        let e = o.funnel.get(&d).cloned().unwrap_or_default();
        let got = Funnel {
            sessions: s,
            views: v,
            carts: c,
            orders: or,
            payments: p,
        };
        let rates_ok = view_rate
            .is_some_and(|r| (r - v as f64 / s as f64).abs() < 1e-9 && r <= 1.0)
            && overall.is_some_and(|r| (0.0..=1.0).contains(&r));
        if got != e || !rates_ok {
            diffs.push(format!(
                "user_funnel {d}: got {got:?} rates {view_rate:?}/{overall:?}; expected {e:?}"
            ));
        }
    }
    let rows: Vec<(NaiveDate, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT day, cohort_size, active_d1, active_d7, active_d30 FROM user_retention ORDER BY day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let got: BTreeSet<NaiveDate> = rows.iter().filter(|r| r.1 > 0).map(|r| r.0).collect();
    let want: BTreeSet<NaiveDate> = o.retention.keys().copied().collect();
    if got != want {
        diffs.push(format!("user_retention cohorts {got:?}, expected {want:?}"));
    }
    for (d, size, d1, d7, d30) in rows.into_iter().filter(|r| r.1 > 0) {
        let e = o.retention.get(&d).cloned().unwrap_or_default();
        let got = Retention { size, d1, d7, d30 };
        if got != e {
            diffs.push(format!("user_retention {d}: got {got:?}; expected {e:?}"));
        }
    }
    let rows: Vec<(NaiveDate, String, i64, i64, i64, f64, f64)> = sqlx::query_as(
        "SELECT day, method, attempts, succeeded, failed, success_rate, succeeded_usd::float8
         FROM payment_success ORDER BY day, method",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if rows.len() != o.payments.len() {
        diffs.push(format!(
            "payment_success has {} rows, expected {}",
            rows.len(),
            o.payments.len()
        ));
    }
    for (d, m, attempts, succeeded, failed, rate, amount) in rows {
        let e = o.payments.get(&(d, m.clone())).cloned().unwrap_or_default();
        if attempts != e.attempts
            || succeeded != e.succeeded
            || failed != e.attempts - e.succeeded
            || (rate - e.succeeded as f64 / e.attempts as f64).abs() > 1e-9
            || !close(amount, e.succeeded_usd)
        {
            diffs.push(format!(
                "payment_success {d} {m}: got attempts={attempts} ok={succeeded} failed={failed} rate={rate} usd={amount}; expected {e:?}"
            ));
        }
    }
    diffs
}
